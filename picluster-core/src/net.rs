//! QUIC and TLS plumbing shared by coordinator, workers and clients: rustls
//! configurations for mutual TLS with the cluster CA, the peer identity read from a
//! verified certificate, frame reading and writing on QUIC streams, and `connect`,
//! which dials the coordinator and completes the hello/welcome exchange.
//!
//! With TLS 1.3 a client learns that the server refused its certificate only when it
//! first uses the connection, so `connect` does not return until the welcome frame
//! arrived: a refused certificate is reported by `connect` itself, as
//! [`NetError::CertificateRejected`]. Does not own any decision about messages.

use crate::cluster::{Bundle, CertRole, ClusterError, Credential};
use crate::coordinator::{PeerIdentity, Role};
use crate::wire::{self, CloseCode, FrameError, ALPN, FRAME_HEADER_LEN};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{de::DeserializeOwned, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// QUIC idle timeout: a peer silent this long is gone. Short, for a LAN of Pis.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval of dialling peers, which also keeps NAT mappings open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// How long `connect` waits for the handshake and the welcome.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a network operation failed. [`NetError::is_retryable`] says whether trying
/// again later can help.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The bundle or cluster files are unusable.
    #[error(transparent)]
    Credentials(#[from] ClusterError),
    /// A certificate or key in PEM could not be read.
    #[error("{what}: not a valid PEM {what}")]
    Pem {
        /// Which item.
        what: &'static str,
    },
    /// rustls refused the configuration (e.g. a key that does not match its certificate).
    #[error("TLS configuration: {0}")]
    TlsConfig(#[from] rustls::Error),
    /// The coordinator's host name did not resolve.
    #[error("cannot resolve {address}: {source}")]
    Resolve {
        /// What was looked up.
        address: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Binding or using the UDP socket failed.
    #[error("UDP socket: {0}")]
    Socket(std::io::Error),
    /// quinn refused to start the connection.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The TLS handshake failed: a certificate was refused by either side. Not
    /// helped by retrying: the bundle does not belong to this cluster.
    #[error("certificate refused: {0}")]
    CertificateRejected(String),
    /// The peer closed the connection with an application close code.
    #[error("connection closed by peer ({code}): {reason}")]
    Closed {
        /// The close code (see [`CloseCode`]).
        code: u32,
        /// The peer's reason text.
        reason: String,
    },
    /// The connection was lost (timeout, reset, or closed locally).
    #[error("connection lost: {0}")]
    Lost(quinn::ConnectionError),
    /// The peer sent an invalid frame.
    #[error("invalid frame from peer: {0}")]
    BadFrame(#[from] FrameError),
    /// The peer ended the stream.
    #[error("the peer ended the stream")]
    StreamEnded,
    /// Connecting took longer than [`CONNECT_TIMEOUT`].
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The certificate's subject does not name a picluster role.
    #[error("certificate does not name a picluster worker or client: {0}")]
    UnknownRole(String),
}

impl NetError {
    /// Whether retrying later can help: network trouble and a coordinator that is
    /// restarting can pass; a refused certificate or a broken protocol cannot.
    pub fn is_retryable(&self) -> bool {
        match self {
            NetError::Resolve { .. }
            | NetError::Socket(_)
            | NetError::Lost(_)
            | NetError::StreamEnded
            | NetError::Timeout(_) => true,
            NetError::Closed { code, .. } => matches!(
                CloseCode::from_u32(*code),
                Some(CloseCode::ShuttingDown | CloseCode::Replaced | CloseCode::Normal)
            ),
            NetError::Credentials(_)
            | NetError::Pem { .. }
            | NetError::TlsConfig(_)
            | NetError::Connect(_)
            | NetError::CertificateRejected(_)
            | NetError::BadFrame(_)
            | NetError::UnknownRole(_) => false,
        }
    }
}

impl From<quinn::ConnectionError> for NetError {
    fn from(e: quinn::ConnectionError) -> Self {
        use quinn::ConnectionError as E;
        let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
        match e {
            E::ApplicationClosed(close) => NetError::Closed {
                code: close.error_code.into_inner() as u32,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            E::ConnectionClosed(ref close) if is_crypto(close.error_code) => {
                NetError::CertificateRejected(format!(
                    "the coordinator refused this certificate ({}); is the bundle from this cluster?",
                    close
                ))
            }
            E::TransportError(ref t) if is_crypto(t.code) => NetError::CertificateRejected(
                format!("the coordinator's certificate is not trusted ({t}); is the bundle from this cluster?"),
            ),
            other => NetError::Lost(other),
        }
    }
}

impl From<quinn::ReadExactError> for NetError {
    fn from(e: quinn::ReadExactError) -> Self {
        match e {
            quinn::ReadExactError::FinishedEarly(_) => NetError::StreamEnded,
            quinn::ReadExactError::ReadError(e) => e.into(),
        }
    }
}

impl From<quinn::ReadError> for NetError {
    fn from(e: quinn::ReadError) -> Self {
        match e {
            quinn::ReadError::ConnectionLost(e) => e.into(),
            _ => NetError::StreamEnded,
        }
    }
}

impl From<quinn::WriteError> for NetError {
    fn from(e: quinn::WriteError) -> Self {
        match e {
            quinn::WriteError::ConnectionLost(e) => e.into(),
            _ => NetError::StreamEnded,
        }
    }
}

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

fn transport(keep_alive: bool) -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(
        IDLE_TIMEOUT
            .try_into()
            .expect("10 s is a valid idle timeout"),
    ));
    if keep_alive {
        transport.keep_alive_interval(Some(KEEP_ALIVE));
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
    config.transport_config(transport(false));
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
    config.transport_config(transport(true));
    Ok(config)
}

/// Who is on the other end of `conn`, from its verified certificate.
pub fn peer_identity(conn: &quinn::Connection) -> Result<PeerIdentity, NetError> {
    let chain = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| NetError::UnknownRole("no certificate".to_string()))?;
    let leaf = chain
        .first()
        .ok_or_else(|| NetError::UnknownRole("empty certificate chain".to_string()))?;
    identity_of(leaf)
}

/// The role and name a certificate grants (organisational unit and common name).
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<PeerIdentity, NetError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| NetError::UnknownRole(format!("unparseable certificate: {e}")))?;
    let subject = parsed.subject();
    let first = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue<'_>>| {
        it.next().and_then(|a| a.as_str().ok()).map(str::to_string)
    };
    let unit = first(&mut subject.iter_organizational_unit());
    let name = first(&mut subject.iter_common_name());
    let role = match unit.as_deref() {
        Some(u) if u == CertRole::Worker.as_str() => Role::Worker,
        Some(u) if u == CertRole::Client.as_str() => Role::Client,
        _ => return Err(NetError::UnknownRole(subject.to_string())),
    };
    let name = name.ok_or_else(|| NetError::UnknownRole(subject.to_string()))?;
    Ok(PeerIdentity { role, name })
}

