//! Bundles: where the coordinator is, which CA to trust, and the holder's own
//! certificate and key, in one JSON file.

use super::files::{io_error, read_json, write_new_private};
use super::{split_host_port, ClusterError, FORMAT_VERSION};
use crate::identity::Role;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Everything a worker or client needs: where the coordinator is, which CA to trust,
/// and its own certificate and key. Stored as one JSON file with mode 0600.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// Format version.
    pub format: u32,
    /// The holder's role.
    pub role: Role,
    /// The holder's name.
    pub name: String,
    /// The coordinator's address, `HOST:PORT`.
    pub coordinator: String,
    /// Every coordinator's address when several share etcd (a leader and standbys),
    /// `coordinator` among them; empty for a cluster with one coordinator (and in
    /// bundles made before there could be several).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub coordinators: Vec<String>,
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

    /// Replaces the bundle at `path` (a renewed certificate): the new one is written
    /// to a file beside it with mode 0600 and renamed over it, so a crash leaves the
    /// old bundle or the new one, never half of either.
    pub fn save_replacing(&self, path: &Path) -> Result<(), ClusterError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(".new");
        let new = path.with_file_name(name);
        match std::fs::remove_file(&new) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&new)(e)),
            _ => {}
        }
        self.save(&new)?;
        std::fs::rename(&new, path).map_err(io_error(path))
    }

    /// The role, name, issuing and expiry times its certificate carries.
    pub fn identity(&self) -> Result<crate::identity::PeerIdentity, ClusterError> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(self.cert.as_bytes())
            .map_err(|_| ClusterError::BadRequest("the bundle's certificate is not PEM".into()))?;
        super::identity_of(&der).map_err(|e| ClusterError::BadRequest(e.to_string()))
    }

    /// Every address to dial, `coordinator` first, each once.
    pub fn addresses(&self) -> Vec<String> {
        let mut all = vec![self.coordinator.clone()];
        for a in &self.coordinators {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }

    /// The coordinator's host and port.
    pub fn coordinator_host_port(&self) -> Result<(String, u16), ClusterError> {
        split_host_port(&self.coordinator)
    }
}
