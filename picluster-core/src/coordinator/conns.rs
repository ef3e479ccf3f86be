//! The connection table: every connection the coordinator is deciding about, in
//! exactly one state: joining (no certificate: one join request, then nothing),
//! clashing (a worker whose name was connected when it arrived, until its hello
//! decides), worker (its data is in the worker table), or client (its session is
//! here). Messages are routed on this state ([`ConnTable::kind`]); a connection with
//! no entry is closed or closing, and its late frames are ignored.
//!
//! Invariant, kept by `peers`: a connection is [`Conn::Worker`] exactly when the
//! worker table holds it. Invariant, kept here: the session counts (by certificate
//! name, and of non-admin clients) count the [`Conn::Client`] entries.

use crate::ids::{ConnId, JobId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

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
    /// When it last asked for something, or last stopped watching a job.
    pub(super) last_heard: Instant,
    /// A mining bridge's last report of its pool, and when it came.
    pub(super) miner: Option<Box<(crate::wire::MinerReport, Instant)>>,
}

impl ClientSession {
    /// When it is idle long enough to be closed: `None` while it watches a job.
    fn idle_at(&self, timeout: Duration) -> Option<Instant> {
        self.watching.is_empty().then(|| self.last_heard + timeout)
    }
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
    /// Client sessions by certificate name.
    sessions: BTreeMap<String, usize>,
    /// Client sessions of non-admin certificates.
    plain_clients: usize,
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
        if let Conn::Client(c) = &state {
            self.count(c, true);
        }
        if let Some(Conn::Client(old)) = self.conns.insert(conn, state) {
            self.count(&old, false);
        }
    }

    fn count(&mut self, session: &ClientSession, up: bool) {
        let n = self.sessions.entry(session.name.clone()).or_insert(0);
        if up {
            *n += 1;
            self.plain_clients += usize::from(!session.admin);
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.sessions.remove(&session.name);
            }
            self.plain_clients -= usize::from(!session.admin);
        }
    }

    /// A new client connection, not yet greeted.
    pub(super) fn insert_client(&mut self, conn: ConnId, name: String, admin: bool, now: Instant) {
        self.insert(
            conn,
            Conn::Client(ClientSession {
                name,
                admin,
                greeted: false,
                minor: 0,
                watching: BTreeSet::new(),
                last_heard: now,
                miner: None,
            }),
        );
    }

    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let removed = self.conns.remove(&conn);
        if let Some(Conn::Client(c)) = &removed {
            self.count(c, false);
        }
        removed
    }

    /// Client sessions open with the certificate name `name`.
    pub(super) fn sessions_of(&self, name: &str) -> usize {
        self.sessions.get(name).copied().unwrap_or(0)
    }

    /// Client sessions of non-admin certificates.
    pub(super) fn plain_clients(&self) -> usize {
        self.plain_clients
    }

    /// The client sessions idle since `timeout` before `now` (nothing asked, nothing
    /// watched), and when the next of the others may be.
    pub(super) fn idle_clients(
        &self,
        now: Instant,
        timeout: Duration,
    ) -> (Vec<ConnId>, Option<Instant>) {
        let mut idle = Vec::new();
        let mut next: Option<Instant> = None;
        for (conn, c) in &self.conns {
            let Conn::Client(c) = c else { continue };
            match c.idle_at(timeout) {
                Some(at) if at <= now => idle.push(*conn),
                Some(at) => next = Some(next.map_or(at, |n| n.min(at))),
                // A watcher is idle a timeout after its watch ends, at the soonest.
                None => next = Some(next.map_or(now + timeout, |n| n.min(now + timeout))),
            }
        }
        (idle, next)
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
            self.remove(conn)
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

    /// The mining bridges' last reports, with their client names, oldest
    /// connection first; only `name`'s when given.
    pub(super) fn miners<'a>(
        &'a self,
        name: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a crate::wire::MinerReport, Instant)> {
        self.conns.values().filter_map(move |c| match c {
            Conn::Client(s) if name.is_none_or(|n| n == s.name) => {
                s.miner.as_deref().map(|(r, at)| (s.name.as_str(), r, *at))
            }
            _ => None,
        })
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

    /// The client stopped watching `job` (it ended) at `now`: its idle time starts.
    pub(super) fn unwatch(&mut self, conn: ConnId, job: JobId, now: Instant) {
        if let Some(c) = self.client_mut(conn) {
            c.watching.remove(&job);
            c.last_heard = now;
        }
    }
}
