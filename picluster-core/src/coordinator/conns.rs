//! The connection table: every connection the coordinator is deciding about, in
//! exactly one state: joining (no certificate: one join request, then nothing),
//! clashing (a worker whose name was connected when it arrived, until its hello
//! decides), worker (its data is in the worker table), or client (its session is
//! here). Messages are routed on this state ([`ConnTable::kind`]); a connection with
//! no entry is closed or closing, and its late frames are ignored.
//!
//! Invariant, kept by `peers`: a connection is [`Conn::Worker`] exactly when the
//! worker table holds it.

use crate::ids::{ConnId, JobId};
use std::collections::{BTreeMap, BTreeSet};

/// A connected client (the `picluster` tool, programs).
pub(super) struct ClientSession {
    /// Its certificate name: fairness between clients is by name.
    pub(super) name: String,
    /// Its certificate grants the admin role: every request, every client's jobs.
    pub(super) admin: bool,
    pub(super) greeted: bool,
    /// The protocol minor version negotiated at its hello (0 before).
    pub(super) minor: u16,
    /// Live jobs it watches.
    pub(super) watching: BTreeSet<JobId>,
}

/// One connection's state.
pub(super) enum Conn {
    /// No certificate: it may send one join request; `answered` once it has.
    Joining { answered: bool },
    /// A worker whose name was connected when it arrived, with that name.
    Clashing(String),
    /// A worker (in the worker table).
    Worker,
    /// A client or admin.
    Client(ClientSession),
}

/// A connection's state without its data, to route a message on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnKind {
    Joining { answered: bool },
    Clashing,
    Worker,
    Client,
}

/// Every connection with a state, by id.
#[derive(Default)]
pub(super) struct ConnTable {
    conns: BTreeMap<ConnId, Conn>,
}

impl ConnTable {
    pub(super) fn kind(&self, conn: ConnId) -> Option<ConnKind> {
        Some(match self.conns.get(&conn)? {
            Conn::Joining { answered } => ConnKind::Joining {
                answered: *answered,
            },
            Conn::Clashing(_) => ConnKind::Clashing,
            Conn::Worker => ConnKind::Worker,
            Conn::Client(_) => ConnKind::Client,
        })
    }

    pub(super) fn insert(&mut self, conn: ConnId, state: Conn) {
        self.conns.insert(conn, state);
    }

    /// A new client connection, not yet greeted.
    pub(super) fn insert_client(&mut self, conn: ConnId, name: String, admin: bool) {
        self.insert(
            conn,
            Conn::Client(ClientSession {
                name,
                admin,
                greeted: false,
                minor: 0,
                watching: BTreeSet::new(),
            }),
        );
    }

    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        self.conns.remove(&conn)
    }

    /// Removes a clashing connection, with the name it clashed on.
    pub(super) fn remove_clashing(&mut self, conn: ConnId) -> Option<String> {
        match self.remove_if(conn, |c| matches!(c, Conn::Clashing(_)))? {
            Conn::Clashing(name) => Some(name),
            _ => None,
        }
    }

    fn remove_if(&mut self, conn: ConnId, pick: impl Fn(&Conn) -> bool) -> Option<Conn> {
        if self.conns.get(&conn).is_some_and(pick) {
            self.conns.remove(&conn)
        } else {
            None
        }
    }

    /// A worker or a client: a peer with a certificate and a session.
    pub(super) fn is_peer(&self, conn: ConnId) -> bool {
        matches!(self.conns.get(&conn), Some(Conn::Worker | Conn::Client(_)))
    }

    pub(super) fn is_client(&self, conn: ConnId) -> bool {
        matches!(self.conns.get(&conn), Some(Conn::Client(_)))
    }

    pub(super) fn client(&self, conn: ConnId) -> Option<&ClientSession> {
        match self.conns.get(&conn)? {
            Conn::Client(c) => Some(c),
            _ => None,
        }
    }

    pub(super) fn client_mut(&mut self, conn: ConnId) -> Option<&mut ClientSession> {
        match self.conns.get_mut(&conn)? {
            Conn::Client(c) => Some(c),
            _ => None,
        }
    }

    /// Connected clients (admins included, greeted or not).
    pub(super) fn clients(&self) -> usize {
        self.conns
            .values()
            .filter(|c| matches!(c, Conn::Client(_)))
            .count()
    }

    /// Connections without a certificate (answered or not).
    pub(super) fn joining(&self) -> usize {
        self.conns
            .values()
            .filter(|c| matches!(c, Conn::Joining { .. }))
            .count()
    }

    /// The client stopped watching `job` (it ended).
    pub(super) fn unwatch(&mut self, conn: ConnId, job: JobId) {
        if let Some(c) = self.client_mut(conn) {
            c.watching.remove(&job);
        }
    }
}
