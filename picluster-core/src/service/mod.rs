//! The coordinator service: the async driver around
//! [`Coordinator`](crate::coordinator::Coordinator). One task accepts
//! connections; per connection, one task reads and decodes frames into the input
//! channel and one writes frames out; one task owns the state machine, feeding it
//! inputs and timer expiries and carrying out every [`Transmit`](crate::coordinator::Transmit) it returns. No
//! decision is made here: a decision in these files belongs in `coordinator`.
//! Behind the `service` feature: a worker or a client build compiles none of it.
//!
//! # Layout
//! - this file: [`CoordinatorService`], bound and configured.
//! - `driver`: the loop that owns the state machine ([`CoordinatorService::run`]),
//!   the store's writer thread, carrying out each `Transmit`.
//! - `conn`: the accept loop and the per-connection tasks (handshake, identity,
//!   decoding in the peer's protocol).
//! - `writer`: a peer's bounded outgoing queue and the task that writes it.
//! - `peers`: the driver's table of peers, and the memory their queues may hold
//!   (per peer, per client credential, all clients).
//! - `memory`: freed memory given back to the operating system after connections
//!   close.
//! - `cluster`: serving a cluster directory ([`serve_cluster`]), signing issued
//!   certificates, the coordinator certificate's expiry warnings.
//! - `metrics`: the coordinator's metrics for Prometheus (served by
//!   [`crate::runtime::serve_metrics`]).
//! - `store`: the job store (the [`Store`] trait, [`RedbStore`]).
//! - `fence`: the leader's deadline ([`Fence`]), when coordinators share a store.
//! - `etcd` (feature `etcd`): a leader and standbys sharing etcd: the journal in
//!   etcd, the election, standing by.

mod cluster;
mod conn;
mod driver;
#[cfg(feature = "etcd")]
pub mod etcd;
mod fence;
mod memory;
mod metrics;
mod peers;
mod store;
mod writer;

pub use cluster::{
    expiry_notice, serve_cluster, serve_cluster_with, ServeError, ServeOptions, EXPIRY_WARNING,
    STORE_MARKER,
};
pub use driver::Ended;
pub use fence::Fence;
pub use metrics::{encode_coordinator, encode_standby, DriverMetrics};
pub use store::{RedbStore, Store, StoreError, STORE_FILE};

use crate::coordinator::CoordinatorConfig;
use crate::net::{self, NetError};
use crate::trust::{ClusterCa, ClusterDir, Credential};
use cluster::Issuer;
use std::net::SocketAddr;
use std::sync::Arc;

/// A bound coordinator, ready to [`run`](CoordinatorService::run).
pub struct CoordinatorService {
    endpoint: quinn::Endpoint,
    config: CoordinatorConfig,
    store: Option<Box<dyn Store>>,
    issuer: Option<Arc<Issuer>>,
    metrics: Option<std::net::TcpListener>,
}

impl std::fmt::Debug for CoordinatorService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorService")
            .field("endpoint", &self.endpoint.local_addr().ok())
            .field("store", &self.store.as_ref().map(|s| s.name()))
            .finish()
    }
}

/// A QUIC server endpoint on `listen` (the coordinator's, or a standby's).
pub(crate) fn bind_endpoint(
    listen: SocketAddr,
    config: quinn::EndpointConfig,
    server: quinn::ServerConfig,
) -> Result<quinn::Endpoint, NetError> {
    let socket = std::net::UdpSocket::bind(listen).map_err(|source| NetError::Bind {
        address: listen,
        source,
    })?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| NetError::Socket(std::io::Error::other("no async runtime")))?;
    quinn::Endpoint::new(config, Some(server), socket, runtime).map_err(NetError::Socket)
}

impl CoordinatorService {
    /// Binds the QUIC endpoint on `listen` with the coordinator's credential.
    pub fn bind(
        listen: SocketAddr,
        ca_pem: &str,
        credential: &Credential,
        config: CoordinatorConfig,
    ) -> Result<CoordinatorService, NetError> {
        let server = net::server_config(ca_pem, credential)?;
        // The key behind stateless resets comes from the coordinator's own key, so a
        // coordinator restarted after a crash can tell its old connections' peers at
        // their next packet that they are gone, rather than leave them to time out.
        let secret = <sha2::Sha256 as sha2::Digest>::digest(
            [
                b"picluster stateless reset 1\n".as_slice(),
                credential.key_pem.as_bytes(),
            ]
            .concat(),
        );
        // Connection ids are signed with a key from the same secret: a restarted
        // coordinator recognises its predecessor's, which it must to answer them.
        let reset_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
        let cid_key = u64::from_le_bytes(secret[..8].try_into().expect("32 bytes"));
        let mut endpoint_config = quinn::EndpointConfig::new(std::sync::Arc::new(reset_key));
        endpoint_config.cid_generator(move || {
            Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
        });
        let endpoint = bind_endpoint(listen, endpoint_config, server)?;
        Ok(CoordinatorService {
            endpoint,
            config,
            store: None,
            issuer: None,
            metrics: None,
        })
    }

    /// Lets the coordinator sign certificates with `ca` (valid for `days`): for
    /// workers that join with a token and workers that renew theirs. Without it,
    /// both are refused ([`JoinRefusal::CannotIssue`]).
    pub fn with_issuer(mut self, ca: ClusterCa, days: u32) -> CoordinatorService {
        self.issuer = Some(Arc::new(Issuer {
            ca,
            days,
            dir: None,
        }));
        self
    }

    /// Serves metrics for Prometheus at `http://ADDRESS/metrics` while it runs.
    pub fn with_metrics(self, address: SocketAddr) -> Result<CoordinatorService, NetError> {
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| NetError::BindMetrics { address, source })?;
        self.with_metrics_listener(listener)
    }

    /// Serves metrics on `listener` (bound by the caller) while it runs.
    pub fn with_metrics_listener(
        mut self,
        listener: std::net::TcpListener,
    ) -> Result<CoordinatorService, NetError> {
        let address = listener.local_addr().map_err(NetError::Socket)?;
        listener
            .set_nonblocking(true)
            .map_err(|source| NetError::BindMetrics { address, source })?;
        self.metrics = Some(listener);
        Ok(self)
    }

    /// The address the metrics endpoint is bound to, if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Journals every job to `store` and starts from what it holds. Without a store
    /// the coordinator keeps its jobs in memory only.
    pub fn with_store(mut self, store: impl Store) -> CoordinatorService {
        self.store = Some(Box::new(store));
        self
    }

    /// Binds the coordinator of a cluster directory on its configured address.
    pub fn from_cluster(
        dir: &ClusterDir,
        config: CoordinatorConfig,
    ) -> Result<CoordinatorService, NetError> {
        dir.check_private_keys()?;
        let credential = dir.coordinator_credential()?;
        let ca = dir.ca_cert_pem().map_err(NetError::from)?;
        let issuer = dir.ca().map_err(NetError::from)?;
        let mut service = Self::bind(dir.config().listen, &ca, &credential, config)?;
        service.issuer = Some(Arc::new(Issuer {
            ca: issuer,
            days: dir.config().lifetimes.peer_days,
            dir: Some(dir.clone()),
        }));
        Ok(service)
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.endpoint.local_addr().map_err(NetError::Socket)
    }
}
