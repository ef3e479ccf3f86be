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
use super::report::{self, Reporter};
use super::tables::Tables;
use super::transmit::Transmit;
use super::violation::{CloseReason, ProtocolViolation};
use crate::identity::Role;
use crate::ids::{ConnId, JobId, RequestId};
use crate::wire::{
    negotiate_minor, ClientHello, ClientToCoord, ClientWelcome, CoordToClient, CoordToWorker,
    Drain, JobRequest, JobSummary, Refusal, Stop, WorkerRequest, WorkerStatus, MAX_REASON_LEN,
    MINOR_CLIENT_REPORTS, PROTOCOL_MINOR,
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
    let Some((greeted, name)) = t.conns.client(conn).map(|c| (c.greeted, c.name.clone())) else {
        return Ok(());
    };
    // A greeted client's request its certificate does not allow is refused here,
    // before anything acts on it (a hello is always allowed).
    if let Some((request, refusal)) = greeted.then(|| refusal(t, conn, &message)).flatten() {
        fx.reply(
            &t.jobs,
            Transmit::ToClient(conn, CoordToClient::Refused(request, refusal)),
        );
        return Ok(());
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
            if let Some(client) = t.conns.client_mut(conn) {
                client.greeted = true;
            }
            CoordToClient::Welcome(ClientWelcome {
                minor: negotiate_minor(minor),
            })
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
            CoordToClient::Jobs(request, jobs_for(t, fx, conn, now))
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
            let mut status = Reporter::new(t, now, fx.clock).status();
            status.jobs = jobs_for(t, fx, conn, now);
            CoordToClient::Status(request, status)
        }
        ClientToCoord::Revoke(WorkerRequest { request, worker }) => {
            if !crate::identity::is_valid_name(&worker) {
                CoordToClient::Refused(request, Refusal::InvalidName(worker))
            } else if t
                .credentials
                .identity(conn)
                .is_some_and(|me| me.name == worker)
            {
                CoordToClient::Refused(
                    request,
                    Refusal::NotPermitted(format!(
                        "{worker} is the credential making this request: revoking it would lock you out"
                    )),
                )
            } else {
                CoordToClient::Revoked(request, enroll::revoke(t, fx, now, &worker))
            }
        }
        ClientToCoord::Credentials(request) => {
            CoordToClient::Credentials(request, t.credentials.report())
        }
        ClientToCoord::CreateToken(create) => enroll::create_token(t, fx, now, &name, create),
        ClientToCoord::ListTokens(request) => enroll::list_tokens(t, fx, now, request),
        ClientToCoord::RevokeToken(request) => enroll::revoke_token(t, fx, request),
    };
    fx.reply(&t.jobs, Transmit::ToClient(conn, reply));
    Ok(())
}

/// Why `conn` may not make this request, from its certificate alone: a client
/// submits, sees the cluster's status and lists, watches, cancels and forgets its
/// own jobs; everything else (drain, release, prune, other clients' jobs) takes an
/// admin certificate.
fn refusal(t: &Tables, conn: ConnId, message: &ClientToCoord) -> Option<(RequestId, Refusal)> {
    let client = t.conns.client(conn)?;
    if client.admin {
        return None;
    }
    let admin_only = |request: RequestId, what: &str| {
        Some((
            request,
            Refusal::NotPermitted(format!(
                "client {} may not {what}: that takes an admin credential",
                client.name
            )),
        ))
    };
    let own = |request: RequestId, job: JobId, verb: &str| {
        let owner = &t.jobs.get(job)?.record.client;
        (*owner != client.name).then(|| {
            (
                request,
                Refusal::NotPermitted(format!(
                    "job {job} belongs to another client: client {} may not {verb} it (an admin credential may)",
                    client.name
                )),
            )
        })
    };
    match message {
        ClientToCoord::Drain(d) => admin_only(d.request, "drain or undrain workers"),
        ClientToCoord::Release(r) => admin_only(r.request, "release quarantined workers"),
        ClientToCoord::Prune(request) => admin_only(*request, "remove every finished job"),
        ClientToCoord::Revoke(r) => admin_only(r.request, "revoke certificates"),
        ClientToCoord::CreateToken(t) => admin_only(t.request, "make join tokens"),
        ClientToCoord::ListTokens(request) => admin_only(*request, "list join tokens"),
        ClientToCoord::RevokeToken(t) => admin_only(t.request, "withdraw join tokens"),
        ClientToCoord::Watch(r) => own(r.request, r.job, "watch"),
        ClientToCoord::Cancel(r) => own(r.request, r.job, "cancel"),
        ClientToCoord::Forget(r) => own(r.request, r.job, "forget"),
        ClientToCoord::Show(r) => own(r.request, r.job, "show"),
        ClientToCoord::Hello(_)
        | ClientToCoord::Submit(_)
        | ClientToCoord::ListJobs(_)
        | ClientToCoord::Status(_)
        | ClientToCoord::Credentials(_) => None,
    }
}

/// The jobs `conn` may see: every job for an admin, its own for a client.
fn jobs_for(t: &Tables, fx: &Effects, conn: ConnId, now: Instant) -> Vec<JobSummary> {
    let mut jobs = Reporter::new(t, now, fx.clock).listing();
    if let Some(client) = t.conns.client(conn).filter(|c| !c.admin) {
        jobs.retain(|j| j.client == client.name);
    }
    jobs
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
