//! Lease accounting over the job, lease and worker tables: handing a range out
//! ([`assign`]), moving a lease forward ([`advance`], which commits the indices in
//! between), ending it ([`finish`]), returning what it had not reached to the queue
//! ([`requeue`], [`take_back`], [`expire_silent`]), and whose a reported lease is
//! ([`own_lease`]). These are the primitives: they return what happened
//! ([`Advanced`], the job a finished lease completed) and leave the verdicts (shares,
//! the job's end) to their callers in `verify` and `lifecycle`.

use super::effects::Effects;
use super::jobs::AuditSample;
use super::leases::{AuditRun, Lease};
use super::tables::Tables;
use super::violation::ProtocolViolation;
use crate::ids::{ConnId, JobId, LeaseId};
use crate::wire::{Assign, CoordToWorker, JobState, Stop};
use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Instant;

use super::transmit::Transmit;

/// A lease moved forward and its worker is connected: what verification judges.
#[derive(Clone, Copy, Debug)]
pub(super) struct Advanced {
    /// The worker's connection.
    pub(super) worker: ConnId,
    /// Indices newly committed.
    pub(super) delta: u64,
    /// The share target the lease was handed out at (`None`: no shares).
    pub(super) share_bits: Option<u8>,
}

/// Creates a lease of `range` of `job_id` for worker `conn` and sends it.
pub(super) fn assign(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    job_id: JobId,
    range: Range<u64>,
) {
    give(t, fx, now, conn, job_id, range, None);
}

/// Gives worker `conn` an audit of `sample` (a range another worker committed): a
/// lease like any other to its worker, which commits nothing.
pub(super) fn assign_audit(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    job_id: JobId,
    sample: AuditSample,
) {
    let range = sample.range.clone();
    let run = AuditRun {
        sample,
        found: BTreeSet::new(),
        overflow: false,
    };
    give(t, fx, now, conn, job_id, range, Some(Box::new(run)));
}

fn give(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    job_id: JobId,
    range: Range<u64>,
    audit: Option<Box<AuditRun>>,
) {
    let Some(job) = t.jobs.get_mut(job_id) else {
        return;
    };
    let lease = t.leases.create(now, job_id, conn, range.clone());
    job.record.state = JobState::Running;
    job.session.leases.insert(lease);
    let name = t
        .workers
        .get(conn)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    if job.session.started.is_none() {
        job.session.started = Some(now);
        tracing::info!(job = %job_id, worker = %name, "job started");
        if fx.journal.is_some() {
            let at = fx.unix_ms(now);
            fx.record(super::journal::Record::Started(job_id, at));
        }
    }
    if audit.is_none() {
        *job.session.chunks_by.entry(name.clone()).or_default() += 1;
        fx.totals(&name).chunks += 1;
    }
    let assign = Assign {
        lease,
        job: job_id,
        work: job.session.work.clone(),
        start: range.start,
        end: range.end,
    };
    let exempt = job.session.kernel.is_none();
    let sharing = job
        .session
        .kernel
        .as_ref()
        .is_some_and(|k| k.digest(range.start).is_some());
    let share_bits = t
        .workers
        .get(conn)
        .and_then(|w| w.shares.as_ref())
        .filter(|_| sharing)
        .map(|s| s.bits);
    if let Some(l) = t.leases.get_mut(lease) {
        l.share_bits = share_bits;
        l.audit = audit;
    }
    if t.workers.add_lease(conn, lease, now, exempt) {
        // An idle worker owes no reports: its job's rate sample leaves out the
        // idle time.
        if let Some(w) = t.workers.worker_mut(conn) {
            w.restart_sample(job_id, now);
        }
    }
    fx.push(Transmit::ToWorker(conn, CoordToWorker::Assign(assign)));
}

/// Moves a lease's position forward, committing the indices in between. `None` if
/// the lease or its worker is gone (nothing to judge).
pub(super) fn advance(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    lease_id: LeaseId,
    position: u64,
) -> Result<Option<Advanced>, ProtocolViolation> {
    let Some(lease) = t.leases.get_mut(lease_id) else {
        return Ok(None);
    };
    if position < lease.position || position > lease.end {
        return Err(ProtocolViolation::PositionOutside {
            lease: lease_id,
            position,
            start: lease.position,
            end: lease.end,
        });
    }
    let delta = position - lease.position;
    let since = lease.reported_at;
    lease.position = position;
    lease.reported_at = now;
    let (job_id, conn, share_bits) = (lease.job, lease.worker, lease.share_bits);
    let audit = lease.audit.is_some();
    let committed = position - delta..position;
    if delta > 0 {
        t.workers.moved(conn, now);
    }
    let Some(worker) = t.workers.worker_mut(conn) else {
        return Ok(None);
    };
    worker.record_progress(job_id, delta, since, now);
    let name = worker.name.clone();
    if audit {
        // Searched again, not committed: the job's counts do not move, but the
        // claim is judged against the auditor's shares like any other.
        fx.totals(&name).audited += delta;
        fx.stats.audited_indices += delta;
        if let Some(job) = t.jobs.get_mut(job_id) {
            job.session.audited += delta;
        }
        return Ok(Some(Advanced {
            worker: conn,
            delta,
            share_bits,
        }));
    }
    fx.totals(&name).indices += delta;
    if let Some(job) = t.jobs.get_mut(job_id) {
        job.record.hashes += delta;
        if delta > 0 {
            job.record.note_committed(&name, committed);
        }
        *job.record.contributions.entry(name).or_default() += delta;
        job.session.dirty = true;
        // In a job's tail, fresh positions may make a steal worth it.
        fx.schedule |= job.record.pending.is_empty();
        fx.mark_dirty(now, job_id);
    }
    Ok(Some(Advanced {
        worker: conn,
        delta,
        share_bits,
    }))
}

