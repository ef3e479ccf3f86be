//! The cluster directory: `cluster.json`, the CA, the coordinator's credential and
//! the admin bundle.

use super::files::{check_private, io_error, read_json, read_text, write_new, write_new_private};
use super::{split_host_port, Bundle, ClusterCa, ClusterError, Credential, FORMAT_VERSION};
use crate::identity::Role;
use serde::{Deserialize, Serialize};
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const CONFIG_FILE: &str = "cluster.json";
const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const COORD_CERT: &str = "coordinator.pem";
const COORD_KEY: &str = "coordinator.key";
/// The admin client bundle inside a cluster directory.
pub const ADMIN_BUNDLE: &str = "admin.bundle";

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
        let coordinator = ca.issue(Role::Coordinator, "coordinator", &hosts)?;
        let admin = ca.bundle(Role::Admin, "admin", &config.advertise[0])?;
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

    /// Refuses a cluster whose CA key or coordinator key group or others may read.
    pub fn check_private_keys(&self) -> Result<(), ClusterError> {
        check_private(&self.path.join(CA_KEY))?;
        check_private(&self.path.join(COORD_KEY))
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
            .bundle(Role::Worker, name, &self.config.advertise[0])
    }

    /// A new client bundle for `name` (submits and manages its own jobs), pointing
    /// at the first advertised address.
    pub fn client_bundle(&self, name: &str) -> Result<Bundle, ClusterError> {
        self.ca()?
            .bundle(Role::Client, name, &self.config.advertise[0])
    }
}
