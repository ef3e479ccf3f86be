//! The cluster directory: `cluster.json`, the CA, the coordinator's credential and
//! the admin bundle.

use super::files::{check_private, io_error, read_json, read_text, write_new, write_new_private};
use super::{
    split_host_port, Bundle, ClusterCa, ClusterError, Credential, Lifetimes, Validity,
    FORMAT_VERSION,
};
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
/// The coordinator's etcd client certificate and key, when etcd is reached over TLS.
const ETCD_CLIENT_CERT: &str = "etcd-client.pem";
const ETCD_CLIENT_KEY: &str = "etcd-client.key";
/// The etcd user coordinators are (their etcd client certificates' common name).
pub const ETCD_USER: &str = "picluster-coordinator";
/// The names credentials were issued for, with their role (not secret).
const ISSUED: &str = "issued.json";
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
    /// How long certificates issued for this cluster are valid (clusters made before
    /// lifetimes were configurable get the defaults).
    #[serde(default)]
    pub lifetimes: Lifetimes,
    /// Every coordinator's advertised address when several share etcd (this one's
    /// among them); empty for a cluster with one coordinator. Bundles carry it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinators: Vec<String>,
    /// This coordinator's name among several (`picluster add-coordinator NAME`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the cluster's state lives when its coordinators share etcd; `None`:
    /// the redb file in this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etcd: Option<EtcdConfig>,
}

/// A cluster's etcd: its client URLs and the cluster's key prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdConfig {
    /// etcd's client URLs (`https://HOST:2379`).
    pub endpoints: Vec<String>,
    /// The cluster's keys live under `/picluster/<cluster_id>/`.
    pub cluster_id: String,
}