/// A lease reached its end: it leaves the tables and its worker moves on to its next
/// lease. Returns the lease's job if that was its last searched range (the caller
/// completes it).
pub(super) fn finish(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    lease_id: LeaseId,
) -> Option<JobId> {
    let lease = detach(t, lease_id)?;
    t.workers.moved(lease.worker, now);
    // The worker moves straight on to its next lease: that one's clock starts now,
    // and so does its job's rate sample if the worker was on another job.
    let next = t
        .workers
        .get(lease.worker)
        .and_then(|w| w.leases().first().copied());
    if let Some(next) = next.and_then(|id| t.leases.get_mut(id)) {
        next.reported_at = now;
        let next_job = next.job;
        if next_job != lease.job {
            if let Some(w) = t.workers.worker_mut(lease.worker) {
                w.restart_sample(next_job, now);
            }
        }
    }
    fx.schedule = true;
    let job = t.jobs.get(lease.job)?;
    (!job.record.state.is_final() && job.searched_all()).then(|| {
        debug_assert_eq!(job.record.hashes, job.record.keyspace);
        lease.job
    })
}

/// A lease moving at less than this fraction of the pace its worker has shown on the
/// job (or claims, for a built-in kind) over a lease timeout is stalled.
const STALL_FRACTION: f64 = 1.0 / 20.0;

/// After a report on `lease_id` at `now`: once a lease timeout has passed since its
/// pace was last measured, a lease that moved less than [`STALL_FRACTION`] of what
/// its worker has shown it can do (its best measured rate on the job, or its claimed
/// benchmark for a built-in kind) is taken back and its worker gets no more of that
/// job this session; otherwise the measure starts again. A worker that advances a
/// lease an index a report holds no work hostage. Custom jobs are exempt (a block may
/// take longer than the window). `true` if it was taken back.
pub(super) fn check_pace(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    lease_id: LeaseId,
) -> bool {
    let window = t.config.lease_timeout;
    let Some(lease) = t.leases.get_mut(lease_id) else {
        return false;
    };
    let Some((since, from)) = lease.pace else {
        lease.pace = Some((now, lease.position));
        return false;
    };
    let elapsed = now.saturating_duration_since(since);
    if elapsed < window {
        return false;
    }
    let (job_id, conn, moved) = (lease.job, lease.worker, lease.position - from);
    lease.pace = Some((now, lease.position));
    let Some(kind) = t.jobs.get(job_id).map(|j| &j.record.spec.kind) else {
        return false;
    };
    if kind.custom_kernel().is_some() {
        return false;
    }
    let Some(w) = t.workers.get(conn) else {
        return false;
    };
    let claimed = w.hello().map_or(0.0, |h| {
        let claim = h.bench_hps as f64;
        let claim = t
            .workers
            .bench_ceiling(conn)
            .map_or(claim, |c| claim.min(c));
        claim / kind.relative_cost().unwrap_or(1.0)
    });
    let shown = w.peak(job_id).max(claimed);
    let expected = shown * elapsed.as_secs_f64();
    if (moved as f64) >= expected * STALL_FRACTION {
        return false;
    }
    let name = w.name.clone();
    tracing::warn!(worker = %name, lease = %lease_id, job = %job_id, moved, expected = expected as u64, "lease taken back: it moved far slower than its worker can; the worker gets no more of this job");
    fx.stats.stalled_leases += 1;
    if let Some(w) = t.workers.worker_mut(conn) {
        w.stalled_on.insert(job_id);
    }
    requeue(t, fx, lease_id);
    fx.push(Transmit::ToWorker(
        conn,
        CoordToWorker::Stop(Stop { lease: lease_id }),
    ));
    fx.schedule = true;
    true
}

/// Takes back a lease whose worker did not honour a trim: the unsearched part
/// returns to the queue (the thief, idle, gets it at once) and the worker is told
/// to stop.
pub(super) fn take_back(t: &mut Tables, fx: &mut Effects, lease_id: LeaseId) {
    let Some(owner) = t.leases.get(lease_id).map(|l| l.worker) else {
        return;
    };
    let name = t
        .workers
        .get(owner)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    tracing::warn!(worker = %name, lease = %lease_id, "lease taken back: its worker did not honour a trim");
    fx.stats.unhonoured_trims += 1;
    requeue(t, fx, lease_id);
    fx.push(Transmit::ToWorker(
        owner,
        CoordToWorker::Stop(Stop { lease: lease_id }),
    ));
}

