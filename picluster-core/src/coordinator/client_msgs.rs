//! What a client says, handled over the tables: its hello, then requests, each first
//! checked against what its certificate allows ([`refusal`]: a client works on its
//! own jobs, an admin on everything), then carried out by the topic that owns it
//! (`lifecycle` for jobs, `enroll` for credentials, the worker table for drains and
//! releases) and answered through the durability gate.

use super::effects::Effects;
use super::enroll;
use super::journal::Record;
use super::leasing;
use super::lifecycle;
use super::peers;
use super::report::{self, millis, Reporter};
use super::tables::Tables;
use super::transmit::Transmit;
use super::violation::{CloseReason, ProtocolViolation};
use crate::identity::Role;
use crate::ids::{ConnId, JobId, RequestId};
use crate::wire::{
    negotiate_minor, Action, ClientHello, ClientToCoord, ClientWelcome, CoordToClient,
    CoordToWorker, Drain, JobRequest, MinerStatus, Needs, NotPermitted, Refusal, Stop,
    WorkerRequest, WorkerStatus, MAX_REASON_LEN, MINOR_CLIENT_REPORTS, PROTOCOL_MINOR,
};
use std::time::Instant;

type Handled = Result<(), ProtocolViolation>;

/// A message from the client on `conn` (in the connection table as a client).
pub(super) fn on_client(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    message: ClientToCoord,
) -> Handled {
    let Some((greeted, name)) = t.conns.client_mut(conn).map(|c| {
        c.last_heard = now;
        (c.greeted, c.name.clone())
    }) else {
        return Ok(());
    };
    // A greeted client's request its certificate does not allow is refused here,
    // before anything acts on it (a hello is always allowed).
    if greeted {
        if let Err((request, refused)) = authorize(t, conn, &message) {
            let reply = CoordToClient::Refused(request, Refusal::Forbidden(refused));
            send(t, fx, conn, reply);
            return Ok(());
        }
    }
    let reply = match message {
        ClientToCoord::Hello(ClientHello { minor, .. }) if !greeted => {
            if minor < MINOR_CLIENT_REPORTS {
                let reason = CloseReason::OldClient {
                    theirs: minor,
                    ours: PROTOCOL_MINOR,
                };
                peers::drop_peer(t, fx, conn, reason);
                return Ok(());
            }
            let minor = negotiate_minor(minor);
            if let Some(client) = t.conns.client_mut(conn) {
                client.greeted = true;
                client.minor = minor;
            }
            CoordToClient::Welcome(ClientWelcome { minor })
        }
        ClientToCoord::Hello(_) => return Err(ProtocolViolation::SecondHello),
        _ if !greeted => return Err(ProtocolViolation::BeforeHello),
        ClientToCoord::Submit(submit) => lifecycle::submit(t, fx, now, name, &submit),
        ClientToCoord::Drain(Drain {
            request,
            worker,
            drain,
            reason,
        }) => match set_drain(t, fx, now, &worker, drain, reason) {
            Some(status) => CoordToClient::Drained(request, status),
            None => CoordToClient::Refused(request, Refusal::UnknownWorker(worker)),
        },
        ClientToCoord::Show(JobRequest { request, job }) => {
            let detail = t
                .jobs
                .get(job)
                .map(|j| Reporter::new(t, now, fx.clock).detail(job, j));
            match detail {
                Some(detail) => CoordToClient::Detail(request, Box::new(detail)),
                None => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
            }
        }
        ClientToCoord::Watch(JobRequest { request, job }) => {
            lifecycle::watch(t, fx, now, conn, request, job);
            return Ok(());
        }
        ClientToCoord::Cancel(JobRequest { request, job }) => {
            match lifecycle::cancel(t, fx, now, job) {
                Some(summary) => CoordToClient::Cancelled(request, summary),
                None => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
            }
        }
        ClientToCoord::ListJobs(request) => {
            let jobs = Reporter::new(t, now, fx.clock).listing(own_only(t, conn));
            CoordToClient::Jobs(request, jobs)
        }
        ClientToCoord::Forget(JobRequest { request, job }) => {
            lifecycle::forget(t, fx, request, job)
        }
        ClientToCoord::Release(WorkerRequest { request, worker }) => {
            if t.workers.release(&worker) {
                fx.record(Record::Quarantined(worker.clone(), false));
                CoordToClient::ReleasedWorker(request, worker)
            } else {
                CoordToClient::Refused(request, Refusal::NotQuarantined(worker))
            }
        }
        ClientToCoord::Prune(request) => lifecycle::prune(t, fx, request),
        ClientToCoord::Status(request) => {
            let status = Reporter::new(t, now, fx.clock).status(own_only(t, conn));
            CoordToClient::Status(request, status)
        }
        ClientToCoord::Miner(request, report) => {
            if let Some(client) = t.conns.client_mut(conn) {
                client.miner = Some(Box::new(((*report).bounded(), now)));
            }
            CoordToClient::MinerNoted(request)
        }
        ClientToCoord::Miners(request) => {
            let miners = t
                .conns
                .miners(own_only(t, conn))
                .map(|(client, report, at)| MinerStatus {
                    client: client.to_string(),
                    report: report.clone(),
                    age_ms: millis(now.saturating_duration_since(at)),
                })
                .collect();
            CoordToClient::Miners(request, miners)
        }
        ClientToCoord::Revoke(WorkerRequest { request, worker }) => {
            if !crate::identity::is_valid_name(&worker) {
                CoordToClient::Refused(request, Refusal::InvalidName(worker))
            } else if t
                .credentials
                .identity(conn)
                .is_some_and(|me| me.name == worker)
            {
                let refused = NotPermitted {
                    client: name.clone(),
                    action: Action::RevokeOwn(worker),
                    needs: Needs::AnotherCredential,
                };
                CoordToClient::Refused(request, Refusal::Forbidden(refused))
            } else {
                CoordToClient::Revoked(request, enroll::revoke(t, fx, now, &worker))
            }
        }
        ClientToCoord::Credentials(request) => {
            // An admin sees every certificate and revoked name; a client its own
            // certificates only.
            let mut report = t.credentials.report();
            if let Some(client) = t.conns.client(conn).filter(|c| !c.admin) {
                report.connected.retain(|c| c.name == client.name);
                report.revoked.clear();
            }
            CoordToClient::Credentials(request, report)
        }
        ClientToCoord::CreateToken(create) => enroll::create_token(t, fx, now, &name, create),
        ClientToCoord::ListTokens(request) => enroll::list_tokens(t, fx, now, request),
        ClientToCoord::RevokeToken(request) => enroll::revoke_token(t, fx, request),
    };
    send(t, fx, conn, reply);
    Ok(())
}