impl ClusterConfig {
    /// The names the coordinator's certificate must carry: every advertised host, and
    /// the listen IP when it is specific.
    pub fn coordinator_hosts(&self) -> Result<Vec<String>, ClusterError> {
        let mut hosts = Vec::new();
        for address in &self.advertise {
            let (host, _) = split_host_port(address)?;
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        if !self.listen.ip().is_unspecified() && !hosts.contains(&self.listen.ip().to_string()) {
            hosts.push(self.listen.ip().to_string());
        }
        Ok(hosts)
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
        Self::init_with(path, listen, advertise, Lifetimes::default())
    }

    /// [`ClusterDir::init`] with certificate lifetimes other than the defaults.
    pub fn init_with(
        path: &Path,
        listen: SocketAddr,
        advertise: &[String],
        lifetimes: Lifetimes,
    ) -> Result<ClusterDir, ClusterError> {
        let mut advertise = advertise.to_vec();
        if advertise.is_empty() {
            if listen.ip().is_unspecified() {
                return Err(ClusterError::NoAdvertisedAddress(listen));
            }
            advertise.push(listen.to_string());
        }
        let config = ClusterConfig {
            format: FORMAT_VERSION,
            listen,
            advertise,
            lifetimes,
            coordinators: Vec::new(),
            etcd: None,
            name: None,
        };
        let hosts = config.coordinator_hosts()?;
        make_private_dir(path)?;
        let cluster_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cluster".to_string());
        let ca = ClusterCa::generate_for(&cluster_name, lifetimes.ca_days)?;
        let coordinator = ca.issue_with(
            Role::Coordinator,
            "coordinator",
            &hosts,
            Validity::days(lifetimes.coordinator_days),
        )?;
        let admin = ca.bundle_for(
            Role::Admin,
            "admin",
            &config.advertise[0],
            lifetimes.peer_days,
        )?;
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
        self.peer_bundle(Role::Worker, name)
    }

    /// A new client bundle for `name` (submits and manages its own jobs), pointing
    /// at the first advertised address.
    pub fn client_bundle(&self, name: &str) -> Result<Bundle, ClusterError> {
        self.peer_bundle(Role::Client, name)
    }

    fn peer_bundle(&self, role: Role, name: &str) -> Result<Bundle, ClusterError> {
        self.issue_bundle(role, name, false)
    }

    /// A new bundle for `name` in `role` (worker or client). A name this directory
    /// issued a credential for before is refused unless `replace` (a reinstalled
    /// machine; revoke the old credential at the coordinator too), and so are the
    /// reserved names `admin` and `coordinator`. The name is recorded in
    /// `issued.json`.
    pub fn issue_bundle(
        &self,
        role: Role,
        name: &str,
        replace: bool,
    ) -> Result<Bundle, ClusterError> {
        super::check_name(name)?;
        if matches!(name, "admin" | "coordinator") {
            return Err(ClusterError::ReservedName(name.to_string()));
        }
        let mut issued = self.issued()?;
        if let Some(&role) = issued.get(name).filter(|_| !replace) {
            return Err(ClusterError::NameIssued {
                name: name.to_string(),
                role,
            });
        }
        let mut bundle = self.ca()?.bundle_for(
            role,
            name,
            &self.config.advertise[0],
            self.config.lifetimes.peer_days,
        )?;
        if self.config.coordinators.len() > 1 {
            bundle.coordinators = self.config.coordinators.clone();
        }
        issued.insert(name.to_string(), role);
        self.write_issued(&issued)?;
        Ok(bundle)
    }

    /// Records that the coordinator enrolled `name` in `role` with a join token, so
    /// that `add-worker NAME` and `add-client NAME` refuse it (without `--replace`)
    /// as they refuse a name they issued themselves.
    pub fn note_enrolled(&self, role: Role, name: &str) -> Result<(), ClusterError> {
        let mut issued = self.issued()?;
        if issued.get(name) == Some(&role) {
            return Ok(());
        }
        issued.insert(name.to_string(), role);
        self.write_issued(&issued)
    }

    /// The names this directory issued or enrolled credentials for.
    fn issued(&self) -> Result<std::collections::BTreeMap<String, Role>, ClusterError> {
        let path = self.path.join(ISSUED);
        if path.exists() {
            read_json(&path)
        } else {
            Ok(std::collections::BTreeMap::new())
        }
    }

    fn write_issued(
        &self,
        issued: &std::collections::BTreeMap<String, Role>,
    ) -> Result<(), ClusterError> {
        let path = self.path.join(ISSUED);
        // Replaced whole: written beside it, then renamed over it.
        let json = serde_json::to_string_pretty(issued).expect("names always serialize");
        let new = self.path.join(format!("{ISSUED}.new"));
        let _ = fs::remove_file(&new);
        write_new(&new, json.as_bytes())?;
        fs::rename(&new, &path).map_err(io_error(&path))
    }

    /// Keeps the cluster's state in etcd at `endpoints` rather than this directory's
    /// redb file: this coordinator is the first of several (`picluster init
    /// --etcd`). The cluster's keys go under `/picluster/<id>/`, the id taken from
    /// its CA certificate (so two clusters sharing one etcd never mix).
    pub fn use_etcd(&mut self, endpoints: Vec<String>) -> Result<&EtcdConfig, ClusterError> {
        let ca = self.ca_cert_pem()?;
        let digest = <sha2::Sha256 as sha2::Digest>::digest(ca.as_bytes());
        self.config.etcd = Some(EtcdConfig {
            endpoints,
            cluster_id: crate::hex::encode(&digest[..8]),
        });
        self.config.coordinators = vec![self.config.advertise[0].clone()];
        self.config
            .name
            .get_or_insert_with(|| "coordinator-1".to_string());
        self.issue_etcd_client(&self.path)?;
        self.write_config()?;
        Ok(self.config.etcd.as_ref().expect("just set"))
    }

    /// Gives another host a coordinator directory for this cluster, in `out` (which
    /// must not exist or be empty, made mode 0700): the CA (to sign joining and
    /// renewing workers' certificates), a coordinator certificate for its advertised
    /// hosts, the admin bundle, the names issued so far, and `cluster.json` with every
    /// coordinator's address. This directory's `cluster.json` gains the new address,
    /// so bundles issued from here on carry it. Only for clusters whose state is in
    /// etcd: two coordinators with redb files would be two clusters.
    pub fn add_coordinator(
        &mut self,
        name: &str,
        listen: SocketAddr,
        advertise: &[String],
        out: &Path,
    ) -> Result<ClusterDir, ClusterError> {
        super::check_name(name)?;
        if self.config.etcd.is_none() {
            return Err(ClusterError::NotShared(self.path.clone()));
        }
        let mut advertise = advertise.to_vec();
        if advertise.is_empty() {
            if listen.ip().is_unspecified() {
                return Err(ClusterError::NoAdvertisedAddress(listen));
            }
            advertise.push(listen.to_string());
        }
        if self.config.coordinators.contains(&advertise[0]) {
            return Err(ClusterError::CoordinatorExists(advertise[0].clone()));
        }
        let mut coordinators = self.config.coordinators.clone();
        coordinators.push(advertise[0].clone());
        let config = ClusterConfig {
            format: FORMAT_VERSION,
            listen,
            advertise,
            lifetimes: self.config.lifetimes,
            coordinators: coordinators.clone(),
            etcd: self.config.etcd.clone(),
            name: Some(name.to_string()),
        };
        let hosts = config.coordinator_hosts()?;
        let ca = self.ca()?;
        make_private_dir(out)?;
        let credential = ca.issue_with(
            Role::Coordinator,
            "coordinator",
            &hosts,
            Validity::days(config.lifetimes.coordinator_days),
        )?;
        let mut admin = Bundle::load(&self.path.join(ADMIN_BUNDLE))?;
        admin.coordinators = coordinators.clone();
        write_new_private(&out.join(CA_KEY), ca.key_pem().as_bytes())?;
        write_new(&out.join(CA_CERT), ca.cert_pem().as_bytes())?;
        write_new_private(&out.join(COORD_KEY), credential.key_pem.as_bytes())?;
        write_new(&out.join(COORD_CERT), credential.cert_pem.as_bytes())?;
        admin.save(&out.join(ADMIN_BUNDLE))?;
        self.issue_etcd_client(out)?;
        let issued = serde_json::to_string_pretty(&self.issued()?).expect("names always serialize");
        write_new(&out.join(ISSUED), issued.as_bytes())?;
        let json = serde_json::to_string_pretty(&config).expect("config always serializes");
        write_new(&out.join(CONFIG_FILE), json.as_bytes())?;
        // This directory's bundles carry the new address from now on.
        self.config.coordinators = coordinators.clone();
        self.write_config()?;
        admin.coordinators = coordinators;
        admin.save_replacing(&self.path.join(ADMIN_BUNDLE))?;
        Ok(ClusterDir {
            path: out.to_path_buf(),
            config,
        })
    }

    /// With `https://` etcd endpoints, a coordinator's etcd client certificate in
    /// `dir` (common name [`ETCD_USER`]); nothing for `http://`.
    fn issue_etcd_client(&self, dir: &Path) -> Result<(), ClusterError> {
        let tls = self
            .config
            .etcd
            .as_ref()
            .is_some_and(|e| e.endpoints.iter().any(|u| u.starts_with("https://")));
        if !tls {
            return Ok(());
        }
        let credential = self.ca()?.issue_etcd(
            super::EtcdCert::Client,
            ETCD_USER,
            &[],
            Validity::days(self.config.lifetimes.coordinator_days),
        )?;
        write_new_private(&dir.join(ETCD_CLIENT_KEY), credential.key_pem.as_bytes())?;
        write_new(&dir.join(ETCD_CLIENT_CERT), credential.cert_pem.as_bytes())
    }

    /// This coordinator's etcd client certificate and key, if it reaches etcd over
    /// TLS.
    pub fn etcd_client_credential(&self) -> Result<Option<Credential>, ClusterError> {
        if !self.path.join(ETCD_CLIENT_CERT).exists() {
            return Ok(None);
        }
        check_private(&self.path.join(ETCD_CLIENT_KEY))?;
        Ok(Some(Credential {
            cert_pem: read_text(&self.path.join(ETCD_CLIENT_CERT))?,
            key_pem: read_text(&self.path.join(ETCD_CLIENT_KEY))?,
        }))
    }

    /// Replaces `cluster.json` whole (written beside it, renamed over it).
    fn write_config(&self) -> Result<(), ClusterError> {
        let path = self.path.join(CONFIG_FILE);
        let json = serde_json::to_string_pretty(&self.config).expect("config always serializes");
        let new = self.path.join(format!("{CONFIG_FILE}.new"));
        let _ = fs::remove_file(&new);
        write_new(&new, json.as_bytes())?;
        fs::rename(&new, &path).map_err(io_error(&path))
    }

    /// Replaces the coordinator's certificate and key with new ones for the
    /// configured addresses and lifetime (before the old certificate expires; restart
    /// the coordinator to use them). The new files are written beside the old ones
    /// and renamed over them, so a failure leaves the old pair in place.
    pub fn renew_coordinator(&self) -> Result<Credential, ClusterError> {
        let credential = self.ca()?.issue_with(
            Role::Coordinator,
            "coordinator",
            &self.config.coordinator_hosts()?,
            Validity::days(self.config.lifetimes.coordinator_days),
        )?;
        let key_new = self.path.join(format!("{COORD_KEY}.new"));
        let cert_new = self.path.join(format!("{COORD_CERT}.new"));
        for stale in [&key_new, &cert_new] {
            match fs::remove_file(stale) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io_error(stale)(e))
                }
                _ => {}
            }
        }
        write_new_private(&key_new, credential.key_pem.as_bytes())?;
        write_new(&cert_new, credential.cert_pem.as_bytes())?;
        let key = self.path.join(COORD_KEY);
        let cert = self.path.join(COORD_CERT);
        // A crash between the two renames leaves the new key beside the old
        // certificate: running the command again mends it.
        fs::rename(&key_new, &key).map_err(io_error(&key))?;
        fs::rename(&cert_new, &cert).map_err(io_error(&cert))?;
        Ok(credential)
    }
}

/// Makes `path` (absent or empty) a directory only its owner may read: it holds the
/// CA key and the job store, whatever the umask.
fn make_private_dir(path: &Path) -> Result<(), ClusterError> {
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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_error(path))?;
    }
    Ok(())
}
