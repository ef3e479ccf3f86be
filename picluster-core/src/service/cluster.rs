//! The coordinator of a cluster directory: serving it ([`serve_cluster`]: its
//! credential, its CA as the issuer of joining and renewing workers' certificates,
//! its job store), signing what the state machine decided to issue, and warning
//! before the coordinator's own certificate expires.

use super::driver::{unix_ms, AbortOnDrop};
use super::{CoordinatorService, RedbStore, StoreError, STORE_FILE};
use crate::coordinator::{CoordinatorConfig, Issue};
use crate::net::NetError;
use crate::trust::{ClusterCa, ClusterDir};
use crate::wire::JoinRefusal;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tracing::{error, info, warn};

/// The cluster CA, for signing the certificates of joining and renewing workers.
pub(super) struct Issuer {
    pub(super) ca: ClusterCa,
    /// Lifetime of the certificates it signs.
    pub(super) days: u32,
    /// The cluster directory, where a name enrolled with a token is noted (so that
    /// `add-worker` refuses it); `None` for a service built from parts.
    pub(super) dir: Option<crate::trust::ClusterDir>,
}

/// Signs what the core decided to issue.
pub(super) fn issue_certificate(
    issuer: Option<&Issuer>,
    issue: &Issue,
) -> Result<String, JoinRefusal> {
    let issuer = issuer.ok_or(JoinRefusal::CannotIssue)?;
    let signed = issuer
        .ca
        .sign_request(
            issue.role,
            &issue.name,
            &issue.csr,
            issuer.days,
            issue.issued_ms,
        )
        .map_err(|e| match e {
            crate::trust::ClusterError::BadRequest(why) => JoinRefusal::BadRequest(why),
            crate::trust::ClusterError::Csr(why) => JoinRefusal::BadRequest(why.to_string()),
            other => JoinRefusal::BadRequest(other.to_string()),
        })?;
    if let (Some(dir), false) = (&issuer.dir, issue.renewal) {
        // The store knows the name already; this only keeps `add-worker` from
        // issuing it a second credential, so a failure is worth a warning, not
        // the join.
        if let Err(e) = dir.note_enrolled(issue.role, &issue.name) {
            warn!(name = %issue.name, error = %e, "could not note the enrolled name in the cluster directory's issued.json: `picluster add-worker` will not know it");
        }
    }
    Ok(signed)
}

/// Why a coordinator could not serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The cluster directory is unusable.
    #[error(transparent)]
    Cluster(#[from] crate::trust::ClusterError),
    /// Binding the endpoint failed.
    #[error(transparent)]
    Net(#[from] NetError),
    /// The job store cannot be opened, read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job store is missing from a cluster whose coordinator has run before:
    /// starting afresh would forget what it held.
    #[error("{store} is missing, but this cluster's coordinator has run before: its revocations, quarantines, drains, enrolled names, join tokens and jobs were in it. Restore it from a backup, or start with --new-store to begin with an empty one (revoked and quarantined workers are then let in again)")]
    StoreMissing {
        /// Where the store should be.
        store: std::path::PathBuf,
    },
}

/// How [`serve_cluster_with`] serves, besides the coordinator's configuration.
#[derive(Clone, Copy, Debug, Default)]
pub struct ServeOptions {
    /// Serve metrics for Prometheus at this address.
    pub metrics: Option<SocketAddr>,
    /// Start with a new, empty job store even though the cluster's coordinator has
    /// run before (its store is lost): `picluster coordinator --new-store`.
    pub new_store: bool,
}

/// Written beside the store when the store is made: a cluster directory that has it
/// but no store has lost its store.
pub const STORE_MARKER: &str = "coordinator.store-created";

/// Opens a cluster directory and serves its coordinator until `shutdown`, journaling
/// jobs to the store in that directory ([`STORE_FILE`]).
pub async fn serve_cluster(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_cluster_with(dir, config, ServeOptions::default(), shutdown).await
}

/// Like [`serve_cluster`], with [`ServeOptions`] (metrics, a new store).
pub async fn serve_cluster_with(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = ClusterDir::open(dir).map_err(ServeError::from)?;
    dir.check_private_keys().map_err(ServeError::from)?;
    let store = open_store(&dir, options.new_store)?;
    let mut service = CoordinatorService::from_cluster(&dir, config)?.with_store(store);
    if let Some(address) = options.metrics {
        service = service.with_metrics(address)?;
    }
    info!(address = %service.local_addr()?, "coordinator listening");
    if let Some(address) = service.metrics_addr() {
        info!(%address, "metrics at http://{address}/metrics");
    }
    let own = dir
        .coordinator_credential()
        .ok()
        .and_then(|c| own_certificate_expiry(&c.cert_pem));
    // Checked at start and twice a day after.
    let _watch = own.map(|expires_ms| {
        AbortOnDrop(tokio::spawn(async move {
            loop {
                warn_if_expiring(expires_ms);
                tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
            }
        }))
    });
    service.run(shutdown).await?;
    Ok(())
}

/// The cluster's job store: refused if it is missing from a cluster whose coordinator
/// has run before (its [`STORE_MARKER`] is there), unless `new_store`; marked as made
/// once it exists. A cluster whose coordinator never ran has nothing to lose, however
/// many bundles were issued before its first start.
fn open_store(dir: &ClusterDir, new_store: bool) -> Result<RedbStore, ServeError> {
    let path = dir.path().join(STORE_FILE);
    let marker = dir.path().join(STORE_MARKER);
    if !path.exists() && !new_store && marker.exists() {
        return Err(ServeError::StoreMissing { store: path });
    }
    if !path.exists() && new_store && marker.exists() {
        warn!(store = %path.display(), "starting with a new, empty job store: revocations, quarantines, enrolled names, tokens and jobs of the lost one are gone");
    }
    let store = RedbStore::open(&path)?;
    if !marker.exists() {
        let note = "the job store (coordinator.redb) was made here; without it the coordinator refuses to start (picluster coordinator --new-store starts an empty one)\n";
        std::fs::write(&marker, note).map_err(|e| {
            ServeError::Cluster(crate::trust::ClusterError::Io {
                path: marker.clone(),
                source: e,
            })
        })?;
    }
    Ok(store)
}

/// How long before its certificate expires the coordinator starts warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 86_400);

fn own_certificate_expiry(cert_pem: &str) -> Option<u64> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    crate::trust::identity_of(&der).ok().map(|id| id.expires_ms)
}

fn warn_if_expiring(expires_ms: u64) {
    if let Some(notice) = expiry_notice(expires_ms, unix_ms()) {
        if expires_ms <= unix_ms() {
            error!("{notice}");
        } else {
            warn!("{notice}");
        }
    }
}

/// What the coordinator logs about its own certificate at `now_ms`: nothing until
/// [`EXPIRY_WARNING`] before it expires, then a warning naming the days left and the
/// fix, and an error once it has expired.
pub fn expiry_notice(expires_ms: u64, now_ms: u64) -> Option<String> {
    if expires_ms <= now_ms {
        return Some("the coordinator's certificate has expired: workers and clients cannot connect; run `picluster renew-coordinator` and restart the coordinator".into());
    }
    let left = expires_ms - now_ms;
    (u128::from(left) <= EXPIRY_WARNING.as_millis()).then(|| {
        format!(
            "the coordinator's certificate expires in {} days: run `picluster renew-coordinator` and restart the coordinator",
            left / 86_400_000
        )
    })
}