/// Sends a reply as the client decodes it: a refusal in the form of the client's
/// protocol minor (the text of minor 3, or the typed refusals of minor 4).
fn send(t: &Tables, fx: &mut Effects, conn: ConnId, reply: CoordToClient) {
    let minor = t.conns.client(conn).map_or(0, |c| c.minor);
    let reply = match reply {
        CoordToClient::Refused(request, why) => {
            CoordToClient::Refused(request, why.for_minor(minor))
        }
        other => other,
    };
    fx.reply(&t.jobs, Transmit::ToClient(conn, reply));
}

/// What a request takes, from the request alone.
enum Permission {
    /// Any client certificate.
    Anyone,
    /// An admin certificate.
    Admin(RequestId, Action),
    /// The job's own client's certificate, or an admin's.
    Owner(RequestId, JobId, Action),
}

/// The authorization table: a client submits, sees the cluster's status and lists,
/// watches, cancels, shows and forgets its own jobs; everything else (drain, release,
/// prune, revocation, tokens, other clients' jobs) takes an admin certificate.
fn permission(message: &ClientToCoord) -> Permission {
    use Permission::{Admin, Anyone, Owner};
    match message {
        ClientToCoord::Drain(d) => Admin(d.request, Action::DrainWorkers),
        ClientToCoord::Release(r) => Admin(r.request, Action::ReleaseWorkers),
        ClientToCoord::Prune(request) => Admin(*request, Action::PruneJobs),
        ClientToCoord::Revoke(r) => Admin(r.request, Action::RevokeCertificates),
        ClientToCoord::CreateToken(t) => Admin(t.request, Action::MakeTokens),
        ClientToCoord::ListTokens(request) => Admin(*request, Action::ListTokens),
        ClientToCoord::RevokeToken(t) => Admin(t.request, Action::WithdrawTokens),
        ClientToCoord::Watch(r) => Owner(r.request, r.job, Action::Watch(r.job)),
        ClientToCoord::Cancel(r) => Owner(r.request, r.job, Action::Cancel(r.job)),
        ClientToCoord::Forget(r) => Owner(r.request, r.job, Action::Forget(r.job)),
        ClientToCoord::Show(r) => Owner(r.request, r.job, Action::Show(r.job)),
        ClientToCoord::Hello(_)
        | ClientToCoord::Submit(_)
        | ClientToCoord::ListJobs(_)
        | ClientToCoord::Status(_)
        | ClientToCoord::Miner(..)
        | ClientToCoord::Miners(_)
        | ClientToCoord::Credentials(_) => Anyone,
    }
}

