//! rustls configurations for mutual TLS with the cluster CA: TLS 1.3 only, ALPN
//! `picluster/1`, every peer's certificate issued by the cluster CA.

use super::NetError;
use crate::identity::PeerIdentity;
use crate::trust::{identity_of, Bundle, CertificateError, Credential};
use crate::wire::ALPN;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, NetError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| NetError::Pem { what })?;
    if certs.is_empty() {
        return Err(NetError::Pem { what });
    }
    Ok(certs)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, NetError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| NetError::Pem {
        what: "private key",
    })
}

fn roots(ca_pem: &str) -> Result<rustls::RootCertStore, NetError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(ca_pem, "CA certificate")? {
        roots.add(cert)?;
    }
    Ok(roots)
}

fn transport(keep_alive: bool, server: bool, several: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    if server {
        // A peer speaks on one stream: it may open no other, and what it can make the
        // coordinator buffer for it is bounded (a frame is at most 1 MiB), both ways:
        // what it sends and is not read yet, and what it is sent and does not read.
        transport
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .receive_window(quinn::VarInt::from_u32(1 << 20))
            .stream_receive_window(quinn::VarInt::from_u32(256 << 10))
            .send_window(2 << 20);
    }
    // With several coordinators, a dead leader must be noticed about as soon as
    // a standby can replace it (its lease lapses within 3 s): the dialling side asks
    // for the shorter idle timeout (QUIC takes the smaller of the two ends').
    let (idle, keep) = if several {
        (super::HA_IDLE_TIMEOUT, super::HA_KEEP_ALIVE)
    } else {
        (super::IDLE_TIMEOUT, super::KEEP_ALIVE)
    };
    transport.max_idle_timeout(Some(idle.try_into().expect("a valid idle timeout")));
    if keep_alive {
        transport.keep_alive_interval(Some(keep));
        // A worker sends a small report four times a second; asking the coordinator
        // to acknowledge every tenth packet (or after 50 ms) instead of every other one
        // spares it most of its outgoing packets when a thousand workers report.
        let mut ack = quinn::AckFrequencyConfig::default();
        ack.ack_eliciting_threshold(quinn::VarInt::from_u32(10))
            .max_ack_delay(Some(Duration::from_millis(50)));
        transport.ack_frequency_config(Some(ack));
    }
    Arc::new(transport)
}

/// The coordinator's QUIC server configuration: TLS 1.3 only, ALPN `picluster/1`,
/// and every peer must present a certificate issued by the cluster CA.
pub fn server_config(
    ca_pem: &str,
    credential: &Credential,
) -> Result<quinn::ServerConfig, NetError> {
    // A peer without a certificate is let through the handshake, to join with a
    // token and nothing else (the coordinator decides); a certificate that is
    // presented must verify.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    // The chain carries the CA certificate too: a joining worker checks it against
    // its token's pin, then the coordinator's certificate against it.
    let mut chain = certs(&credential.cert_pem, "certificate")?;
    chain.extend(certs(ca_pem, "CA certificate")?);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key(&credential.key_pem)?)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(false, true, false));
    Ok(config)
}

/// A worker's or client's QUIC configuration: trusts only the cluster CA and presents
/// the bundle's certificate.
pub fn client_config(bundle: &Bundle) -> Result<quinn::ClientConfig, NetError> {
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(&bundle.ca)?)
        .with_client_auth_cert(certs(&bundle.cert, "certificate")?, key(&bundle.key)?)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(true, false, bundle.addresses().len() > 1));
    Ok(config)
}

/// Who is on the other end of `conn`, from its verified certificate.
pub fn peer_identity(conn: &quinn::Connection) -> Result<PeerIdentity, CertificateError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(CertificateError::Missing)?;
    identity_of(chain.first().ok_or(CertificateError::Missing)?)
}

/// A joining worker's QUIC configuration: it has no certificate yet and trusts the
/// coordinator only if the chain it presents holds a CA certificate whose public key
/// matches `pin` (SHA-256 of its SubjectPublicKeyInfo) and the coordinator's
/// certificate verifies against that CA for the name dialled. Nothing is sent before
/// that check passes, so an impostor never sees the token's secret. The CA that
/// passed is kept in [`PinnedCa::ca`].
pub fn join_config(pin: [u8; 32]) -> Result<(quinn::ClientConfig, Arc<PinnedCa>), NetError> {
    let verifier = Arc::new(PinnedCa {
        pin,
        provider: provider(),
        outcome: std::sync::Mutex::new(None),
    });
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicClientConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(false, false, false));
    Ok((config, verifier))
}

/// Verifies a coordinator against a pinned CA key (see [`join_config`]).
#[derive(Debug)]
pub struct PinnedCa {
    pin: [u8; 32],
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// `Ok(CA)` once a chain passed; `Err(())` if no CA in it matched the pin.
    outcome: std::sync::Mutex<Option<Result<CertificateDer<'static>, ()>>>,
}

impl PinnedCa {
    /// The CA certificate that matched the pin, once the handshake passed.
    pub fn ca(&self) -> Option<CertificateDer<'static>> {
        crate::sync::lock(&self.outcome)
            .clone()
            .and_then(Result::ok)
    }

    /// Whether the coordinator presented no CA matching the pin.
    pub fn mismatched(&self) -> bool {
        matches!(*crate::sync::lock(&self.outcome), Some(Err(())))
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| crate::trust::spki_sha256(c).is_some_and(|pin| pin == self.pin))
        else {
            *crate::sync::lock(&self.outcome) = Some(Err(()));
            return Err(rustls::Error::General(
                "the coordinator's CA does not match the join token's pin".into(),
            ));
        };
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let verified =
            inner.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *crate::sync::lock(&self.outcome) = Some(Ok(ca.clone().into_owned()));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// PEM text of a DER certificate.
pub fn cert_pem(der: &[u8]) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
