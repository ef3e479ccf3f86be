//! The connection side of the driver: the accept loop (admission before the
//! handshake, by [`crate::admission`]), and one task per connection that completes
//! the handshake, reads the peer's identity from its certificate, opens the session
//! stream, decodes frames in the protocol of its role and passes them to the driver
//! as [`Event`]s. A full event queue makes these tasks wait, so QUIC's flow control
//! holds their peers back.

use super::writer::{write_loop, Peer};
use crate::admission::{Admission, AdmissionLimits};
use crate::coordinator::{CoordinatorConfig, Inbound};
use crate::identity::{PeerIdentity, Role};
use crate::ids::ConnId;
use crate::net::{self, FrameReader, FrameWriter, NetError};
use crate::wire::{self, ClientToCoord, CloseCode, CsrError, JoinToCoord, WorkerToCoord};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// How long a connected peer has to open its session stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// Events from connection tasks waiting for the state machine. When it is full, the
/// connection tasks wait, and so QUIC's flow control holds their peers back.
pub(super) const EVENT_QUEUE: usize = 1024;
/// A client's next request is not read while this many bytes of replies wait to be
/// written to it: one that does not read its replies is not read either (QUIC's flow
/// control holds it back), and its requests cost nothing more.
const READ_PAUSE_BYTES: usize = 1 << 20;
/// A client's requests read and not yet handled by the state machine: its next one
/// is read once one of these is handled (pipelining, without letting one client
/// fill the event queue with work whose replies it may never read).
const CLIENT_REQUESTS_IN_FLIGHT: usize = 16;
/// Frames queued for one peer's writer, besides the byte limit of
/// [`CoordinatorConfig::peer_queue_bytes`].
const PEER_QUEUE_FRAMES: usize = 4096;

/// What a client's request holds until it is handled: a place among its session's
/// requests in flight, and its frame's place in the clients' frame budget.
#[derive(Default)]
pub(super) struct Ticket {
    _in_flight: Option<tokio::sync::OwnedSemaphorePermit>,
    _bytes: Option<net::FrameBytes>,
}

/// What a connection task tells the driver.
pub(super) enum Event {
    Connected {
        conn: ConnId,
        /// `None`: no certificate; the peer may only join.
        identity: Option<PeerIdentity>,
        peer: Peer,
    },
    /// A message, with the places it holds (given back when the state machine has
    /// handled it).
    Inbound(ConnId, Inbound, Ticket),
    BadFrame(ConnId, wire::FrameError),
    Disconnected(ConnId),
}

/// What the accept loop and each connection task enforce.
#[derive(Clone, Copy)]
pub(super) struct ConnectionLimits {
    pub(super) hello_timeout: Duration,
    pub(super) frame_timeout: Duration,
    pub(super) max_joining: usize,
    pub(super) max_joining_per_address: usize,
    pub(super) max_handshakes: usize,
    pub(super) join_timeout: Duration,
    /// Bytes of frames from non-admin clients read and not yet handled, together.
    pub(super) client_frame_bytes: usize,
    /// Per address and in all, before the handshake.
    pub(super) admission: AdmissionLimits,
}

impl ConnectionLimits {
    pub(super) fn of(config: &CoordinatorConfig) -> ConnectionLimits {
        ConnectionLimits {
            hello_timeout: config.hello_timeout,
            frame_timeout: config.frame_timeout,
            max_joining: config.max_joining,
            max_joining_per_address: config.max_joining_per_address,
            max_handshakes: config.max_handshakes,
            join_timeout: config.join_timeout,
            client_frame_bytes: config.client_frame_bytes,
            admission: AdmissionLimits {
                max_connections: config.max_connections,
                max_per_address: config.max_connections_per_address,
                handshakes_per_second: config.handshakes_per_second,
                handshake_burst: config.handshake_burst,
            },
        }
    }
}

/// Accepts connections. The connection tasks belong to this task: when the service
/// stops and aborts it, they go too, and with them every handle on the endpoint.
pub(super) async fn accept_loop(
    endpoint: quinn::Endpoint,
    events: mpsc::Sender<Event>,
    limits: ConnectionLimits,
) {
    let mut next_conn = 1u64;
    let mut connections = tokio::task::JoinSet::new();
    let joining = Arc::new(JoinSlots::new(
        limits.max_joining,
        limits.max_joining_per_address,
    ));
    let handshaking = Arc::new(AtomicUsize::new(0));
    let client_frames = Arc::new(tokio::sync::Semaphore::new(
        (limits.client_frame_bytes / net::BUDGET_UNIT).max(net::MAX_FRAME_UNITS),
    ));
    let mut admission = Admission::new(limits.admission);
    let trimmer = super::memory::Trimmer::default();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => incoming,
                None => break,
            },
            Some(done) = connections.join_next() => {
                if let Ok(ip) = done {
                    admission.closed(ip);
                }
                trimmer.closed();
                continue;
            }
        };
        let ip = incoming.remote_address().ip();
        if handshaking.load(Ordering::Acquire) >= limits.max_handshakes {
            debug!(remote = %incoming.remote_address(), "refused connection: too many handshakes in progress");
            incoming.refuse();
            continue;
        }
        if let Err(why) = admission.admit(ip, Instant::now()) {
            debug!(remote = %incoming.remote_address(), %why, "refused connection");
            incoming.refuse();
            continue;
        }
        let conn = ConnId(next_conn);
        next_conn += 1;
        let events = events.clone();
        let joining = joining.clone();
        let client_frames = client_frames.clone();
        handshaking.fetch_add(1, Ordering::AcqRel);
        let handshake = OwnedCount(handshaking.clone());
        connections.spawn(async move {
            let places = Places {
                joining: &joining,
                handshake,
                client_frames,
            };
            connection(incoming, conn, events, limits, places).await;
            ip
        });
    }
}