/// Whether `conn`'s certificate allows this request ([`permission`]); the refusal
/// if not. A request about a job that is not kept is allowed here (it is then
/// refused as unknown).
fn authorize(
    t: &Tables,
    conn: ConnId,
    message: &ClientToCoord,
) -> Result<(), (RequestId, NotPermitted)> {
    let Some(client) = t.conns.client(conn).filter(|c| !c.admin) else {
        return Ok(());
    };
    let refused = |request, action, needs| {
        let client = client.name.clone();
        Err((
            request,
            NotPermitted {
                client,
                action,
                needs,
            },
        ))
    };
    match permission(message) {
        Permission::Anyone => Ok(()),
        Permission::Admin(request, action) => refused(request, action, Needs::Admin),
        Permission::Owner(request, job, action) => match t.jobs.get(job) {
            Some(j) if j.record.client != client.name => {
                refused(request, action, Needs::OwnerOrAdmin)
            }
            _ => Ok(()),
        },
    }
}

/// Whose jobs `conn` may see: `None` (every job) for an admin, the client's own name
/// for a client.
fn own_only(t: &Tables, conn: ConnId) -> Option<&str> {
    t.conns
        .client(conn)
        .filter(|c| !c.admin)
        .map(|c| c.name.as_str())
}

/// Drains (or undrains) the worker named `name`: a drained worker finishes the
/// chunk it is on and gets nothing new; its queued chunks go back to the queue.
/// The mark outlives reconnections, and a worker that is not connected may be
/// drained (it takes no work when it comes back). `None` if no worker of that
/// name is connected or was ever enrolled.
fn set_drain(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    name: &str,
    drain: bool,
    reason: Option<String>,
) -> Option<WorkerStatus> {
    let known = t.workers.named(name).is_some()
        || t.credentials.enrolled_role(name) == Some(Role::Worker)
        || t.workers.is_drained(name);
    if !known {
        return None;
    }
    let reason = reason
        .map(|r| truncate_text(r.trim(), MAX_REASON_LEN))
        .filter(|r| !r.is_empty() && drain);
    let conn = t.workers.set_drained(name, drain, reason.clone());
    fx.record(Record::Drained(name.to_string(), drain));
    if let Some(reason) = &reason {
        fx.record(Record::DrainReason(name.to_string(), reason.clone()));
    }
    if drain {
        tracing::info!(worker = %name, reason = reason.as_deref().unwrap_or(""), connected = conn.is_some(), "worker drained");
    } else {
        tracing::info!(worker = %name, "worker undrained");
    }
    if let (true, Some(conn)) = (drain, conn) {
        let queued: Vec<_> = t
            .workers
            .get(conn)
            .map(|w| w.leases().iter().skip(1).copied().collect())
            .unwrap_or_default();
        for lease in queued {
            leasing::requeue(t, fx, lease);
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::Stop(Stop { lease }),
            ));
        }
    }
    fx.schedule = true;
    let found = Reporter::new(t, now, fx.clock)
        .workers_status()
        .into_iter()
        .find(|w| w.name == name);
    // Undrained and away: not listed, but known.
    Some(found.unwrap_or_else(|| report::absent_worker(name, crate::wire::WorkerState::Idle, None)))
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate_text(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
