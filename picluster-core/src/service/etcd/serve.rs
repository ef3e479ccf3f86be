//! One coordinator among several sharing etcd ([`serve_ha`]): it stands by until
//! elected, then leads exactly as a coordinator restarted on its own machine does
//! (the journal loaded from etcd, the previous leader's leases held for their
//! workers to claim), and stands by again when it is fenced or deposed.

use super::elect::{self, ElectionHandle};
use super::standby::stand_by;
use super::store::begin_term;
use super::{EtcdOptions, EtcdStore, Guard, Leadership};
use crate::coordinator::CoordinatorConfig;
use crate::election::ElectionConfig;
use crate::net::{self, NetError};
use crate::service::driver::AbortOnDrop;
use crate::service::{
    bind_endpoint, CoordinatorService, Ended, ServeError, ServeOptions, StoreError,
};
use crate::trust::ClusterDir;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::{error, info, warn};

/// What a coordinator among several needs besides its cluster directory.
#[derive(Clone, Debug)]
pub struct HaOptions {
    /// Where etcd is and which cluster's keys to use.
    pub etcd: EtcdOptions,
    /// How workers and clients reach this coordinator (`HOST:PORT`): what standbys
    /// tell them while it leads.
    pub advertise: String,
    /// The election's timings.
    pub election: ElectionConfig,
}

/// Serves the coordinator of cluster directory `dir` as one of several sharing
/// etcd, until `shutdown`: standing by, leading when elected, and standing by again
/// when fenced. On shutdown a leader writes what is left, closes its connections and
/// gives up its leadership at once (a standby takes over without waiting for the
/// lease to expire).
pub async fn serve_ha(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    options: ServeOptions,
    ha: HaOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = ClusterDir::open(dir)?;
    dir.check_private_keys()?;
    let credential = dir.coordinator_credential()?;
    let ca = dir.ca_cert_pem().map_err(NetError::from)?;
    let listen = dir.config().listen;
    let election = elect::start(ha.etcd.clone(), ha.advertise.clone(), ha.election)
        .map_err(StoreError::EtcdRuntime)?;
    let result = lead_or_stand_by(
        &dir,
        config,
        options,
        &ha,
        &election,
        listen,
        &ca,
        &credential,
        shutdown,
    )
    .await;
    // The revocation waits at most a second; the thread is joined off this runtime.
    let _ = tokio::task::spawn_blocking(move || election.resign()).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn lead_or_stand_by(
    dir: &ClusterDir,
    config: CoordinatorConfig,
    options: ServeOptions,
    ha: &HaOptions,
    election: &ElectionHandle,
    listen: SocketAddr,
    ca: &str,
    credential: &crate::trust::Credential,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let mut leadership = election.leadership.clone();
    tokio::pin!(shutdown);
    loop {
        // Standing by.
        let endpoint = bind_retrying(listen, || standby_endpoint(listen, ca, credential)).await?;
        info!(%listen, "standing by");
        // A standby's metrics say it stands by (Prometheus sees every coordinator).
        let metrics = match options.metrics {
            Some(address) => Some(standby_metrics(address).await?),
            None => None,
        };
        let elected = tokio::select! {
            () = &mut shutdown => return Ok(()),
            elected = stand_by(&endpoint, &mut leadership) => elected,
        };
        drop(metrics);
        endpoint.close(0u32.into(), b"");
        let _ = tokio::time::timeout(Duration::from_millis(500), endpoint.wait_idle()).await;
        drop(endpoint);
        let Some(revision) = elected else {
            return Ok(());
        };
        // Leading: the term first, every write guarded by the leader key.
        let guard = Guard {
            key: ha.etcd.leader_key(),
            revision,
        };
        let (term, store) = match open_term(&ha.etcd, guard).await {
            Ok(opened) => opened,
            Err(e) => {
                warn!(error = %e, "elected, but cannot start a term in etcd: stepping down");
                election.step_down();
                wait_until_not_leader(&mut leadership).await;
                continue;
            }
        };
        let config = CoordinatorConfig {
            epoch: term,
            ..config.clone()
        };
        let mut service = bind_retrying(listen, || {
            CoordinatorService::from_cluster(dir, config.clone())
        })
        .await?
        .with_store(store);
        if let Some(address) = options.metrics {
            let listener = bind_metrics(address)
                .await?
                .into_std()
                .map_err(NetError::Socket)?;
            service = service.with_metrics_listener(listener)?;
        }
        info!(%listen, term, revision, "leading");
        match service
            .run_fenced(&mut shutdown, Some(election.fence.clone()))
            .await
        {
            Ok(Ended::Shutdown) => return Ok(()),
            Ok(Ended::Fenced) => {}
            Err(e @ (StoreError::Deposed { .. } | StoreError::Etcd { .. })) => {
                // The journal cannot promise what it acknowledges: stop leading,
                // and let another coordinator (or this one, later) take over.
                error!(error = %e, "cannot write the journal in etcd: stepping down");
                election.step_down();
            }
            Err(e) => return Err(e.into()),
        }
        wait_until_not_leader(&mut leadership).await;
    }
}

/// Serves `picluster_coordinator_leading 0` at `address` until dropped.
async fn standby_metrics(address: SocketAddr) -> Result<AbortOnDrop, NetError> {
    let listener = bind_metrics(address).await?;
    Ok(AbortOnDrop(tokio::spawn(crate::runtime::serve_metrics(
        listener,
        || async { Some(crate::service::encode_standby()) },
    ))))
}

/// The metrics listener, retried for up to 3 s while the one this coordinator used
/// as a leader or standby a moment ago is still being closed.
async fn bind_metrics(address: SocketAddr) -> Result<tokio::net::TcpListener, NetError> {
    let until = std::time::Instant::now() + Duration::from_secs(3);
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < until =>
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(source) => return Err(NetError::BindMetrics { address, source }),
        }
    }
}

