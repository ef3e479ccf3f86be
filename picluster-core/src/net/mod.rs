//! QUIC and TLS plumbing shared by coordinator, workers and clients: rustls
//! configurations for mutual TLS with the cluster CA, the peer identity read from a
//! verified certificate, frame reading and writing on QUIC streams, and `connect`,
//! which dials the coordinator and completes the hello/welcome exchange.
//!
//! With TLS 1.3 a client learns that the server refused its certificate only when it
//! first uses the connection, so `connect` does not return until the welcome frame
//! arrived: a refused certificate is reported by `connect` itself, as
//! [`NetError::CertificateRejected`]. Does not own any decision about messages.
//!
//! # Layout
//! - `tls`: rustls and quinn configurations ([`server_config`], [`client_config`]) and
//!   the peer identity of a connection ([`peer_identity`]).
//! - `frames`: [`FrameReader`] and [`FrameWriter`] on QUIC streams.

mod frames;
mod tls;

pub use frames::{FrameBytes, FrameReader, FrameWriter, BUDGET_UNIT, MAX_FRAME_UNITS};
pub use tls::{cert_pem, client_config, join_config, peer_identity, server_config, PinnedCa};

use crate::trust::{Bundle, CertificateError, ClusterError};
use crate::wire::{CloseCode, FrameError};
use serde::{de::DeserializeOwned, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// QUIC idle timeout: a peer silent this long is gone. Short, for a LAN of Pis.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Keep-alive interval of dialling peers, which also keeps NAT mappings open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// The idle timeout a worker or client asks for when its bundle names several
/// coordinators: a leader silent this long is taken for dead.
pub const HA_IDLE_TIMEOUT: Duration = Duration::from_millis(2500);
/// Its keep-alive interval then.
pub const HA_KEEP_ALIVE: Duration = Duration::from_millis(750);
/// How long `connect` waits for the handshake and the welcome.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a network operation failed. [`NetError::is_retryable`] says whether trying
/// again later can help.
#[derive(thiserror::Error)]
#[non_exhaustive]
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
    CertificateRejected(CertificateRejection),
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
    /// The certificate does not name a picluster peer.
    #[error("certificate does not name a picluster peer: {0}")]
    Identity(#[from] CertificateError),
    /// The server at a join token's address presented no CA matching the token's
    /// pin: it is not the cluster's coordinator (or the token is from another
    /// cluster). The token's secret was not sent.
    #[error("the server at {address} is not the coordinator this join token is for: its CA does not match the token's pin (the token's secret was not sent)")]
    PinMismatch {
        /// The address dialled.
        address: String,
    },
    /// Nothing answered at the coordinator's address in time: it is not running, the
    /// address is wrong, or a firewall drops its UDP port.
    #[error("cannot reach the coordinator at {address}: no answer within {after:?} (is it running, and is UDP port {port} open on that machine?)")]
    NoAnswer {
        /// The address dialled.
        address: SocketAddr,
        /// Its port.
        port: u16,
        /// How long it waited.
        after: Duration,
    },
    /// The coordinator's machine says nothing listens on its UDP port (an ICMP port
    /// unreachable): the coordinator is not running, or the port is wrong.
    #[error("cannot reach the coordinator at {address}: nothing listens on UDP port {port} there ({source}); is the coordinator running?")]
    Refused {
        /// The address dialled.
        address: SocketAddr,
        /// Its port.
        port: u16,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The coordinator's certificate does not carry the name the bundle dials.
    #[error("the coordinator's certificate is valid for {valid_for}, not for {host:?}, the name this bundle dials ({coordinator}): dial one of those (the bundle's \"coordinator\"), or give the certificate this name: add \"{coordinator}\" to \"advertise\" in the cluster's cluster.json, run `picluster renew-coordinator`, and restart the coordinator")]
    NameMismatch {
        /// The bundle's coordinator address, `HOST:PORT`.
        coordinator: String,
        /// The host dialled.
        host: String,
        /// The names and addresses the certificate is valid for, as rustls lists them.
        valid_for: String,
    },
    /// The connection to the coordinator was lost while it was being set up.
    #[error("cannot reach the coordinator at {address}: {source}")]
    Unreachable {
        /// The address dialled.
        address: SocketAddr,
        /// What happened.
        source: quinn::ConnectionError,
    },
    /// The coordinator cannot listen on its address.
    #[error("cannot listen on {address}: {source}{}", if source.kind() == std::io::ErrorKind::AddrInUse { " (is another coordinator running? stop it, or change --listen with a new cluster)" } else { "" })]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The metrics endpoint cannot listen on its address (a coordinator's or a
    /// worker's).
    #[error("cannot serve metrics on {address}: {source}{}", if source.kind() == std::io::ErrorKind::AddrInUse { " (another program serves there, perhaps another picluster coordinator or worker on this machine: give this one another port with --metrics, or metrics in its configuration file)" } else { "" })]
    BindMetrics {
        /// The address.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The coordinator refused to enroll or renew.
    #[error("{0}")]
    JoinRefused(crate::wire::JoinRefusal),
    /// The coordinator dialled is a standby: another leads (its address), or none
    /// does right now (an election under way, or etcd unreachable). Dialling the
    /// leader, or again shortly, helps.
    #[error("{}", match leader {
        Some(leader) => format!("that coordinator is a standby; the leading coordinator is at {leader}"),
        None => "no coordinator leads right now (an election is under way, or the coordinators cannot reach etcd)".to_string(),
    })]
    NotLeader {
        /// The leader's address, if one leads.
        leader: Option<String>,
    },
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
            | NetError::Timeout(_)
            | NetError::NoAnswer { .. }
            | NetError::Refused { .. }
            | NetError::Unreachable { .. }
            | NetError::NotLeader { .. } => true,
            NetError::Closed { code, .. } => matches!(
                CloseCode::from_u32(*code),
                Some(
                    CloseCode::ShuttingDown
                        | CloseCode::Replaced
                        | CloseCode::Normal
                        // The live connection may be a ghost about to time out.
                        | CloseCode::NameInUse
                )
            ),
            NetError::Credentials(_)
            | NetError::Pem { .. }
            | NetError::TlsConfig(_)
            | NetError::Connect(_)
            | NetError::CertificateRejected(_)
            | NetError::NameMismatch { .. }
            | NetError::BadFrame(_)
            | NetError::Identity(_)
            | NetError::PinMismatch { .. }
            | NetError::Bind { .. }
            | NetError::BindMetrics { .. }
            | NetError::JoinRefused(_) => false,
        }
    }
}

