//! Coordinators that survive their machine: a leader and standbys sharing one etcd
//! cluster (feature `etcd`). etcd holds the journal ([`EtcdStore`]) and the leader
//! key; the decisions of the election are the clock-free [`crate::election`] state
//! machine, driven here against etcd on a thread of its own ([`elect`]).
//!
//! A coordinator that does not lead answers every connection with
//! [`CloseCode::NotLeader`](crate::wire::CloseCode::NotLeader), naming the leader
//! (`standby`); once elected it loads the journal from etcd and serves exactly as a
//! coordinator restarted on its own machine does, every write guarded by its
//! leader key (`serve`). When it is fenced (its deadline passed without a renewal
//! etcd acknowledged) or deposed (a guarded write refused), it stops acting at once
//! and stands by again.
//!
//! # Layout
//! - this file: [`EtcdOptions`] (where etcd is, which cluster), the key layout.
//! - `store`: [`EtcdStore`], the journal in etcd, fenced by the leader key.
//! - `elect`: the election's driver; its outputs are [`Leadership`] and the
//!   [`Fence`](crate::service::Fence).
//! - `standby`: answering connections while another coordinator leads.
//! - `serve`: [`serve_ha`], standing by and leading in turn.

mod elect;
mod serve;
mod standby;
mod store;

pub use elect::Leadership;
pub use serve::{serve_ha, HaOptions};
pub use store::{EtcdStore, Guard, MAX_TXN_BYTES, MAX_TXN_OPS, WRITER_KEY};

use crate::service::StoreError;
use std::time::Duration;

/// The leader key, under the cluster's prefix: its value is the leader's address,
/// it is bound to the leader's etcd lease, and its creation revision fences every
/// write the leader makes.
pub const LEADER_KEY: &str = "leader";

/// How long one etcd request may take before it counts as failed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Where etcd is and which cluster's keys to use.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdOptions {
    /// etcd's client URLs (`http://10.0.0.1:2379`, or `https://` with `tls`).
    pub endpoints: Vec<String>,
    /// The cluster's id: its keys live under `/picluster/<cluster_id>/`.
    pub cluster_id: String,
    /// Client certificate, key and the CA that signed etcd's certificates (PEM),
    /// for `https://` endpoints.
    pub tls: Option<EtcdTls>,
}

/// TLS towards etcd: the cluster CA signs etcd's server certificates and the
/// coordinators' client certificates.
#[derive(Clone, PartialEq, Eq)]
pub struct EtcdTls {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// This coordinator's etcd client certificate (PEM).
    pub cert_pem: String,
    /// Its key (PEM).
    pub key_pem: String,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdTls").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for EtcdOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdOptions")
            .field("endpoints", &self.endpoints)
            .field("cluster_id", &self.cluster_id)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl EtcdOptions {
    /// The etcd of a cluster directory whose state is in etcd (`None` otherwise),
    /// with its etcd client certificate when the endpoints are `https://`.
    pub fn of_cluster(
        dir: &crate::trust::ClusterDir,
    ) -> Result<Option<EtcdOptions>, crate::trust::ClusterError> {
        let Some(etcd) = dir.config().etcd.clone() else {
            return Ok(None);
        };
        let tls = match dir.etcd_client_credential()? {
            Some(c) => Some(EtcdTls {
                ca_pem: dir.ca_cert_pem()?,
                cert_pem: c.cert_pem,
                key_pem: c.key_pem,
            }),
            None => None,
        };
        Ok(Some(EtcdOptions {
            endpoints: etcd.endpoints,
            cluster_id: etcd.cluster_id,
            tls,
        }))
    }

    /// The cluster's key prefix, ending in `/`.
    pub fn prefix(&self) -> String {
        format!("/picluster/{}/", self.cluster_id)
    }

    /// The leader key.
    pub fn leader_key(&self) -> String {
        format!("{}{LEADER_KEY}", self.prefix())
    }

    /// A client of etcd: requests time out after [`REQUEST_TIMEOUT`], and need an
    /// etcd leader (a member cut off from its quorum refuses rather than answers
    /// from stale state).
    pub async fn connect(&self) -> Result<etcd_client::Client, StoreError> {
        let mut options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(1))
            .with_timeout(REQUEST_TIMEOUT)
            // No HTTP/2 pings of our own: etcd cuts off a client that pings more
            // often than its --grpc-keepalive-min-time (5 s); every request has its
            // timeout instead.
            .with_require_leader(true);
        if let Some(tls) = &self.tls {
            use etcd_client::{Certificate, Identity, TlsOptions};
            options = options.with_tls(
                TlsOptions::new()
                    .ca_certificate(Certificate::from_pem(&tls.ca_pem))
                    .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem)),
            );
        }
        etcd_client::Client::connect(&self.endpoints, Some(options))
            .await
            .map_err(|source| StoreError::Etcd {
                endpoints: self.endpoints.join(","),
                source,
            })
    }
}
