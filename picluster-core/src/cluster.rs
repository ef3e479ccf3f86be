//! Cluster credentials: the cluster directory made by `picluster init`, the cluster
//! CA and the certificates it issues (rcgen), and bundles, the single files that give
//! a worker or client everything it needs to reach and trust the coordinator.
//!
//! A certificate's subject says what its holder is: organisational unit `worker`,
//! `client` or `coordinator`, common name the holder's name. The coordinator reads
//! the role from the verified certificate, never from what a peer says about itself.
//! Files holding a private key are created with mode 0600 and never overwritten.
//! Does not own TLS configuration (see [`crate::net`]).

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// Version of the bundle and cluster.json formats.
pub const FORMAT_VERSION: u32 = 1;
const CONFIG_FILE: &str = "cluster.json";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const COORD_CERT: &str = "coordinator.pem";
const COORD_KEY: &str = "coordinator.key";
/// The admin client bundle inside a cluster directory.
pub const ADMIN_BUNDLE: &str = "admin.bundle";

/// Why a cluster directory, certificate or bundle operation failed. Only `Io` may be
/// helped by retrying (a full disk, a permission fixed meanwhile); the others need a
/// different input.
#[derive(Debug, thiserror::Error)]
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
    /// Certificate generation failed, or a stored key or certificate is corrupt.
    #[error("certificate: {0}")]
    Certificate(#[from] rcgen::Error),
}

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertRole {
    /// The coordinator's server certificate.
    Coordinator,
    /// A worker: takes chunks.
    Worker,
    /// A client: submits and manages jobs.
    Client,
}

impl CertRole {
    /// The organisational unit written into certificates.
    pub fn as_str(self) -> &'static str {
        match self {
            CertRole::Coordinator => "coordinator",
            CertRole::Worker => "worker",
            CertRole::Client => "client",
        }
    }
}

/// The addresses of a cluster, stored as `cluster.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Format version.
    pub format: u32,
    /// Where the coordinator listens (UDP).
    pub listen: SocketAddr,
    /// How workers and clients reach the coordinator, first one preferred.
    pub advertise: Vec<String>,
}

/// A PEM certificate with its PEM private key.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// The certificate.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credential { .. }")
    }
}

/// Everything a worker or client needs: where the coordinator is, which CA to trust,
/// and its own certificate and key. Stored as one JSON file with mode 0600.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Format version.
    pub format: u32,
    /// The holder's role.
    pub role: CertRole,
    /// The holder's name.
    pub name: String,
    /// The coordinator's address, `HOST:PORT`.
    pub coordinator: String,
    /// The cluster CA certificate (PEM).
    pub ca: String,
    /// The holder's certificate (PEM).
    pub cert: String,
    /// The holder's private key (PEM).
    pub key: String,
}

impl std::fmt::Debug for Bundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bundle")
            .field("role", &self.role)
            .field("name", &self.name)
            .field("coordinator", &self.coordinator)
            .finish_non_exhaustive()
    }
}

impl Bundle {
    /// Reads a bundle file.
    pub fn load(path: &Path) -> Result<Bundle, ClusterError> {
        let bundle: Bundle = read_json(path)?;
        if bundle.format != FORMAT_VERSION {
            return Err(ClusterError::Format {
                path: path.to_path_buf(),
                found: bundle.format,
            });
        }
        Ok(bundle)
    }

    /// Writes the bundle to a new file with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), ClusterError> {
        let json = serde_json::to_string_pretty(self).expect("a bundle always serializes");
        write_new_private(path, json.as_bytes())
    }

    /// The coordinator's host and port.
    pub fn coordinator_host_port(&self) -> Result<(String, u16), ClusterError> {
        split_host_port(&self.coordinator)
    }
}

/// The cluster CA: issues every certificate of one cluster.
pub struct ClusterCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterCa { .. }")
    }
}