/// Which side refused a certificate in the TLS handshake.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateRejection {
    /// The coordinator refused this peer's certificate.
    #[error("the coordinator refused this certificate ({0}); is the bundle from this cluster?")]
    RefusedByCoordinator(quinn::ConnectionClose),
    /// This peer does not trust the coordinator's certificate.
    #[error(
        "the coordinator's certificate is not trusted ({0}); is the bundle from this cluster?"
    )]
    CoordinatorUntrusted(quinn::ConnectionError),
}

impl From<quinn::ConnectionError> for NetError {
    fn from(e: quinn::ConnectionError) -> Self {
        use quinn::ConnectionError as E;
        let is_crypto = |code: quinn::TransportErrorCode| (0x100..0x200).contains(&u64::from(code));
        match e {
            E::ApplicationClosed(close)
                if close.error_code.into_inner() == CloseCode::NotLeader as u64 =>
            {
                let leader = String::from_utf8_lossy(&close.reason).into_owned();
                NetError::NotLeader {
                    leader: (!leader.is_empty()).then_some(leader),
                }
            }
            E::ApplicationClosed(close) => NetError::Closed {
                code: close.error_code.into_inner() as u32,
                reason: String::from_utf8_lossy(&close.reason).into_owned(),
            },
            E::ConnectionClosed(ref close) if is_crypto(close.error_code) => {
                NetError::CertificateRejected(CertificateRejection::RefusedByCoordinator(
                    close.clone(),
                ))
            }
            E::TransportError(ref t) if is_crypto(t.code) => {
                NetError::CertificateRejected(CertificateRejection::CoordinatorUntrusted(e))
            }
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
    resolve_address(&bundle.coordinator).await
}

/// Resolves `HOST:PORT` as [`resolve`] does.
pub async fn resolve_address(coordinator: &str) -> Result<(SocketAddr, String), NetError> {
    let (host, port) = crate::trust::split_host_port(coordinator)?;
    let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|source| NetError::Resolve {
            address: coordinator.to_string(),
            source,
        })?
        .collect();
    let address = addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| NetError::Resolve {
            address: coordinator.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no address"),
        })?;
    Ok((address, host))
}

