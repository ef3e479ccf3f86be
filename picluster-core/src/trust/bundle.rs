//! Bundles: where the coordinator is, which CA to trust, and the holder's own
//! certificate and key, in one JSON file.

use super::files::{read_json, write_new_private};
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