/// Removes a lease from the lease table, its worker and its job.
pub(super) fn detach(t: &mut Tables, lease_id: LeaseId) -> Option<Lease> {
    let lease = t.leases.remove(lease_id)?;
    t.workers.remove_lease(lease.worker, lease_id);
    if let Some(job) = t.jobs.get_mut(lease.job) {
        job.session.leases.remove(&lease_id);
    }
    Some(lease)
}

/// Returns the unsearched part of a lease to its job's queue.
pub(super) fn requeue(t: &mut Tables, fx: &mut Effects, lease_id: LeaseId) {
    let Some(lease) = detach(t, lease_id) else {
        return;
    };
    if let Some(run) = lease.audit {
        // An audit not finished goes back whole, to be searched by another.
        if let Some(job) = t.jobs.get_mut(lease.job) {
            if !job.record.state.is_final() {
                job.session.audits.push_front(run.sample);
            }
        }
        fx.schedule = true;
        return;
    }
    if let Some(job) = t.jobs.get_mut(lease.job) {
        if !job.record.state.is_final() && lease.position < lease.end {
            job.record.requeue(lease.position..lease.end);
            job.session.reassigned += 1;
        }
    }
    fx.schedule = true;
}

/// Returns the unsearched part of a lease whose worker was lost (gone or silent) to
/// the queue, remembering whose it was and its share target: that worker, and only
/// it, may adopt the rest when it is back, and its shares there are still counted.
pub(super) fn requeue_lost(t: &mut Tables, fx: &mut Effects, lease_id: LeaseId, worker: &str) {
    if let Some(lease) = t.leases.get(lease_id).filter(|l| l.audit.is_none()) {
        let lost = super::jobs::LostLease {
            worker: worker.to_string(),
            share_bits: lease.share_bits,
            shares: lease.shares.clone(),
        };
        if let Some(job) = t.jobs.get_mut(lease.job) {
            job.session.remember_lost(lease_id, lost);
        }
    }
    requeue(t, fx, lease_id);
}

/// Takes every lease back from workers that fell silent by `now` (their lease
/// deadline passed) and tells them to stop, in case they are alive but cut off.
pub(super) fn expire_silent(t: &mut Tables, fx: &mut Effects, now: Instant) {
    for conn in t.workers.silent(now) {
        let expired = t.workers.expire(conn);
        let name = t
            .workers
            .get(conn)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        tracing::info!(worker = %name, leases_reclaimed = expired.len(), "worker unresponsive: its chunks go to others");
        fx.totals(&name).expired += expired.len() as u64;
        for lease in expired {
            if let Some(l) = t.leases.get(lease) {
                tracing::info!(job = %l.job, lease = %lease, position = l.position, end = l.end, "lease reclaimed");
            }
            fx.stats.expired_leases += 1;
            requeue_lost(t, fx, lease, &name);
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::Stop(Stop { lease }),
            ));
        }
        fx.schedule = true;
    }
}

/// The lease if it is live and `conn`'s; `None` if stale (counted); a violation if
/// it belongs to someone else.
pub(super) fn own_lease<'t>(
    t: &'t Tables,
    fx: &mut Effects,
    conn: ConnId,
    lease: LeaseId,
) -> Result<Option<&'t Lease>, ProtocolViolation> {
    match t.leases.get(lease) {
        None => {
            fx.stats.stale_reports += 1;
            Ok(None)
        }
        Some(l) if l.worker != conn => Err(ProtocolViolation::NotYourLease(lease)),
        Some(l) => Ok(Some(l)),
    }
}

/// Like [`own_lease`], for a release or a trim's answer: one for a lease already
/// taken back is how a worker acknowledges `Stop`, not a stale report.
pub(super) fn released_lease(
    t: &Tables,
    conn: ConnId,
    lease: LeaseId,
) -> Result<Option<&Lease>, ProtocolViolation> {
    match t.leases.get(lease) {
        None => Ok(None),
        Some(l) if l.worker != conn => Err(ProtocolViolation::NotYourLease(lease)),
        Some(l) => Ok(Some(l)),
    }
}

/// A custom job's indices are committed only with their result (`Output`): a
/// `Progress` or `Released` for one may not move the lease forward.
pub(super) fn check_output_free(
    t: &Tables,
    lease_id: LeaseId,
    position: u64,
) -> Result<(), ProtocolViolation> {
    let Some(lease) = t.leases.get(lease_id) else {
        return Ok(());
    };
    let custom = t
        .jobs
        .get(lease.job)
        .is_some_and(|j| j.session.kernel.is_none());
    if custom && position > lease.position {
        return Err(ProtocolViolation::AdvancedWithoutOutput(lease_id));
    }
    Ok(())
}
