//! Peers arriving and leaving, over the connection, worker and credential tables: a
//! handshake sorts a connection into its state (refused if revoked, quarantined or
//! the coordinator's own certificate; clashing if its worker name is connected; a
//! renewed certificate's first use retires the ones it replaced), a
//! disconnection or a cut-off forgets it, and a departing worker's leases return to
//! the queue from their last reported position.

use super::conns::Conn;
use super::effects::Effects;
use super::journal::Record;
use super::leasing;
use super::tables::Tables;
use super::transmit::Transmit;
use super::violation::CloseReason;
use crate::identity::{PeerIdentity, Role};
use crate::ids::ConnId;
use std::time::Instant;

/// Closes the connections whose certificate a revocation of `name` up to `at`
/// covers (a worker's leases return to the queue); how many.
pub(super) fn close_revoked(
    t: &mut Tables,
    fx: &mut Effects,
    name: &str,
    at: super::journal::UnixMillis,
) -> usize {
    let covered = t.credentials.covered(name, at);
    for &conn in &covered {
        t.credentials.disconnected(conn);
        if t.conns.remove_clashing(conn).is_some() {
            fx.push(Transmit::Close(
                conn,
                CloseReason::Revoked(name.to_string()),
            ));
        } else {
            drop_peer(t, fx, conn, CloseReason::Revoked(name.to_string()));
        }
    }
    fx.schedule = true;
    covered.len()
}

/// Why a new client session of `identity` is refused, if it is: its certificate
/// holds as many sessions as one may, or (not for an admin) clients hold all the
/// sessions kept for them.
fn session_refused(t: &Tables, identity: &PeerIdentity) -> Option<CloseReason> {
    let limit = t.config.max_sessions_per_client;
    if t.conns.sessions_of(&identity.name) >= limit {
        return Some(CloseReason::TooManySessions {
            name: identity.name.clone(),
            limit,
        });
    }
    let all = t.config.max_client_sessions;
    (identity.role == Role::Client && t.conns.plain_clients() >= all)
        .then_some(CloseReason::ClientsFull(all))
}

/// Closes the client sessions idle for the configured timeout (nothing asked,
/// nothing watched) and sets when to look again.
pub(super) fn close_idle_clients(t: &mut Tables, fx: &mut Effects, now: Instant) {
    let timeout = t.config.client_idle_timeout;
    let (idle, next) = t.conns.idle_clients(now, timeout);
    for conn in idle {
        tracing::debug!(%conn, "closing an idle client session");
        drop_peer(t, fx, conn, CloseReason::Idle(timeout));
    }
    fx.timers.idle_sweep = next;
}

/// A peer completed the TLS handshake with a certificate for `identity`.
pub(super) fn connected(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    identity: PeerIdentity,
) {
    if t.credentials.is_revoked(&identity) {
        fx.stats.violations += 1;
        fx.push(Transmit::Close(conn, CloseReason::Revoked(identity.name)));
        return;
    }
    if let Some(below) = t.credentials.retire_below(&identity) {
        // A renewed certificate in use: its predecessors (and any copy of them) are
        // revoked, connections holding them closed.
        t.credentials.revoke(&identity.name, below);
        fx.record(Record::Revoked(identity.name.clone(), below));
        let closed = close_revoked(t, fx, &identity.name, below);
        tracing::info!(worker = %identity.name, closed, "renewed certificate in use: the certificates it replaced are retired");
    }
    if matches!(identity.role, Role::Client | Role::Admin) {
        if let Some(reason) = session_refused(t, &identity) {
            tracing::info!(client = %identity.name, %reason, "client session refused");
            fx.push(Transmit::Close(conn, reason));
            return;
        }
    }
    if identity.role != Role::Coordinator {
        t.credentials.connected(conn, identity.clone());
        if t.credentials.enroll(&identity.name, identity.role) {
            fx.record(Record::Enrolled(identity.name.clone(), identity.role));
        }
    }
    match identity.role {
        Role::Worker => {
            if t.workers.is_quarantined(&identity.name) {
                fx.stats.violations += 1;
                fx.push(Transmit::Close(
                    conn,
                    CloseReason::QuarantinedName(identity.name),
                ));
            } else if t.workers.named(&identity.name).is_some() {
                t.conns.insert(conn, Conn::Clashing(identity.name));
            } else {
                add_worker(t, conn, identity.name, now);
            }
        }
        Role::Client | Role::Admin => {
            let admin = identity.role == Role::Admin;
            t.conns.insert_client(conn, identity.name, admin, now);
            if fx.timers.idle_sweep.is_none() {
                fx.timers.idle_sweep = Some(now + t.config.client_idle_timeout);
            }
        }
        Role::Coordinator => {
            fx.stats.violations += 1;
            fx.push(Transmit::Close(conn, CloseReason::CoordinatorCertificate));
        }
    }
}

/// A worker connection enters the worker table (not yet greeted).
pub(super) fn add_worker(t: &mut Tables, conn: ConnId, name: String, now: Instant) {
    t.workers.insert(conn, name, now);
    t.conns.insert(conn, Conn::Worker);
}

/// A connection ended (closed by either side, or lost).
pub(super) fn disconnected(t: &mut Tables, fx: &mut Effects, conn: ConnId) {
    t.credentials.disconnected(conn);
    forget_peer(t, fx, conn);
}

/// Closes a worker or client connection with `reason` and forgets it (a client's
/// close waits behind its replies; a worker's leases return to the queue).
pub(super) fn drop_peer(t: &mut Tables, fx: &mut Effects, conn: ConnId, reason: CloseReason) {
    if t.conns.is_client(conn) {
        fx.reply(&t.jobs, Transmit::Close(conn, reason));
    } else if t.conns.is_peer(conn) {
        fx.push(Transmit::Close(conn, reason));
    } else {
        return;
    }
    forget_peer(t, fx, conn);
}

/// Forgets a connection: a worker's leases return to the queue, a client leaves
/// the watchers of the jobs it watched.
fn forget_peer(t: &mut Tables, fx: &mut Effects, conn: ConnId) {
    match t.conns.remove(conn) {
        Some(Conn::Worker) => {
            let Some(mut w) = t.workers.remove(conn) else {
                return;
            };
            if w.hello().is_some() {
                tracing::info!(worker = %w.name, leases_requeued = w.leases().len(), indices = w.hashes, "worker left");
                fx.totals(&w.name).lost += w.leases().len() as u64;
            }
            for lease in w.leases().iter().copied() {
                fx.stats.lost_leases += 1;
                leasing::requeue_lost(t, fx, lease, &w.name);
            }
            if let Some(account) = w.shares.take() {
                t.workers.park_account(w.name, account);
            }
        }
        Some(Conn::Client(client)) => {
            for job in client.watching {
                if let Some(j) = t.jobs.get_mut(job) {
                    j.session.watchers.remove(&conn);
                }
            }
        }
        Some(Conn::Joining { .. } | Conn::Clashing(_)) | None => {}
    }
}