/// Reads frames from a QUIC receive stream.
#[derive(Debug)]
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
}

impl FrameReader {
    /// Wraps a stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: Vec::new(),
        }
    }

    /// The next frame's raw body, length-checked before it is read.
    pub async fn next_body(&mut self) -> Result<&[u8], NetError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.recv.read_exact(&mut header).await?;
        let len = wire::frame_body_len(header)?;
        self.buf.resize(len, 0);
        self.recv.read_exact(&mut self.buf).await?;
        Ok(&self.buf)
    }

    /// The next message.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, NetError> {
        Ok(wire::decode_body(self.next_body().await?)?)
    }
}

/// Writes frames to a QUIC send stream.
#[derive(Debug)]
pub struct FrameWriter {
    send: quinn::SendStream,
}

impl FrameWriter {
    /// Wraps a stream.
    pub fn new(send: quinn::SendStream) -> Self {
        FrameWriter { send }
    }

    /// Sends one message.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), NetError> {
        self.send_frame(&wire::encode_frame(message)?).await
    }

    /// Sends an encoded frame.
    pub async fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.send.write_all(frame).await?;
        Ok(())
    }
}

/// An established session with the coordinator.
#[derive(Debug)]
pub struct Session<W> {
    /// The local endpoint (kept alive with the connection).
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub connection: quinn::Connection,
    /// Frames from the coordinator.
    pub reader: FrameReader,
    /// Frames to the coordinator.
    pub writer: FrameWriter,
    /// The coordinator's welcome.
    pub welcome: W,
}

/// Resolves the bundle's coordinator address. A name with both IPv4 and IPv6
/// addresses resolves to IPv4: a coordinator listening on `0.0.0.0` (the usual
/// `--listen`) is not reachable over IPv6, and QUIC cannot tell "nobody there" from
/// "slow" except by timing out.
pub async fn resolve(bundle: &Bundle) -> Result<(SocketAddr, String), NetError> {
    let (host, port) = bundle.coordinator_host_port()?;
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| NetError::Resolve {
            address: bundle.coordinator.clone(),
            source,
        })?
        .collect();
    let address = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| NetError::Resolve {
            address: bundle.coordinator.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    Ok((address, host))
}

/// Dials the coordinator named in `bundle`, opens the session stream, sends `hello`
/// and waits for the welcome: a full request, so a refused certificate shows here.
pub async fn connect<H: Serialize, W: DeserializeOwned>(
    bundle: &Bundle,
    hello: &H,
) -> Result<Session<W>, NetError> {
    let config = client_config(bundle)?;
    let (address, host) = resolve(bundle).await?;
    let bind: SocketAddr = if address.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let endpoint = quinn::Endpoint::client(bind).map_err(NetError::Socket)?;
    let attempt = async {
        let connection = endpoint.connect_with(config, address, &host)?.await?;
        let (send, recv) = connection.open_bi().await?;
        let mut writer = FrameWriter::new(send);
        let mut reader = FrameReader::new(recv);
        writer.send(hello).await?;
        let welcome = match reader.next::<W>().await {
            Ok(w) => w,
            // A refused certificate surfaces as the connection closing under the read.
            Err(NetError::StreamEnded) => return Err(connection.closed().await.into()),
            Err(e) => return Err(e),
        };
        Ok::<_, NetError>((connection, reader, writer, welcome))
    };
    let (connection, reader, writer, welcome) = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| NetError::Timeout(CONNECT_TIMEOUT))??;
    Ok(Session {
        endpoint,
        connection,
        reader,
        writer,
        welcome,
    })
}
