//! The driver's table of connected peers, and the memory their outgoing queues may
//! hold: one peer's queue ([`QueueLimits::per_peer`]), the queues of one client
//! credential together, however many sessions it opens ([`QueueLimits::per_client`]),
//! and the clients' queues together ([`QueueLimits::clients`]). Past the last, the
//! client holding the most is cut off, so one that does not read cannot take the
//! memory another's replies need. Workers' queues are bounded per peer only: a worker
//! has one session, and what it is sent is small.
//!
//! What happens when a queue is full (a progress update skipped, or the peer cut off)
//! is the state machine's decision; this table says which peer overflowed.

use super::writer::Peer;
use crate::coordinator::CoordinatorConfig;
use crate::ids::ConnId;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;

/// Bytes the outgoing queues may hold.
#[derive(Clone, Copy, Debug)]
pub(super) struct QueueLimits {
    /// One peer.
    pub(super) per_peer: usize,
    /// One client credential's sessions together.
    pub(super) per_client: usize,
    /// Every client session together.
    pub(super) clients: usize,
}

impl QueueLimits {
    pub(super) fn of(config: &CoordinatorConfig) -> QueueLimits {
        QueueLimits {
            per_peer: config.peer_queue_bytes,
            per_client: config.credential_queue_bytes,
            clients: config.client_queues_bytes,
        }
    }
}

/// What queueing a frame came to.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Queued {
    /// Queued.
    Yes,
    /// Not queued: the peer's queue, or its credential's, is full.
    Full,
    /// Queued, but the clients' queues together are over their limit: the client
    /// holding the most is to be cut off.
    CutOff(ConnId),
}

/// Every connected peer, by connection, and the client sessions by credential.
pub(super) struct Peers {
    peers: BTreeMap<ConnId, Peer>,
    /// Client (and admin) sessions by certificate name.
    clients: HashMap<String, BTreeSet<ConnId>>,
    /// The certificate name of each client session.
    client_of: BTreeMap<ConnId, String>,
    limits: QueueLimits,
}

/// Below this many bytes queued for one credential, the clients' total is not looked
/// at (it costs a pass over the client sessions).
const LOOK_AT_TOTAL: usize = 1 << 20;

impl Peers {
    pub(super) fn new(limits: QueueLimits) -> Peers {
        Peers {
            peers: BTreeMap::new(),
            clients: HashMap::new(),
            client_of: BTreeMap::new(),
            limits,
        }
    }

    /// A peer connected; `client` is its certificate name if it is a client or an
    /// admin.
    pub(super) fn insert(&mut self, conn: ConnId, peer: Peer, client: Option<String>) {
        self.peers.insert(conn, peer);
        if let Some(name) = client {
            self.clients.entry(name.clone()).or_default().insert(conn);
            self.client_of.insert(conn, name);
        }
    }

    /// A peer is gone: its writer ends and frees what it held.
    pub(super) fn remove(&mut self, conn: ConnId) {
        self.peers.remove(&conn);
        if let Some(name) = self.client_of.remove(&conn) {
            if let Some(sessions) = self.clients.get_mut(&name) {
                sessions.remove(&conn);
                if sessions.is_empty() {
                    self.clients.remove(&name);
                }
            }
        }
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Peer> {
        self.peers.get(&conn)
    }

    fn queued(&self, conn: ConnId) -> usize {
        self.peers
            .get(&conn)
            .map_or(0, |p| p.queued.load(Ordering::Acquire))
    }

    /// Queues `frame` for `conn` within the limits.
    pub(super) fn queue(&self, conn: ConnId, frame: Vec<u8>) -> Queued {
        let Some(peer) = self.peers.get(&conn) else {
            return Queued::Yes; // gone: its Disconnected event follows
        };
        let len = frame.len();
        let Some(name) = self.client_of.get(&conn) else {
            return if peer.try_queue(frame, self.limits.per_peer) {
                Queued::Yes
            } else {
                Queued::Full
            };
        };
        let credential: usize = self
            .clients
            .get(name)
            .into_iter()
            .flatten()
            .map(|c| self.queued(*c))
            .sum();
        if credential + len > self.limits.per_client || !peer.try_queue(frame, self.limits.per_peer)
        {
            return Queued::Full;
        }
        if credential + len < LOOK_AT_TOTAL {
            return Queued::Yes;
        }
        let (total, hog) = self.client_of.keys().map(|c| (*c, self.queued(*c))).fold(
            (0, None),
            |(total, hog), (c, q)| {
                let hog = match hog {
                    Some((_, most)) if most >= q => hog,
                    _ => Some((c, q)),
                };
                (total + q, hog)
            },
        );
        match hog {
            Some((hog, _)) if total > self.limits.clients => Queued::CutOff(hog),
            _ => Queued::Yes,
        }
    }
}
