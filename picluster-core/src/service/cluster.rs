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
}

/// Signs what the core decided to issue.
pub(super) fn issue_certificate(
    issuer: Option<&Issuer>,
    issue: &Issue,
) -> Result<String, JoinRefusal> {
    let issuer = issuer.ok_or(JoinRefusal::CannotIssue)?;
    issuer
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
        })
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
}

/// Opens a cluster directory and serves its coordinator until `shutdown`, journaling
/// jobs to the store in that directory ([`STORE_FILE`]).
pub async fn serve_cluster(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    serve_cluster_with(dir, config, None, shutdown).await
}

/// Like [`serve_cluster`], serving metrics for Prometheus at `metrics` too.
pub async fn serve_cluster_with(
    dir: &std::path::Path,
    config: CoordinatorConfig,
    metrics: Option<SocketAddr>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let dir = ClusterDir::open(dir).map_err(ServeError::from)?;
    dir.check_private_keys().map_err(ServeError::from)?;
    let store = RedbStore::open(&dir.path().join(STORE_FILE))?;
    let mut service = CoordinatorService::from_cluster(&dir, config)?.with_store(store);
    if let Some(address) = metrics {
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
