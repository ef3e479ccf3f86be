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

fn transport(keep_alive: bool, server: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    if server {
        // A peer speaks on one stream: it may open no other, and what it can make the
        // coordinator buffer for it is bounded (a frame is at most 1 MiB).
        transport
            .max_concurrent_bidi_streams(quinn::VarInt::from_u32(1))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .receive_window(quinn::VarInt::from_u32(4 << 20));
    }
    transport.max_idle_timeout(Some(
        super::IDLE_TIMEOUT
            .try_into()
            .expect("10 s is a valid idle timeout"),
    ));
    if keep_alive {
        transport.keep_alive_interval(Some(super::KEEP_ALIVE));
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
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(ca_pem)?),
        provider(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(&credential.cert_pem, "certificate")?,
            key(&credential.key_pem)?,
        )?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto =
        QuicServerConfig::try_from(tls).map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(false, true));
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
    config.transport_config(transport(true, false));
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