/// What a connection task shares with the others: the joining places, its place
/// among handshakes in progress, and the budget of non-admin clients' frames.
struct Places<'a> {
    joining: &'a JoinSlots,
    handshake: OwnedCount,
    client_frames: Arc<tokio::sync::Semaphore>,
}

async fn connection(
    incoming: quinn::Incoming,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    limits: ConnectionLimits,
    places: Places<'_>,
) {
    let Places {
        joining,
        handshake,
        client_frames,
    } = places;
    let remote = incoming.remote_address();
    let handshaken = incoming.await;
    drop(handshake);
    let connection = match handshaken {
        Ok(c) => c,
        Err(e) => {
            info!(%remote, error = %e, "refused connection: TLS handshake failed");
            return;
        }
    };
    let identity = match net::peer_identity(&connection) {
        Ok(id) => Some(id),
        // No certificate: a worker joining with a token.
        Err(crate::trust::CertificateError::Missing) => None,
        Err(e) => {
            info!(%remote, error = %e, "refused connection");
            connection.close(
                (CloseCode::Unauthorized as u32).into(),
                e.to_string().as_bytes(),
            );
            return;
        }
    };
    // Certificate-less peers are counted apart, and few at a time.
    let _joining = match &identity {
        Some(id) => {
            info!(%remote, %conn, role = ?id.role, name = %id.name, "peer connected");
            None
        }
        None => match joining.take(remote.ip()) {
            Some(slot) => {
                debug!(%remote, %conn, "joining peer connected (no certificate)");
                Some(slot)
            }
            None => {
                debug!(%remote, "refused connection: too many joins in progress");
                connection.close(
                    (CloseCode::Normal as u32).into(),
                    b"too many joins in progress: try again shortly",
                );
                return;
            }
        },
    };
    let hello_timeout = if identity.is_some() {
        limits.hello_timeout
    } else {
        limits.join_timeout
    };
    // A certificate-less peer has proven nothing: it gets less time for everything.
    let stream_timeout = if identity.is_some() {
        STREAM_TIMEOUT
    } else {
        limits.join_timeout
    };
    let (send, recv) = match tokio::time::timeout(stream_timeout, connection.accept_bi()).await {
        Ok(Ok(streams)) => streams,
        Ok(Err(e)) => {
            debug!(%remote, error = %e, "connection ended before its session stream");
            return;
        }
        Err(_) => {
            info!(%remote, "closing connection: no session stream within {stream_timeout:?}");
            connection.close(
                (CloseCode::Protocol as u32).into(),
                b"no session stream opened",
            );
            return;
        }
    };
    let role = identity.as_ref().map(|id| id.role);
    let (writer_tx, writer_rx) = mpsc::channel(PEER_QUEUE_FRAMES);
    let queued = Arc::new(AtomicUsize::new(0));
    let drained = Arc::new(tokio::sync::Notify::new());
    let peer = Peer {
        writer: writer_tx,
        queued: queued.clone(),
        connection: connection.clone(),
    };
    if events
        .send(Event::Connected {
            conn,
            identity,
            peer,
        })
        .await
        .is_err()
    {
        return;
    }
    let writer = tokio::spawn(write_loop(
        connection.clone(),
        FrameWriter::new(send),
        writer_rx,
        queued.clone(),
        drained.clone(),
    ));
    let mut reader = FrameReader::new(recv).with_body_timeout(limits.frame_timeout);
    if role == Some(Role::Client) {
        // Many client certificates together hold no more frame memory than this
        // (one certificate holds at most its sessions' frames).
        reader = reader.with_budget(client_frames);
    }
    let mut greeted = false;
    let client = matches!(role, Some(Role::Client | Role::Admin));
    let in_flight =
        client.then(|| Arc::new(tokio::sync::Semaphore::new(CLIENT_REQUESTS_IN_FLIGHT)));
    loop {
        // A client waits for its replies to be written and its requests handled
        // before its next request is read.
        let permit = match &in_flight {
            Some(in_flight) => {
                wait_for_replies_to_drain(&queued, &drained).await;
                match in_flight.clone().acquire_owned().await {
                    Ok(permit) => Some(permit),
                    Err(_) => break,
                }
            }
            None => None,
        };
        let next = if greeted {
            reader.next_budgeted().await
        } else {
            greeted = true;
            match tokio::time::timeout(hello_timeout, reader.next_budgeted()).await {
                Ok(next) => next,
                Err(_) => Err(NetError::Timeout(hello_timeout)),
            }
        };
        let event = match next {
            Ok((body, bytes)) => match decode(role, body) {
                Ok(message) => {
                    let ticket = Ticket {
                        _in_flight: permit,
                        _bytes: Some(bytes),
                    };
                    Event::Inbound(conn, message, ticket)
                }
                Err(e) => {
                    warn!(%remote, %conn, error = %e, "malformed frame");
                    Event::BadFrame(conn, e)
                }
            },
            Err(NetError::BadFrame(e)) => {
                warn!(%remote, %conn, error = %e, "malformed frame");
                Event::BadFrame(conn, e)
            }
            Err(NetError::Timeout(after)) => {
                info!(%remote, %conn, "closing connection: no hello, or a frame left half-sent, for {after:?}");
                connection.close(
                    (CloseCode::Protocol as u32).into(),
                    format!("no hello, or a frame left half-sent, for {after:?}").as_bytes(),
                );
                break;
            }
            Err(e) => {
                info!(%remote, %conn, reason = %e, "peer disconnected");
                break;
            }
        };
        let stop = matches!(event, Event::BadFrame(..));
        // A full queue makes this wait: the peer is held back by flow control.
        if events.send(event).await.is_err() || stop {
            break;
        }
    }
    let _ = events.send(Event::Disconnected(conn)).await;
    // The writer still carries out what the core queued (a close with its reason);
    // it ends when the core drops its sender.
    let _ = writer.await;
}

