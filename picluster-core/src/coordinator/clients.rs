//! The client table: connected clients (the `picluster` tool, programs), whether they
//! said hello, and the jobs each watches, so that a departing client is removed from
//! exactly those jobs' watchers.

use crate::ids::{ConnId, JobId};
use std::collections::{BTreeMap, BTreeSet};

/// A connected client.
pub(super) struct ClientSession {
    /// Its certificate name: fairness between clients is by name.
    pub(super) name: String,
    /// Its certificate grants the admin role: every request, every client's jobs.
    pub(super) admin: bool,
    pub(super) greeted: bool,
    /// Live jobs it watches.
    pub(super) watching: BTreeSet<JobId>,
}

/// Every connected client, by connection.
#[derive(Default)]
pub(super) struct ClientTable {
    clients: BTreeMap<ConnId, ClientSession>,
}

impl ClientTable {
    pub(super) fn insert(&mut self, conn: ConnId, name: String, admin: bool) {
        self.clients.insert(
            conn,
            ClientSession {
                name,
                admin,
                greeted: false,
                watching: BTreeSet::new(),
            },
        );
    }

    pub(super) fn remove(&mut self, conn: ConnId) -> Option<ClientSession> {
        self.clients.remove(&conn)
    }

    /// Connected clients (admins included).
    pub(super) fn len(&self) -> usize {
        self.clients.len()
    }

    pub(super) fn contains(&self, conn: ConnId) -> bool {
        self.clients.contains_key(&conn)
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&ClientSession> {
        self.clients.get(&conn)
    }

    pub(super) fn get_mut(&mut self, conn: ConnId) -> Option<&mut ClientSession> {
        self.clients.get_mut(&conn)
    }

    /// The client stopped watching `job` (it ended).
    pub(super) fn unwatch(&mut self, conn: ConnId, job: JobId) {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.watching.remove(&job);
        }
    }
}
