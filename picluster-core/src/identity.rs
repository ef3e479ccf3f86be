//! Who a peer is: the role its certificate grants and its name. The coordinator
//! decides from these alone, never from what a peer says about itself; the IO half
//! ([`crate::trust`]) reads them from verified certificates, where the role is the
//! subject's organisational unit and the name its common name.

use serde::{Deserialize, Serialize};

/// What a certificate lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The coordinator's server certificate: it may not connect as a peer.
    Coordinator,
    /// Takes chunks and computes.
    Worker,
    /// Submits and manages jobs.
    Client,
    /// Manages the cluster; today a client with every right.
    Admin,
}

impl Role {
    /// The organisational unit written into certificates, and the name in bundles.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Coordinator => "coordinator",
            Role::Worker => "worker",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    /// The role named by a certificate's organisational unit.
    pub fn from_unit(unit: &str) -> Option<Role> {
        [Role::Coordinator, Role::Worker, Role::Client, Role::Admin]
            .into_iter()
            .find(|r| r.as_str() == unit)
    }

    /// Whether a peer of this role speaks the client protocol.
    pub fn is_client(self) -> bool {
        matches!(self, Role::Client | Role::Admin)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `name` may name a worker or client: 1-63 characters from
/// `A-Z a-z 0-9 . _ -`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// What a peer's certificate says it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// Its role.
    pub role: Role,
    /// Its name (the certificate's common name).
    pub name: String,
    /// When the certificate was issued, Unix milliseconds (from its serial number;
    /// for a certificate not issued by picluster, its start of validity). A
    /// revocation of the name covers the certificates issued up to it.
    pub issued_ms: u64,
    /// When the certificate starts being valid, Unix milliseconds.
    pub not_before_ms: u64,
    /// When the certificate expires, Unix milliseconds.
    pub expires_ms: u64,
}

impl PeerIdentity {
    /// An identity with a certificate issued at the epoch that never expires (for
    /// tests and simulations, which have no certificates).
    pub fn new(role: Role, name: impl Into<String>) -> PeerIdentity {
        PeerIdentity {
            role,
            name: name.into(),
            issued_ms: 0,
            not_before_ms: 0,
            expires_ms: u64::MAX,
        }
    }
}
