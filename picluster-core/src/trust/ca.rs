//! The cluster CA and the certificates it issues.

use super::{check_name, Bundle, ClusterError, FORMAT_VERSION};
use crate::identity::Role;
use crate::wire::CsrError;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// How long the certificates of a cluster are valid, in days (chosen at `init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifetimes {
    /// The cluster CA (default ten years).
    pub ca_days: u32,
    /// The coordinator's certificate (default one year).
    pub coordinator_days: u32,
    /// Workers' and clients' certificates (default 90 days; workers renew theirs when
    /// two thirds have passed).
    pub peer_days: u32,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Lifetimes {
            ca_days: 3650,
            coordinator_days: 365,
            peer_days: 90,
        }
    }
}

impl Lifetimes {
    /// The lifetime of a certificate for `role`.
    pub fn days(&self, role: Role) -> u32 {
        match role {
            Role::Coordinator => self.coordinator_days,
            Role::Worker | Role::Client | Role::Admin => self.peer_days,
        }
    }
}

/// When a certificate is valid. Issued ones start a day early, so a Pi whose clock
/// has not caught up yet (no real-time clock, NTP not synced) accepts them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// Not valid before.
    pub not_before: OffsetDateTime,
    /// Not valid after.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a day ago to `days` from now.
    pub fn days(days: u32) -> Validity {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(i64::from(days)),
        }
    }
}

/// The first bytes of the serial numbers picluster gives: `PC`, then the issuing
/// time in Unix milliseconds (8 bytes, big-endian), then 8 random bytes. The time
/// lets a revocation cover every certificate of a name issued up to it, and none
/// issued later.
pub(crate) const SERIAL_TAG: [u8; 2] = *b"PC";