impl ClusterCa {
    /// A new CA with a fresh key.
    pub fn generate(cluster_name: &str) -> Result<ClusterCa, ClusterError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name =
            distinguished_name("ca", &format!("picluster CA {cluster_name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, 20);
        let cert = params.self_signed(&key)?;
        Ok(ClusterCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA from its certificate and key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<ClusterCa, ClusterError> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(ClusterCa {
            cert_pem: cert_pem.to_string(),
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
        })
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key (PEM).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// Issues a certificate for `name` in `role`. `hosts` (DNS names or IPs) become
    /// subject alternative names; only the coordinator's certificate needs them.
    pub fn issue(
        &self,
        role: CertRole,
        name: &str,
        hosts: &[String],
    ) -> Result<Credential, ClusterError> {
        check_name(name)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = distinguished_name(role.as_str(), name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match role {
            CertRole::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth],
            CertRole::Worker | CertRole::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        set_validity(&mut params, 10);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Credential {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A bundle for `name` in `role`, pointing at `coordinator`.
    pub fn bundle(
        &self,
        role: CertRole,
        name: &str,
        coordinator: &str,
    ) -> Result<Bundle, ClusterError> {
        let credential = self.issue(role, name, &[])?;
        Ok(Bundle {
            format: FORMAT_VERSION,
            role,
            name: name.to_string(),
            coordinator: coordinator.to_string(),
            ca: self.cert_pem.clone(),
            cert: credential.cert_pem,
            key: credential.key_pem,
        })
    }
}

/// A cluster directory made by [`ClusterDir::init`].
#[derive(Clone, Debug)]
pub struct ClusterDir {
    path: PathBuf,
    config: ClusterConfig,
}

impl ClusterDir {
    /// Creates a new cluster in `path` (which must not exist or be empty): a CA, the
    /// coordinator's certificate for every advertised host (and the listen IP when it
    /// is specific), an admin client bundle, and `cluster.json`.
    pub fn init(
        path: &Path,
        listen: SocketAddr,
        advertise: &[String],
    ) -> Result<ClusterDir, ClusterError> {
        let mut hosts = Vec::new();
        for address in advertise {
            let (host, _) = split_host_port(address)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        let mut advertise = advertise.to_vec();
        if advertise.is_empty() {
            if listen.ip().is_unspecified() {
                return Err(ClusterError::NoAdvertisedAddress(listen));
            }
            advertise.push(listen.to_string());
        }
        if !listen.ip().is_unspecified() && !hosts.contains(&listen.ip().to_string()) {
            hosts.push(listen.ip().to_string());
        }
        match fs::read_dir(path) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(ClusterError::DirectoryNotEmpty(path.to_path_buf()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::create_dir_all(path).map_err(io_error(path))?;
            }
            Err(e) => return Err(io_error(path)(e)),
        }
        let config = ClusterConfig {
            format: FORMAT_VERSION,
            listen,
            advertise,
        };
        let cluster_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cluster".to_string());
        let ca = ClusterCa::generate(&cluster_name)?;
        let coordinator = ca.issue(CertRole::Coordinator, "coordinator", &hosts)?;
        let admin = ca.bundle(CertRole::Client, "admin", &config.advertise[0])?;
        write_new_private(&path.join(CA_KEY), ca.key_pem().as_bytes())?;
        write_new(&path.join(CA_CERT), ca.cert_pem().as_bytes())?;
        write_new_private(&path.join(COORD_KEY), coordinator.key_pem.as_bytes())?;
        write_new(&path.join(COORD_CERT), coordinator.cert_pem.as_bytes())?;
        admin.save(&path.join(ADMIN_BUNDLE))?;
        let json = serde_json::to_string_pretty(&config).expect("config always serializes");
        // Written last: a directory without cluster.json is not mistaken for a cluster.
        write_new(&path.join(CONFIG_FILE), json.as_bytes())?;
        Ok(ClusterDir {
            path: path.to_path_buf(),
            config,
        })
    }

    /// Opens an existing cluster directory.
    pub fn open(path: &Path) -> Result<ClusterDir, ClusterError> {
        let config_path = path.join(CONFIG_FILE);
        if !config_path.is_file() {
            return Err(ClusterError::NotACluster(path.to_path_buf()));
        }
        let config: ClusterConfig = read_json(&config_path)?;
        if config.format != FORMAT_VERSION {
            return Err(ClusterError::Format {
                path: config_path,
                found: config.format,
            });
        }
        Ok(ClusterDir {
            path: path.to_path_buf(),
            config,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The addresses.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The cluster CA.
    pub fn ca(&self) -> Result<ClusterCa, ClusterError> {
        ClusterCa::from_pem(
            &read_text(&self.path.join(CA_CERT))?,
            &read_text(&self.path.join(CA_KEY))?,
        )
    }

    /// The CA certificate (PEM).
    pub fn ca_cert_pem(&self) -> Result<String, ClusterError> {
        read_text(&self.path.join(CA_CERT))
    }

    /// The coordinator's certificate and key.
    pub fn coordinator_credential(&self) -> Result<Credential, ClusterError> {
        Ok(Credential {
            cert_pem: read_text(&self.path.join(COORD_CERT))?,
            key_pem: read_text(&self.path.join(COORD_KEY))?,
        })
    }

    /// The admin client bundle.
    pub fn admin_bundle(&self) -> Result<Bundle, ClusterError> {
        Bundle::load(&self.path.join(ADMIN_BUNDLE))
    }

    /// A new worker bundle for `name`, pointing at the first advertised address.
    pub fn worker_bundle(&self, name: &str) -> Result<Bundle, ClusterError> {
        self.ca()?
            .bundle(CertRole::Worker, name, &self.config.advertise[0])
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

fn check_name(name: &str) -> Result<(), ClusterError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ClusterError::BadName(name.to_string()))
    }
}

fn distinguished_name(role: &str, name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "picluster");
    dn.push(DnType::OrganizationalUnitName, role);
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams, years: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(365 * years);
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> ClusterError + '_ {
    move |source| ClusterError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, ClusterError> {
    fs::read_to_string(path).map_err(io_error(path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ClusterError> {
    serde_json::from_str(&read_text(path)?).map_err(|source| ClusterError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn write_new(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    write_with_mode(path, contents, 0o644)
}

fn write_new_private(path: &Path, contents: &[u8]) -> Result<(), ClusterError> {
    write_with_mode(path, contents, 0o600)
}

/// Creates `path` (failing if it exists) with `mode` from the start, so a key is
/// never readable by others, not even for a moment.
fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), ClusterError> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            ClusterError::FileExists(path.to_path_buf())
        } else {
            io_error(path)(e)
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            // Leave no half-written key or bundle behind.
            let _ = fs::remove_file(path);
            io_error(path)(e)
        })
}
