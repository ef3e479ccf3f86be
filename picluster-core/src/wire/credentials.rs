//! Credentials on the wire: join tokens and revocations as an admin manages them,
//! the certificates a client sees in `status`, and the join protocol a worker with
//! no certificate yet speaks to enroll (`picluster-worker --join TOKEN`).
//!
//! A join connection presents no client certificate. It sends one
//! [`JoinToCoord::Join`] and gets one [`CoordToJoin`] back; the coordinator then
//! closes it. Nothing else may be said on it.

use crate::identity::Role;
use crate::ids::RequestId;
use serde::{Deserialize, Serialize};

/// An admin's request for a new join token. The client makes the id and the secret
/// and sends only the secret's SHA-256: the coordinator never learns a secret it
/// could leak.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateToken {
    /// Echoed in the reply.
    pub request: RequestId,
    /// The token's id (its public half).
    pub id: String,
    /// SHA-256 of the secret.
    pub secret_sha256: [u8; 32],
    /// The role of the certificates it enrolls (worker or client).
    pub role: Role,
    /// Seconds until it expires.
    pub ttl_s: u64,
    /// How many enrollments it allows.
    pub uses: u32,
    /// Whether it may enroll a name that is already enrolled (the old certificates
    /// of that name are then revoked).
    pub replace: bool,
}

/// A join token as the coordinator keeps it (without its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: String,
    /// The role it enrolls.
    pub role: Role,
    /// The admin that made it.
    pub created_by: String,
    /// When it was made, Unix milliseconds.
    pub created_ms: u64,
    /// When it expires, Unix milliseconds.
    pub expires_ms: u64,
    /// Enrollments left.
    pub uses_left: u32,
    /// Whether it may replace an enrolled name.
    pub replace: bool,
}

/// A request about one join token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    /// Echoed in the reply.
    pub request: RequestId,
    /// The token's id.
    pub id: String,
}

/// The certificates the coordinator knows: those of its connected peers, and the
/// names revoked.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialReport {
    /// Certificates of connected workers and clients, by name.
    pub connected: Vec<CertificateStatus>,
    /// Names whose certificates are revoked.
    pub revoked: Vec<Revocation>,
}

/// A connected peer's certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateStatus {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// When it was issued, Unix milliseconds.
    pub issued_ms: u64,
    /// When it expires, Unix milliseconds.
    pub expires_ms: u64,
}

/// A revoked name: its certificates issued up to `revoked_ms` are refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    /// The name.
    pub name: String,
    /// When it was revoked, Unix milliseconds.
    pub revoked_ms: u64,
    /// Connections closed by the revocation (in the reply to `Revoke`).
    pub closed: u32,
}

/// A worker's request for a new certificate for its own name and role, made over its
/// working connection when two thirds of its certificate's lifetime have passed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renew {
    /// A PKCS#10 certificate request (DER) for a key the worker just made.
    pub csr: Vec<u8>,
}

/// The renewed certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewed {
    /// The certificate (PEM), for the key of the request.
    pub cert_pem: String,
}

/// Messages from a joining worker (no certificate yet) to the coordinator.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinToCoord {
    /// Enroll with a token.
    Join(JoinRequest),
}

/// An enrollment request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// Highest minor protocol version the worker speaks.
    pub minor: u16,
    /// The token's id.
    pub token: String,
    /// The token's secret.
    pub secret: [u8; 16],
    /// The name to enroll.
    pub name: String,
    /// The role it enrolls as: a token for another role is refused unspent.
    pub role: Role,
    /// A PKCS#10 certificate request (DER) for the worker's own key.
    pub csr: Vec<u8>,
}

/// Messages from the coordinator to a joining worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordToJoin {
    /// The certificate, bound to the name and the token's role.
    Enrolled(Enrolled),
    /// Refused; the connection closes.
    Refused(JoinRefusal),
}

/// A new certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolled {
    /// The role it carries.
    pub role: Role,
    /// The name it carries.
    pub name: String,
    /// The certificate (PEM).
    pub cert_pem: String,
}

/// Why an enrollment or renewal was refused. Retrying with the same token cannot
/// help.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum JoinRefusal {
    /// No token has this id, or its secret is wrong (not told apart, so a guess
    /// learns nothing).
    #[error("the join token is not valid: no such token, or a wrong secret")]
    UnknownToken,
    /// The token has expired.
    #[error("join token {0} has expired: ask the admin for a new one (`picluster token create`)")]
    Expired(String),
    /// The token has been used as often as it allows.
    #[error(
        "join token {0} has been used up: ask the admin for a new one (`picluster token create`)"
    )]
    UsedUp(String),
    /// The name is enrolled already and the token may not replace it.
    #[error("the name {0} is already enrolled: choose another name, or ask the admin for a token that may replace it (`picluster token create --replace`)")]
    NameTaken(String),
    /// The name is not a valid one.
    #[error("invalid name `{0}`: use 1-63 characters from A-Z a-z 0-9 . _ -")]
    BadName(String),
    /// The certificate request is not valid.
    #[error("certificate request refused: {0}")]
    BadRequest(String),
    /// This coordinator holds no CA key and cannot issue certificates.
    #[error(
        "this coordinator cannot issue certificates (it was started without its cluster's CA key)"
    )]
    CannotIssue,
    /// The token enrolls another role than the one asked for.
    #[error("this join token enrolls a {token}, not a {asked}: use it with {}", if *.token == Role::Worker { "picluster-worker --join" } else { "picluster join" })]
    WrongRole {
        /// The token's role.
        token: Role,
        /// The role asked for.
        asked: Role,
    },
    /// The certificate request is not one the coordinator signs (minor 4;
    /// `BadRequest` before).
    #[error("certificate request refused: {0}")]
    BadCsr(CsrError),
    /// A renewal before the last third of the certificate's life (minor 4;
    /// `BadRequest` before): a certificate is renewed once it is due, not at will.
    #[error("this certificate is not due for renewal before {due_ms} (Unix ms): certificates are renewed in the last third of their life")]
    NotDue {
        /// When it is due (Unix milliseconds).
        due_ms: u64,
    },
}

impl JoinRefusal {
    /// The refusal as a peer speaking `minor` decodes it: `BadCsr` and `NotDue`
    /// become the `BadRequest` they replace, with the same text.
    pub fn for_minor(self, minor: u16) -> JoinRefusal {
        if minor >= super::MINOR_TYPED_REFUSALS {
            return self;
        }
        match self {
            JoinRefusal::BadCsr(e) => JoinRefusal::BadRequest(e.to_string()),
            refusal @ JoinRefusal::NotDue { .. } => JoinRefusal::BadRequest(refusal.to_string()),
            other => other,
        }
    }
}

/// Why a certificate request (PKCS#10) is not one the coordinator signs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Longer than a request may be.
    #[error("{len} bytes is longer than a certificate request may be ({max})")]
    TooLong {
        /// Its length.
        len: u64,
        /// The most allowed.
        max: u64,
    },
    /// Its signature does not verify with the key it carries.
    #[error("its signature does not verify")]
    BadSignature,
    /// Not a DER certificate request.
    #[error("it is not a DER certificate request (PKCS#10)")]
    NotARequest,
    /// A request the certificate library cannot use (an unsupported key or
    /// algorithm), in its words.
    #[error("{0}")]
    Unusable(String),
}