fn now_ms() -> u64 {
    u64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn serial_number(ms: u64) -> Result<SerialNumber, ClusterError> {
    let mut random = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    let mut bytes = SERIAL_TAG.to_vec();
    bytes.extend_from_slice(&ms.to_be_bytes());
    bytes.extend_from_slice(&random);
    Ok(SerialNumber::from_slice(&bytes))
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
        Self::generate_for(cluster_name, Lifetimes::default().ca_days)
    }

    /// A new CA with a fresh key, valid for `days`.
    pub fn generate_for(cluster_name: &str, days: u32) -> Result<ClusterCa, ClusterError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name =
            distinguished_name("ca", &format!("picluster CA {cluster_name}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        set_validity(&mut params, Validity::days(days));
        params.serial_number = Some(serial_number(now_ms())?);
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

    /// Issues a certificate for `name` in `role`, valid for the role's default
    /// lifetime. `hosts` (DNS names or IPs) become subject alternative names; only the
    /// coordinator's certificate needs them.
    pub fn issue(
        &self,
        role: Role,
        name: &str,
        hosts: &[String],
    ) -> Result<Credential, ClusterError> {
        self.issue_with(
            role,
            name,
            hosts,
            Validity::days(Lifetimes::default().days(role)),
        )
    }

    /// Issues a certificate with a fresh key for `name` in `role`, valid as `validity`
    /// says.
    pub fn issue_with(
        &self,
        role: Role,
        name: &str,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Credential, ClusterError> {
        let key = KeyPair::generate()?;
        let cert_pem = self.sign(role, name, hosts, validity, now_ms(), &key)?;
        Ok(Credential {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }

    /// A certificate for etcd, for coordinators sharing it: an etcd member's
    /// (`EtcdCert::Member`: it serves clients and its peers at `hosts`), or a client's
    /// (`EtcdCert::Client`: etcd takes the common name `name` as the etcd user, whose
    /// role decides what it may read and write once etcd's auth is on).
    pub fn issue_etcd(
        &self,
        kind: EtcdCert,
        name: &str,
        hosts: &[String],
        validity: Validity,
    ) -> Result<Credential, ClusterError> {
        check_name(name)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = distinguished_name("etcd", name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match kind {
            // Members are servers to clients and clients to each other.
            EtcdCert::Member => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            EtcdCert::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        set_validity(&mut params, validity);
        params.serial_number = Some(serial_number(now_ms())?);
        Ok(Credential {
            cert_pem: params.signed_by(&key, &self.issuer)?.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Signs the public key of a certificate request (DER) for `name` in `role`,
    /// valid for `days`, its serial number saying it was issued at `issued_ms` (Unix
    /// milliseconds; the coordinator's clock decides, so a revocation just before is
    /// ordered before it); returns the certificate (PEM). The request's signature must
    /// verify (its sender holds the key); every name, usage or extension it asks for
    /// is ignored: the certificate carries the role and name given here.
    pub fn sign_request(
        &self,
        role: Role,
        name: &str,
        request_der: &[u8],
        days: u32,
        issued_ms: u64,
    ) -> Result<String, ClusterError> {
        let request = verify_request(request_der)?;
        self.sign(
            role,
            name,
            &[],
            Validity::days(days),
            issued_ms,
            &request.public_key,
        )
    }

    fn sign(
        &self,
        role: Role,
        name: &str,
        hosts: &[String],
        validity: Validity,
        issued_ms: u64,
        key: &impl PublicKeyData,
    ) -> Result<String, ClusterError> {
        check_name(name)?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params.distinguished_name = distinguished_name(role.as_str(), name);
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match role {
            Role::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Role::Worker | Role::Client | Role::Admin => {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
        };
        set_validity(&mut params, validity);
        params.serial_number = Some(serial_number(issued_ms)?);
        Ok(params.signed_by(key, &self.issuer)?.pem())
    }

    /// A bundle for `name` in `role`, pointing at `coordinator`, valid for the role's
    /// default lifetime.
    pub fn bundle(
        &self,
        role: Role,
        name: &str,
        coordinator: &str,
    ) -> Result<Bundle, ClusterError> {
        self.bundle_for(role, name, coordinator, Lifetimes::default().days(role))
    }

    /// A bundle for `name` in `role`, pointing at `coordinator`, valid for `days`.
    pub fn bundle_for(
        &self,
        role: Role,
        name: &str,
        coordinator: &str,
        days: u32,
    ) -> Result<Bundle, ClusterError> {
        let credential = self.issue_with(role, name, &[], Validity::days(days))?;
        Ok(Bundle {
            format: FORMAT_VERSION,
            role,
            name: name.to_string(),
            coordinator: coordinator.to_string(),
            coordinators: Vec::new(),
            ca: self.cert_pem.clone(),
            cert: credential.cert_pem,
            key: credential.key_pem,
        })
    }
}

/// Which etcd certificate [`ClusterCa::issue_etcd`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EtcdCert {
    /// An etcd member's: server and peer.
    Member,
    /// A client's (a coordinator's, or the operator's `root`).
    Client,
}

fn distinguished_name(role: &str, name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "picluster");
    dn.push(DnType::OrganizationalUnitName, role);
    dn.push(DnType::CommonName, name);
    dn
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
}

/// A certificate request whose signature verifies.
pub fn verify_request(der: &[u8]) -> Result<CertificateSigningRequestParams, ClusterError> {
    if der.len() > MAX_REQUEST_LEN {
        return Err(ClusterError::Csr(CsrError::TooLong {
            len: der.len() as u64,
            max: MAX_REQUEST_LEN as u64,
        }));
    }
    CertificateSigningRequestParams::from_der(&der.into()).map_err(|e| {
        ClusterError::Csr(match e {
            rcgen::Error::InvalidCertificationRequestSignature => CsrError::BadSignature,
            rcgen::Error::CouldNotParseCertificationRequest => CsrError::NotARequest,
            other => CsrError::Unusable(other.to_string()),
        })
    })
}

/// The longest certificate request accepted (one with an RSA-4096 key is ~1.7 kB).
pub const MAX_REQUEST_LEN: usize = 8 * 1024;

/// Makes a key pair and a certificate request (DER) for it, as a joining or renewing
/// worker does: the private key never leaves the machine that made it.
pub fn make_request(name: &str) -> Result<(KeyPair, Vec<u8>), ClusterError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = distinguished_name("request", name);
    let request = params.serialize_request(&key)?;
    Ok((key, request.der().to_vec()))
}

/// A new join token for the cluster of `bundle` (an admin's): a random id and
/// secret, the pin of the bundle's CA, and the bundle's coordinator addresses.
pub fn new_join_token(bundle: &Bundle) -> Result<crate::token::JoinToken, ClusterError> {
    use crate::token::{JoinToken, TOKEN_ID_LEN, TOKEN_SECRET_LEN};
    use rustls_pki_types::pem::PemObject;
    let ca = rustls_pki_types::CertificateDer::from_pem_slice(bundle.ca.as_bytes())
        .map_err(|_| ClusterError::BadRequest("the bundle's CA certificate is not PEM".into()))?;
    let pin = super::cert::spki_sha256(&ca).ok_or_else(|| {
        ClusterError::BadRequest("the bundle's CA certificate does not parse".into())
    })?;
    let mut id = [0u8; TOKEN_ID_LEN];
    let mut secret = [0u8; TOKEN_SECRET_LEN];
    let rng = ring::rand::SystemRandom::new();
    ring::rand::SecureRandom::fill(&rng, &mut id)
        .and_then(|()| ring::rand::SecureRandom::fill(&rng, &mut secret))
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    Ok(JoinToken {
        id: crate::hex::encode(&id),
        secret,
        ca_pin: pin,
        address: bundle.coordinator.clone(),
        more: bundle
            .addresses()
            .into_iter()
            .filter(|a| *a != bundle.coordinator)
            .collect(),
    })
}