/// How long one address may take to answer when a bundle names several
/// coordinators: a dead one must not hold the search for the leader.
pub const HA_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Dials the coordinator named in `bundle`, opens the session stream, sends `hello`
/// and waits for the welcome: a full request, so a refused certificate shows here.
/// When the bundle names several coordinators (a leader and standbys sharing etcd),
/// all are dialled at once and the one that welcomes wins; a standby's answer names
/// the leader, which is dialled too if the bundle did not name it.
pub async fn connect<H: Serialize, W: DeserializeOwned + Send + 'static>(
    bundle: &Bundle,
    hello: &H,
) -> Result<Session<W>, NetError> {
    let addresses = bundle.addresses();
    let hello = crate::wire::encode_frame(hello)?;
    if addresses.len() == 1 {
        return connect_to(bundle, &bundle.coordinator, &hello, CONNECT_TIMEOUT).await;
    }
    let bundle = std::sync::Arc::new(bundle.clone());
    let hello = std::sync::Arc::new(hello);
    let mut attempts = tokio::task::JoinSet::new();
    let dial = |attempts: &mut tokio::task::JoinSet<_>, address: String| {
        let (bundle, hello) = (bundle.clone(), hello.clone());
        attempts.spawn(async move {
            connect_to::<W>(&bundle, &address, &hello, HA_CONNECT_TIMEOUT).await
        });
    };
    let mut dialled = addresses.clone();
    for address in addresses {
        dial(&mut attempts, address);
    }
    let mut best: Option<NetError> = None;
    while let Some(outcome) = attempts.join_next().await {
        let error = match outcome {
            Ok(Ok(session)) => return Ok(session),
            Ok(Err(e)) => e,
            Err(join) => NetError::Socket(std::io::Error::other(join)),
        };
        if let NetError::NotLeader {
            leader: Some(leader),
        } = &error
        {
            if !dialled.contains(leader) {
                dialled.push(leader.clone());
                dial(&mut attempts, leader.clone());
            }
        }
        // The most telling error: a standby's word over silence.
        best = match best {
            Some(b @ NetError::NotLeader { leader: Some(_) }) => Some(b),
            Some(NetError::NotLeader { .. })
                if !matches!(error, NetError::NotLeader { leader: Some(_) }) =>
            {
                best
            }
            _ => Some(error),
        };
    }
    Err(best.unwrap_or(NetError::Timeout(HA_CONNECT_TIMEOUT)))
}