/// Counts this leader's term up in etcd (guarded; a fresh client, dropped after)
/// and opens the journal under the same guard.
async fn open_term(etcd: &EtcdOptions, guard: Guard) -> Result<(u64, EtcdStore), StoreError> {
    let mut client = etcd.connect().await?;
    let term = begin_term(&mut client, etcd, &guard).await?;
    Ok((term, EtcdStore::open(etcd, guard)?))
}

async fn wait_until_not_leader(leadership: &mut tokio::sync::watch::Receiver<Leadership>) {
    while matches!(*leadership.borrow_and_update(), Leadership::Leader { .. }) {
        if leadership.changed().await.is_err() {
            return;
        }
    }
}

fn standby_endpoint(
    listen: SocketAddr,
    ca: &str,
    credential: &crate::trust::Credential,
) -> Result<quinn::Endpoint, NetError> {
    let server = net::server_config(ca, credential)?;
    bind_endpoint(listen, quinn::EndpointConfig::default(), server)
}

/// Binds with `bind`, retrying for up to 30 s while the port is still held by the
/// endpoint this coordinator just closed (one that served a thousand connections
/// may take a few seconds to let go of it).
async fn bind_retrying<T>(
    listen: SocketAddr,
    mut bind: impl FnMut() -> Result<T, NetError>,
) -> Result<T, NetError> {
    let started = std::time::Instant::now();
    let mut warned = false;
    loop {
        match bind() {
            Err(NetError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse
                    && started.elapsed() < Duration::from_secs(30) =>
            {
                if !warned && started.elapsed() > Duration::from_secs(3) {
                    warn!(%listen, "the port is still held by the endpoint just closed; waiting for it");
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(NetError::Bind { source, .. }) => {
                return Err(NetError::Bind {
                    address: listen,
                    source,
                })
            }
            other => return other,
        }
    }
}
