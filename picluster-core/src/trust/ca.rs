//! The cluster CA and the certificates it issues.

use super::{check_name, Bundle, ClusterError, FORMAT_VERSION};
use crate::identity::Role;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

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
        role: Role,
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
            Role::Coordinator => vec![ExtendedKeyUsagePurpose::ServerAuth],
            Role::Worker | Role::Client | Role::Admin => {
                vec![ExtendedKeyUsagePurpose::ClientAuth]
            }
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
        role: Role,
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
