//! Getting and keeping a worker's credential without copying files around: joining
//! with a token (`picluster-worker --join TOKEN --name NAME --state-dir DIR`) and
//! renewing the certificate before it expires.
//!
//! A join makes the worker's key pair here (the private key never leaves the
//! machine), checks the coordinator's CA against the token's pin before sending
//! anything secret, and stores the certificate it gets as a bundle in the state
//! directory, mode 0600. Later starts read that bundle. A renewal is asked for over
//! the working connection once two thirds of the certificate's lifetime have passed;
//! the new certificate replaces the bundle file and is used from the next connection.

use crate::WorkerError;
use picluster_core::identity::Role;
use picluster_core::net::{self, NetError};
use picluster_core::token::JoinToken;
use picluster_core::trust::{make_request, Bundle, ClusterError};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tracing::{info, warn};

/// The bundle's file in a worker's state directory.
pub const STATE_BUNDLE: &str = "worker.bundle";

/// The bundle file in `state_dir`.
pub fn state_bundle(state_dir: &Path) -> PathBuf {
    state_dir.join(STATE_BUNDLE)
}

/// The bundle kept in `state_dir`, if the worker has joined.
pub fn load_state(state_dir: &Path) -> Result<Option<Bundle>, WorkerError> {
    let path = state_bundle(state_dir);
    if !path.exists() {
        return Ok(None);
    }
    Ok(Some(Bundle::load(&path).map_err(WorkerError::Credentials)?))
}

/// Joins the cluster `token` names as worker `name`, and stores the credential in
/// `state_dir` (created with mode 0700 if missing). Refuses if the directory already
/// holds one: a worker joins once.
///
/// A failure that may pass (the coordinator unreachable or restarting, its join
/// places taken by a flood) is retried with backoff, from 1 s doubling to 30 s, for
/// [`JOIN_PATIENCE`]; a refusal (a wrong, used-up or expired token, a name taken) is
/// not.
pub async fn join(token: &JoinToken, name: &str, state_dir: &Path) -> Result<Bundle, WorkerError> {
    join_with(token, name, state_dir, JOIN_PATIENCE).await
}

/// How long [`join`] keeps trying while the coordinator cannot take the join.
pub const JOIN_PATIENCE: Duration = Duration::from_secs(600);

/// [`join`], trying for `patience` at most.
pub async fn join_with(
    token: &JoinToken,
    name: &str,
    state_dir: &Path,
    patience: Duration,
) -> Result<Bundle, WorkerError> {
    let path = state_bundle(state_dir);
    if path.exists() {
        return Err(WorkerError::Credentials(ClusterError::FileExists(path)));
    }
    create_private_dir(state_dir)?;
    let (key, csr) = make_request(name).map_err(WorkerError::Credentials)?;
    let give_up = tokio::time::Instant::now() + patience;
    let mut backoff = Duration::from_secs(1);
    let joined = loop {
        match net::join(token, name, Role::Worker, csr.clone()).await {
            Ok(joined) => break joined,
            Err(e) if e.is_retryable() && tokio::time::Instant::now() + backoff < give_up => {
                warn!(coordinator = %token.address, error = %e, retry_in = ?backoff, "join failed; trying again");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            Err(e) => return Err(e.into()),
        }
    };
    if joined.enrolled.role != Role::Worker {
        return Err(WorkerError::NotAWorkerBundle(joined.enrolled.role));
    }
    let bundle = joined.into_bundle(token, key.serialize_pem());
    bundle.save(&path).map_err(WorkerError::Credentials)?;
    info!(name = %bundle.name, file = %path.display(), "joined the cluster");
    Ok(bundle)
}

fn create_private_dir(dir: &Path) -> Result<(), WorkerError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| {
        WorkerError::Credentials(ClusterError::Io {
            path: dir.to_path_buf(),
            source,
        })
    })
}

/// Whether `bundle`'s certificate has passed two thirds of its validity period at
/// `now_ms` (Unix milliseconds).
pub fn renewal_due(bundle: &Bundle, now_ms: u64) -> bool {
    let Ok(identity) = bundle.identity() else {
        return false;
    };
    let life = identity.expires_ms.saturating_sub(identity.not_before_ms);
    now_ms >= identity.not_before_ms.saturating_add(life / 3 * 2)
}

/// Whether a renewed certificate could replace the bundle at `file`: its directory
/// takes the `.new` file a replacement is written to. A renewal that could not be
/// kept is not asked for: the coordinator retires a renewed certificate's
/// predecessor once the renewed one is used, so a restart with the old file would
/// find it revoked.
pub fn can_store_renewal(file: &std::path::Path) -> std::io::Result<()> {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".new");
    let probe = file.with_file_name(name);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

/// A renewal under way: the key the request was made for.
pub(crate) struct PendingRenewal {
    pub(crate) key_pem: String,
}

/// Makes a key and a request for `bundle`'s name.
pub(crate) fn start_renewal(bundle: &Bundle) -> Result<(PendingRenewal, Vec<u8>), NetError> {
    let (key, csr) = make_request(&bundle.name).map_err(NetError::Credentials)?;
    Ok((
        PendingRenewal {
            key_pem: key.serialize_pem(),
        },
        csr,
    ))
}