/// Dials one coordinator address: [`connect`] for one address, with `timeout` for
/// the handshake and the welcome.
async fn connect_to<W: DeserializeOwned>(
    bundle: &Bundle,
    coordinator: &str,
    hello: &[u8],
    timeout: Duration,
) -> Result<Session<W>, NetError> {
    let config = client_config(bundle)?;
    let (address, host) = resolve_address(coordinator).await?;
    let endpoint = client_endpoint(address)?;
    let attempt = async {
        let connection = endpoint.connect_with(config, address, &host)?.await?;
        let (send, recv) = connection.open_bi().await?;
        let mut writer = FrameWriter::new(send);
        let mut reader = FrameReader::new(recv);
        writer.send_frame(hello).await?;
        let welcome = match reader.next::<W>().await {
            Ok(w) => w,
            // A refused certificate surfaces as the connection closing under the read.
            Err(NetError::StreamEnded) => return Err(connection.closed().await.into()),
            Err(e) => return Err(e),
        };
        Ok::<_, NetError>((connection, reader, writer, welcome))
    };
    let attempt = tokio::time::timeout(timeout, attempt);
    // QUIC over UDP waits out its timeout when nothing listens; the OS often knows at
    // once (ICMP port unreachable), so ask it alongside.
    let refused = async {
        match port_refused(address).await {
            Some(source) => source,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        outcome = attempt => outcome,
        source = refused => return Err(NetError::Refused {
            address,
            port: address.port(),
            source,
        }),
    };
    let (connection, reader, writer, welcome) = outcome
        .map_err(|_| NetError::NoAnswer {
            address,
            port: address.port(),
            after: timeout,
        })?
        .map_err(|e| match e {
            // QUIC's own handshake timeout (its idle timeout) may fire first.
            NetError::Lost(quinn::ConnectionError::TimedOut) => NetError::NoAnswer {
                address,
                port: address.port(),
                after: timeout,
            },
            NetError::Lost(source) => NetError::Unreachable { address, source },
            NetError::CertificateRejected(CertificateRejection::CoordinatorUntrusted(e)) => {
                match names_in_mismatch(&e.to_string()) {
                    Some(valid_for) => NetError::NameMismatch {
                        coordinator: coordinator.to_string(),
                        host: host.clone(),
                        valid_for,
                    },
                    None => {
                        NetError::CertificateRejected(CertificateRejection::CoordinatorUntrusted(e))
                    }
                }
            }
            other => other,
        })?;
    Ok(Session {
        endpoint,
        connection,
        reader,
        writer,
        welcome,
    })
}

/// The names a certificate is valid for, from rustls' "certificate not valid for
/// name" error (`... certificate is only valid for DnsName("a") or IpAddress(1.2.3.4)`),
/// as `a, 1.2.3.4`; `None` for any other error.
fn names_in_mismatch(text: &str) -> Option<String> {
    if !text.contains("not valid for name") {
        return None;
    }
    let Some((_, tail)) = text.split_once("only valid for ") else {
        return Some("other names".to_string());
    };
    let names: Vec<String> = tail
        .split(" or ")
        .flat_map(|part| part.split(", "))
        .map(|part| {
            let part = part.trim();
            let inner = part.split_once('(').map_or(part, |(_, rest)| {
                rest.rsplit_once(')').map_or(rest, |r| r.0)
            });
            inner.trim_matches('"').to_string()
        })
        .filter(|n| !n.is_empty())
        .collect();
    Some(if names.is_empty() {
        "other names".to_string()
    } else {
        names.join(", ")
    })
}

/// Whether the OS reports `address`'s UDP port closed: a one-byte datagram (too short
/// for a QUIC packet, so a listening endpoint drops it) answered by ICMP port
/// unreachable, which a connected UDP socket sees as "connection refused". `None`
/// when nothing says so within a second (a firewall may drop it, or the port is open).
async fn port_refused(address: SocketAddr) -> Option<std::io::Error> {
    let bind: SocketAddr = if address.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await.ok()?;
    socket.connect(address).await.ok()?;
    let mut buffer = [0u8; 64];
    for wait in [100, 300, 600] {
        if let Err(e) = socket.send(&[0]).await {
            return (e.kind() == std::io::ErrorKind::ConnectionRefused).then_some(e);
        }
        match tokio::time::timeout(Duration::from_millis(wait), socket.recv(&mut buffer)).await {
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Some(e),
            // An answer (which no coordinator sends to one byte) or another error:
            // nothing to conclude.
            Ok(_) => return None,
            Err(_) => {}
        }
    }
    None
}

fn client_endpoint(address: SocketAddr) -> Result<quinn::Endpoint, NetError> {
    let bind: SocketAddr = if address.is_ipv6() {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    };
    quinn::Endpoint::client(bind).map_err(NetError::Socket)
}

/// What a successful join brings back.
#[derive(Debug)]
pub struct Joined {
    /// The new certificate, its role and name.
    pub enrolled: crate::wire::Enrolled,
    /// The cluster CA certificate (PEM), as checked against the token's pin.
    pub ca_pem: String,
}

impl Joined {
    /// The bundle of the new credential: the coordinators `token` names, the pinned
    /// CA, the certificate, and `key_pem`, the private key the request was made with.
    pub fn into_bundle(self, token: &crate::token::JoinToken, key_pem: String) -> Bundle {
        Bundle {
            format: crate::trust::FORMAT_VERSION,
            role: self.enrolled.role,
            name: self.enrolled.name,
            coordinator: token.address.clone(),
            coordinators: if token.more.is_empty() {
                Vec::new()
            } else {
                token.addresses()
            },
            ca: self.ca_pem,
            cert: self.enrolled.cert_pem,
            key: key_pem,
        }
    }
}

/// Enrolls with a join token: dials the token's address without a certificate,
/// checks the coordinator's CA against the token's pin before sending anything,
/// then sends the token, `name` and the certificate request `csr` (DER) and waits
/// for the certificate.
pub async fn join(
    token: &crate::token::JoinToken,
    name: &str,
    role: crate::identity::Role,
    csr: Vec<u8>,
) -> Result<Joined, NetError> {
    // Said here, before anything is sent: the coordinator would refuse a reserved
    // name as taken, which misleads.
    if matches!(name, "admin" | "coordinator") {
        return Err(NetError::Credentials(
            crate::trust::ClusterError::ReservedName(name.to_string()),
        ));
    }
    // Each coordinator the token names in turn; a standby's word on who leads is
    // followed first.
    let mut left = token.addresses();
    let mut tried = Vec::new();
    let mut last = None;
    while let Some(address) = left.first().cloned() {
        left.remove(0);
        tried.push(address.clone());
        match join_at(token, &address, name, role, csr.clone()).await {
            Err(NetError::NotLeader {
                leader: Some(leader),
            }) if !tried.contains(&leader) => {
                left.retain(|a| *a != leader);
                left.insert(0, leader.clone());
                last = Some(NetError::NotLeader {
                    leader: Some(leader),
                });
            }
            Err(e) if e.is_retryable() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or(NetError::Timeout(CONNECT_TIMEOUT)))
}

/// [`join`] at one coordinator address.
async fn join_at(
    token: &crate::token::JoinToken,
    coordinator: &str,
    name: &str,
    role: crate::identity::Role,
    csr: Vec<u8>,
) -> Result<Joined, NetError> {
    use crate::wire::{CoordToJoin, JoinRequest, JoinToCoord, PROTOCOL_MINOR};
    let (config, pinned) = join_config(token.ca_pin)?;
    let (address, host) = resolve_address(coordinator).await?;
    let endpoint = client_endpoint(address)?;
    let attempt = async {
        let connection = match endpoint.connect_with(config, address, &host)?.await {
            Ok(c) => c,
            Err(_) if pinned.mismatched() => {
                return Err(NetError::PinMismatch {
                    address: coordinator.to_string(),
                })
            }
            Err(e) => return Err(e.into()),
        };
        let (send, recv) = connection.open_bi().await?;
        let mut writer = FrameWriter::new(send);
        let mut reader = FrameReader::new(recv);
        writer
            .send(&JoinToCoord::Join(JoinRequest {
                minor: PROTOCOL_MINOR,
                token: token.id.clone(),
                secret: token.secret,
                name: name.to_string(),
                role,
                csr,
            }))
            .await?;
        let reply = match reader.next::<CoordToJoin>().await {
            Ok(reply) => reply,
            Err(NetError::StreamEnded) => return Err(connection.closed().await.into()),
            Err(e) => return Err(e),
        };
        connection.close((crate::wire::CloseCode::Normal as u32).into(), b"joined");
        Ok(reply)
    };
    let reply = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .map_err(|_| NetError::Timeout(CONNECT_TIMEOUT))??;
    endpoint.wait_idle().await;
    match reply {
        CoordToJoin::Enrolled(enrolled) => {
            let ca = pinned.ca().ok_or(NetError::PinMismatch {
                address: coordinator.to_string(),
            })?;
            Ok(Joined {
                enrolled,
                ca_pem: cert_pem(&ca),
            })
        }
        CoordToJoin::Refused(refusal) => Err(NetError::JoinRefused(refusal)),
    }
}

crate::debug_as_display!(NetError);
