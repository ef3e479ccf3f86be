//! A peer's identity from its verified certificate: the role is the subject's
//! organisational unit, the name its common name.

use crate::identity::{PeerIdentity, Role};
use rustls_pki_types::CertificateDer;
use x509_parser::error::X509Error;

/// Why a verified certificate does not name a picluster peer. Retrying with the same
/// certificate cannot help.
#[derive(Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The peer presented no certificate.
    #[error("no certificate")]
    Missing,
    /// The certificate does not parse as X.509.
    #[error("unparseable certificate: {0}")]
    Unparseable(X509Error),
    /// The subject's organisational unit names no picluster role.
    #[error("certificate subject `{subject}` names no picluster role")]
    NoRole {
        /// The subject, as text.
        subject: String,
    },
    /// The subject has no common name.
    #[error("certificate subject `{subject}` has no common name")]
    NoName {
        /// The subject, as text.
        subject: String,
    },
}

/// The role and name a certificate grants (organisational unit and common name).
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, CertificateError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).map_err(|e| match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => {
            CertificateError::Unparseable(e)
        }
        x509_parser::nom::Err::Incomplete(_) => {
            CertificateError::Unparseable(X509Error::InvalidCertificate)
        }
    })?;
    let subject = parsed.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let role = first(&mut subject.iter_organizational_unit())
        .as_deref()
        .and_then(Role::from_unit)
        .ok_or_else(|| CertificateError::NoRole {
            subject: subject.to_string(),
        })?;
    let name = first(&mut subject.iter_common_name()).ok_or_else(|| CertificateError::NoName {
        subject: subject.to_string(),
    })?;
    let validity = parsed.validity();
    let ms = |t: x509_parser::time::ASN1Time| {
        u64::try_from(t.timestamp().saturating_mul(1000)).unwrap_or(0)
    };
    let serial = parsed.tbs_certificate.raw_serial();
    let issued_ms = match serial.strip_prefix(&super::ca::SERIAL_TAG) {
        Some(rest) if rest.len() == 16 => {
            u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"))
        }
        _ => ms(validity.not_before),
    };
    Ok(PeerIdentity {
        role,
        name,
        issued_ms,
        not_before_ms: ms(validity.not_before),
        expires_ms: ms(validity.not_after),
    })
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo: the pin a join token carries
/// for the cluster CA. `None` if `cert` is not a certificate.
pub fn spki_sha256(cert: &[u8]) -> Option<[u8; 32]> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(<sha2::Sha256 as sha2::Digest>::digest(parsed.tbs_certificate.subject_pki.raw).into())
}

crate::debug_as_display!(CertificateError);