/// Waits while more than [`READ_PAUSE_BYTES`] of replies wait to be written.
async fn wait_for_replies_to_drain(queued: &AtomicUsize, drained: &tokio::sync::Notify) {
    loop {
        let notified = drained.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if queued.load(Ordering::Acquire) <= READ_PAUSE_BYTES {
            return;
        }
        notified.await;
    }
}

/// Holds one place in a shared counter until dropped.
struct OwnedCount(Arc<AtomicUsize>);

impl Drop for OwnedCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The places for connections without a certificate: so many in all, and so many
/// from one IP address.
struct JoinSlots {
    max: usize,
    per_address: usize,
    taken: std::sync::Mutex<(usize, std::collections::HashMap<std::net::IpAddr, usize>)>,
}

impl JoinSlots {
    fn new(max: usize, per_address: usize) -> JoinSlots {
        JoinSlots {
            max,
            per_address,
            taken: std::sync::Mutex::default(),
        }
    }

    /// A place for a joining peer from `ip`, if one is free.
    fn take(&self, ip: std::net::IpAddr) -> Option<JoinSlot<'_>> {
        let mut taken = crate::sync::lock(&self.taken);
        let (all, by_address) = &mut *taken;
        let mine = by_address.entry(ip).or_insert(0);
        if *all >= self.max || *mine >= self.per_address {
            if *mine == 0 {
                by_address.remove(&ip);
            }
            return None;
        }
        *mine += 1;
        *all += 1;
        Some(JoinSlot { slots: self, ip })
    }
}

/// One place of [`JoinSlots`], given back when dropped.
struct JoinSlot<'a> {
    slots: &'a JoinSlots,
    ip: std::net::IpAddr,
}

impl Drop for JoinSlot<'_> {
    fn drop(&mut self) {
        let mut taken = crate::sync::lock(&self.slots.taken);
        let (all, by_address) = &mut *taken;
        *all -= 1;
        if let Some(n) = by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.ip);
            }
        }
    }
}

/// Decodes a frame in the protocol of the peer's role. The coordinator has already
/// closed a connection whose role speaks neither (its own certificate); any frame
/// still arriving on one is decoded as a client's and ignored there.
fn decode(role: Option<Role>, body: &[u8]) -> Result<Inbound, wire::FrameError> {
    // A frame of the other role's protocol is passed on as such (the core refuses it
    // for the role it is), so the peer learns what is wrong rather than "malformed".
    Ok(match role {
        Some(Role::Worker) => match wire::decode_body::<WorkerToCoord>(body) {
            Ok(m) => Inbound::Worker(m),
            Err(e) => Inbound::Client(wire::decode_body::<ClientToCoord>(body).map_err(|_| e)?),
        },
        Some(Role::Client | Role::Admin | Role::Coordinator) => {
            match wire::decode_body::<ClientToCoord>(body) {
                Ok(m) => Inbound::Client(m),
                Err(e) => Inbound::Worker(wire::decode_body::<WorkerToCoord>(body).map_err(|_| e)?),
            }
        }
        None => {
            let JoinToCoord::Join(request) = wire::decode_body::<JoinToCoord>(body)?;
            let checked = crate::trust::verify_request(&request.csr)
                .map(|_| ())
                .map_err(|e| match e {
                    crate::trust::ClusterError::Csr(why) => why,
                    other => CsrError::Unusable(other.to_string()),
                });
            Inbound::Join(request, checked)
        }
    })
}
