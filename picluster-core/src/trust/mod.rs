//! Cluster credentials and trust: the cluster directory made by `picluster init`, the
//! cluster CA and the certificates it issues (rcgen), bundles (the single files that
//! give a worker or client everything it needs to reach and trust the coordinator),
//! and reading a peer's role and name from its verified certificate.
//!
//! A certificate's subject says what its holder is: organisational unit the
//! [`Role`](crate::identity::Role), common name the holder's name. The coordinator
//! reads the role from the verified certificate, never from what a peer says about
//! itself. Files holding a private key are created with mode 0600 and never
//! overwritten. Does not own TLS configuration (see [`crate::net`]).
//!
//! # Layout
//! - `ca`: the CA, issuing certificates ([`ClusterCa`], [`Credential`]).
//! - `bundle`: worker and client bundles ([`Bundle`]).
//! - `dir`: the cluster directory ([`ClusterDir`], [`ClusterConfig`]).
//! - `cert`: a peer's identity from its certificate ([`identity_of`]), a
//!   certificate's key pin ([`spki_sha256`]).
//! - `files`: private files written once, with their mode from the start.

mod bundle;
mod ca;
mod cert;
mod dir;
mod files;

pub use bundle::Bundle;
pub use ca::{
    make_request, new_join_token, verify_request, ClusterCa, Credential, EtcdCert, Lifetimes,
    Validity, MAX_REQUEST_LEN,
};
pub use cert::{identity_of, spki_sha256, CertificateError};
pub use dir::{ClusterConfig, ClusterDir, EtcdConfig, ADMIN_BUNDLE, ETCD_USER};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Version of the bundle and cluster.json formats.
pub const FORMAT_VERSION: u32 = 1;

/// Why a cluster directory, certificate or bundle operation failed. Only `Io` may be
/// helped by retrying (a full disk, a permission fixed meanwhile); the others need a
/// different input.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `init` refuses to touch a directory that already holds files.
    #[error("{0} already exists and is not empty: refusing to overwrite a cluster")]
    DirectoryNotEmpty(PathBuf),
    /// A file that must not be overwritten exists.
    #[error("{0} already exists: refusing to overwrite it")]
    FileExists(PathBuf),
    /// The directory has no cluster.json.
    #[error("{0} is not a cluster directory (no cluster.json): create one with `picluster init`")]
    NotACluster(PathBuf),
    /// A JSON file did not parse.
    #[error("{path}: invalid contents: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: serde_json::Error,
    },
    /// A bundle or cluster file of an unknown format version.
    #[error("{path}: format version {found} is not supported (this build reads version {FORMAT_VERSION})")]
    Format {
        /// The file.
        path: PathBuf,
        /// The version found.
        found: u32,
    },
    /// An address that is not `HOST:PORT`.
    #[error("invalid address `{0}`: expected HOST:PORT (IPv6 as [ADDR]:PORT)")]
    BadAddress(String),
    /// The listen address is a wildcard and no address to advertise was given.
    #[error("listen address {0} is not an address other machines can dial: pass --advertise HOST:PORT naming how workers reach this machine")]
    NoAdvertisedAddress(SocketAddr),
    /// A worker or client name with characters outside `A-Za-z0-9._-` or too long.
    #[error("invalid name `{0}`: use 1-63 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// A credential for this name was issued already from this cluster directory.
    #[error("a {role} named {name} already has a credential from this cluster: pick another name, or pass --replace to issue a new one for it (then revoke the old one: `picluster revoke {name}`)")]
    NameIssued {
        /// The name.
        name: String,
        /// The role it was issued for.
        role: crate::identity::Role,
    },
    /// `add-coordinator` on a cluster whose state is in a redb file: a second
    /// coordinator would be a second cluster.
    #[error("{0}: this cluster keeps its state in the coordinator's redb file; coordinators can be added only to a cluster made with `picluster init --etcd URLS`")]
    NotShared(PathBuf),
    /// `add-coordinator` for an address a coordinator of the cluster has already.
    #[error("a coordinator of this cluster is already at {0}: give the new one its own address")]
    CoordinatorExists(String),
    /// A name picluster keeps for itself.
    #[error("`{0}` is a reserved name (admin, coordinator): pick another")]
    ReservedName(String),
    /// Certificate generation failed, or a stored key or certificate is corrupt.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A certificate or bundle file that does not hold what it should.
    #[error("certificate request refused: {0}")]
    BadRequest(String),
    /// A certificate request that is not one, or whose signature does not verify.
    #[error("certificate request refused: {0}")]
    Csr(#[from] crate::wire::CsrError),
    /// A private key file others may read.
    #[error("{path} is readable by group or others (mode {mode:03o}): a private key must be private; run `chmod 600 {path}`, and make new credentials if others may have read it")]
    KeyReadable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Writes a new file (refusing to overwrite one), mode 0600 when `private`.
pub fn write_file(
    path: &std::path::Path,
    contents: &[u8],
    private: bool,
) -> Result<(), ClusterError> {
    if private {
        files::write_new_private(path, contents)
    } else {
        files::write_new(path, contents)
    }
}

/// Splits `HOST:PORT` (or `[IPV6]:PORT`) into host and port.
pub fn split_host_port(address: &str) -> Result<(String, u16), ClusterError> {
    let bad = || ClusterError::BadAddress(address.to_string());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<IpAddr>().map_err(|_| bad())?.to_string(),
        None if host.contains(':') => return Err(bad()),
        None => host.to_string(),
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host, port))
}

pub(crate) fn check_name(name: &str) -> Result<(), ClusterError> {
    if crate::identity::is_valid_name(name) {
        Ok(())
    } else {
        Err(ClusterError::BadName(name.to_string()))
    }
}

crate::debug_as_display!(ClusterError);
