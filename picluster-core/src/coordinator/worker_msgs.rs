//! What a worker says, handled over the tables: its hello (and the hello that
//! settles a name clash), progress and releases, results of custom jobs, solutions
//! and shares (judged in `verify`), trims answered, rate and health updates, and the
//! leases it kept through a lost connection or a coordinator restart (adoption).

use super::audit;
use super::effects::Effects;
use super::enroll;
use super::leasing;
use super::lifecycle;
use super::peers;
use super::report::millis;
use super::shares::ShareAccount;
use super::tables::Tables;
use super::transmit::Transmit;
use super::verify::{self, Claim};
use super::violation::{CloseReason, ProtocolViolation};
use crate::ids::{ConnId, JobId, LeaseId};
use crate::wire::{
    negotiate_minor, ChunkOutput, CoordToClient, CoordToWorker, Found, HeldLease, Holding,
    JobFailure, JobState, Output, Progress, Rejected, Released, Renew, ShareTarget, Stop, Trimmed,
    WorkerHello, WorkerToCoord, WorkerWelcome, MAX_HELD_FOUND, MAX_HELD_LEASES,
    MAX_JOB_OUTPUT_BYTES, MINOR_HOLDING, MINOR_SHARES,
};
use std::collections::BTreeSet;
use std::time::Instant;

type Handled = Result<(), ProtocolViolation>;

/// A message from the worker on `conn` (in the worker table).
pub(super) fn on_worker(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    message: WorkerToCoord,
) -> Handled {
    if t.workers.heard_from(conn, now) {
        fx.schedule = true;
    }
    let greeted = t.workers.get(conn).is_some_and(|w| w.hello().is_some());
    match message {
        WorkerToCoord::Hello(hello) if !greeted => {
            greet(t, fx, now, conn, hello);
            Ok(())
        }
        WorkerToCoord::Hello(_) => Err(ProtocolViolation::SecondHello),
        _ if !greeted => Err(ProtocolViolation::BeforeHello),
        WorkerToCoord::Renew(Renew { csr }) => {
            enroll::renew(t, fx, now, conn, csr);
            Ok(())
        }
        WorkerToCoord::Progress(Progress { lease, position }) => {
            let Some(end) = leasing::own_lease(t, fx, conn, lease)?.map(|l| l.end) else {
                return Ok(());
            };
            leasing::check_output_free(t, lease, position)?;
            verify::commit(t, fx, now, lease, position)?;
            if position == end {
                audit::lease_ended(t, fx, now, lease)?;
            } else {
                leasing::check_pace(t, fx, now, lease);
            }
            Ok(())
        }
        WorkerToCoord::Output(Output {
            lease,
            position,
            data,
        }) => on_output(t, fx, now, conn, lease, position, data),
        WorkerToCoord::Rejected(Rejected { lease, reason }) => {
            let Some(job) = leasing::own_lease(t, fx, conn, lease)?.map(|l| l.job) else {
                return Ok(());
            };
            let worker = t
                .workers
                .get(conn)
                .map(|w| w.name.clone())
                .unwrap_or_default();
            lifecycle::fail_job(t, fx, now, job, JobFailure::Rejected { worker, reason });
            Ok(())
        }
        WorkerToCoord::Found(Found { lease, indices }) => {
            let Some(l) = leasing::own_lease(t, fx, conn, lease)? else {
                return Ok(());
            };
            if l.audit.is_some() {
                return audit::on_found(t, conn, lease, &indices);
            }
            // A claim below the lease position would refer to already committed work.
            let (job, range) = (l.job, l.position..l.end);
            let name = t
                .workers
                .get(conn)
                .map(|w| w.name.clone())
                .unwrap_or_default();
            let claim = Claim {
                job,
                lease,
                range,
                indices: &indices,
                finder: &name,
            };
            verify::record_found(t, fx, now, claim)
        }
        WorkerToCoord::Shares(Found { lease, indices }) => {
            verify::on_shares(t, fx, now, conn, lease, &indices)
        }
        WorkerToCoord::Health(health) => {
            if let Some(w) = t.workers.worker_mut(conn) {
                w.health = Some(health);
            }
            Ok(())
        }
        WorkerToCoord::Rate(change) => {
            if let Some((name, before)) = t.workers.rescale(conn, change, now) {
                tracing::info!(worker = %name, threads = change.threads, from = before, to = change.threads, "worker changed its threads: chunk sizes follow");
                fx.schedule = true;
            }
            Ok(())
        }
        WorkerToCoord::Released(Released { lease, position }) => {
            let Some(end) = leasing::released_lease(t, conn, lease)?.map(|l| l.end) else {
                return Ok(());
            };
            leasing::check_output_free(t, lease, position)?;
            verify::commit(t, fx, now, lease, position)?;
            if position == end {
                // Released at its end (a worker stopping as the lease finished): it
                // is done, and may have been its job's last.
                audit::lease_ended(t, fx, now, lease)?;
            } else {
                leasing::requeue(t, fx, lease);
            }
            // Its next lease starts now.
            t.workers.moved(conn, now);
            Ok(())
        }
        WorkerToCoord::Trimmed(Trimmed { lease, end }) => on_trimmed(t, fx, now, conn, lease, end),
        WorkerToCoord::Leaving => {
            peers::drop_peer(t, fx, conn, CloseReason::WorkerLeft);
            Ok(())
        }
        WorkerToCoord::Holding(Holding { leases }) => on_holding(t, fx, now, conn, leases),
    }
}

/// The hello of a connection whose worker name was already connected: the
/// connected one is replaced if it has gone silent, else this one is refused.
pub(super) fn resolve_clash(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    name: String,
    hello: WorkerHello,
) {
    if let Some(live) = t.workers.named(&name) {
        let silent = t.workers.get(live).is_none_or(|w| {
            w.hello().is_none()
                || w.is_suspect()
                || (!w.leases().is_empty()
                    && now.saturating_duration_since(w.last_heard())
                        > 2 * t.config.progress_interval)
        });
        if !silent {
            tracing::warn!(worker = %name, "refused a second connection of a connected worker");
            fx.push(Transmit::Close(conn, CloseReason::NameInUse(name)));
            return;
        }
        peers::drop_peer(t, fx, live, CloseReason::Replaced);
    }
    peers::add_worker(t, conn, name, now);
    t.workers.heard_from(conn, now);
    greet(t, fx, now, conn, hello);
}

fn greet(t: &mut Tables, fx: &mut Effects, now: Instant, conn: ConnId, hello: WorkerHello) {
    let Some(id) = t.workers.get(conn).map(|w| w.id) else {
        return;
    };
    let welcome = WorkerWelcome {
        minor: negotiate_minor(hello.minor),
        worker: id,
        progress_interval_ms: millis(t.config.progress_interval) as u32,
    };
    let adopts = welcome.minor >= MINOR_HOLDING;
    let shares = welcome.minor >= MINOR_SHARES;
    if let Some(w) = t.workers.get(conn) {
        tracing::info!(
            worker = %w.name,
            threads = hello.threads,
            arch = %hello.arch,
            kernel = %hello.kernel_impl,
            mhs = format_args!("{:.2}", hello.bench_hps as f64 / 1e6),
            version = %hello.agent_version,
            drained = t.workers.is_drained(&w.name),
            "worker joined"
        );
    }
    t.workers.greet(conn, hello);
    fx.push(Transmit::ToWorker(conn, CoordToWorker::Welcome(welcome)));
    if shares {
        // A worker back from a lost connection carries on its share account (its
        // window and target): reconnecting does not start the test afresh.
        let name = t
            .workers
            .get(conn)
            .map(|w| w.name.clone())
            .unwrap_or_default();
        let account = t
            .workers
            .unpark_account(&name)
            .unwrap_or_else(|| ShareAccount::new(now));
        if let Some(w) = t.workers.worker_mut(conn) {
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::ShareTarget(ShareTarget { bits: account.bits }),
            ));
            w.shares = Some(account);
        }
    }
    if !adopts {
        // It will not claim anything: what it held before goes back to the queue.
        if let Some(name) = t.workers.get(conn).map(|w| w.name.clone()) {
            release_orphans(t, fx, Some(&name));
        }
    }
    fx.schedule = true;
}

/// A custom job's result for a lease's indices up to `position`: stored, passed
/// to the job's watchers, and committed like progress.
fn on_output(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    lease_id: LeaseId,
    position: u64,
    data: Vec<u8>,
) -> Handled {
    let Some((job_id, start, end)) =
        leasing::own_lease(t, fx, conn, lease_id)?.map(|l| (l.job, l.position, l.end))
    else {
        return Ok(());
    };
    let Some(job) = t.jobs.get_mut(job_id) else {
        return Ok(());
    };
    if job.session.kernel.is_some() {
        return Err(ProtocolViolation::OutputForBuiltIn(lease_id));
    }
    if position <= start || position > end {
        return Err(ProtocolViolation::OutputOutside {
            lease: lease_id,
            position,
            start,
            end,
        });
    }
    job.record.output_bytes += data.len() as u64;
    if job.record.output_bytes > MAX_JOB_OUTPUT_BYTES {
        let failure = JobFailure::OutputLimit {
            limit: MAX_JOB_OUTPUT_BYTES,
        };
        lifecycle::fail_job(t, fx, now, job_id, failure);
        return Ok(());
    }
    let output = ChunkOutput {
        start,
        end: position,
        data,
    };
    let watchers: Vec<ConnId> = job.session.watchers.iter().copied().collect();
    let n = job.record.outputs.len() as u64;
    job.record.outputs.push(output.clone());
    // Recorded first: watchers get the result once it is durable.
    if fx.journal.is_some() {
        fx.record(super::journal::Record::Output(job_id, n, output.clone()));
        fx.note_content(&mut t.jobs, job_id);
    }
    for conn in watchers {
        fx.reply(
            &t.jobs,
            Transmit::ToClient(conn, CoordToClient::Outputs(job_id, vec![output.clone()])),
        );
    }
    verify::commit(t, fx, now, lease_id, position)?;
    if position == end {
        lifecycle::lease_done(t, fx, now, lease_id);
    }
    Ok(())
}

/// The owner acknowledged a trim: the lease now ends at `end`, and the rest goes
/// to the thief (or back to the queue if the thief can no longer take it).
fn on_trimmed(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    lease_id: LeaseId,
    end: u64,
) -> Handled {
    let Some(lease) = leasing::released_lease(t, conn, lease_id)? else {
        return Ok(()); // taken back or finished meanwhile
    };
    let Some((requested, thief)) = lease.trim else {
        return Err(ProtocolViolation::UnaskedTrim(lease_id));
    };
    if end < requested || end > lease.end || end < lease.position {
        return Err(ProtocolViolation::TrimOutside {
            lease: lease_id,
            end,
            min: lease.position.max(requested),
            max: lease.end,
            requested,
        });
    }
    let (job_id, old_end, position) = (lease.job, lease.end, lease.position);
    if end == old_end && requested < old_end {
        // Nothing given up: honest only if its threads have already begun every
        // block left, here and in the leases it runs before this one (a worker
        // cannot have begun more than one block per thread beyond its positions).
        let block = match t.jobs.get(job_id).map(|j| &j.record.spec.kind) {
            Some(crate::job::JobKind::Custom(c)) => c.block.max(1),
            _ => crate::wire::SEARCH_BLOCK,
        };
        let (threads, before) = t.workers.get(conn).map_or((1, 0), |w| {
            let before: u64 = w
                .leases()
                .iter()
                .take_while(|l| **l != lease_id)
                .filter_map(|l| t.leases.get(*l))
                .map(|l| l.end - l.position)
                .sum();
            (shown_threads(w, job_id, block), before)
        });
        let left = before.saturating_add(old_end - position);
        if left > (threads + 1).saturating_mul(block) {
            leasing::take_back(t, fx, lease_id);
            return Ok(());
        }
    }
    if let Some(l) = t.leases.get_mut(lease_id) {
        l.end = end;
        l.trim = None;
        l.kept_at = (end == old_end).then_some(now);
    }
    if end < old_end {
        fx.stats.steals += 1;
        if let Some(w) = t.workers.get(conn) {
            fx.totals(&w.name).stolen += 1;
        }
        if let Some(job) = t.jobs.get_mut(job_id) {
            job.session.steals += 1;
        }
        // An audit's back is an audit too (of the same subject's range): it was
        // committed once already.
        let audit_back = t
            .leases
            .get_mut(lease_id)
            .and_then(|l| l.audit.as_mut())
            .map(|run| run.sample.split_off(end));
        match audit_back {
            Some(back) if t.workers.is_ready(thief) => {
                leasing::assign_audit(t, fx, now, thief, job_id, back);
            }
            Some(back) => {
                if let Some(job) = t.jobs.get_mut(job_id) {
                    job.session.audits.push_front(back);
                }
            }
            None if t.workers.is_ready(thief) => {
                leasing::assign(t, fx, now, thief, job_id, end..old_end);
            }
            None => {
                if let Some(job) = t.jobs.get_mut(job_id) {
                    job.record.requeue(end..old_end);
                }
            }
        }
    }
    fx.schedule = true;
    Ok(())
}

/// A worker's threads that could each be inside a block of `block` indices of
/// `job`: those it claims, but no more than its measured rate on the job keeps busy
/// with blocks of at most [`KEEP_WINDOW`] each. A claim of 1,024 threads from a
/// worker that advances an index a report is one thread.
fn shown_threads(w: &super::workers::Worker, job: JobId, block: u64) -> u64 {
    let claimed = w.hello().map_or(1, |h| u64::from(h.threads.clamp(1, 1024)));
    match w.measured(job) {
        Some(hps) => {
            let busy = (hps * KEEP_WINDOW.as_secs_f64() / block as f64).ceil() as u64;
            claimed.min(busy.max(1))
        }
        None => claimed,
    }
}

/// The longest one block of a job may take a thread, for [`shown_threads`].
const KEEP_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);

/// A reconnected worker's leases from before: each is adopted if its range is
/// still its (held back since a restart) or still queued, and stopped otherwise.
/// The worker's other held-back leases return to the queue.
fn on_holding(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    leases: Vec<HeldLease>,
) -> Handled {
    if leases.len() > MAX_HELD_LEASES {
        return Err(ProtocolViolation::TooManyHeld(leases.len()));
    }
    for held in &leases {
        if held.found.len() > MAX_HELD_FOUND {
            return Err(ProtocolViolation::TooManyHeld(held.found.len()));
        }
        if held.start > held.position || held.position > held.end {
            return Err(ProtocolViolation::HeldOutside {
                lease: held.lease,
                start: held.start,
                position: held.position,
                end: held.end,
            });
        }
    }
    let Some(name) = t.workers.get(conn).map(|w| w.name.clone()) else {
        return Ok(());
    };
    let (count, mut adopted) = (leases.len(), 0);
    for held in leases {
        if adopt(t, fx, now, conn, &name, &held)? {
            adopted += 1;
        } else if held.position < held.end {
            fx.push(Transmit::ToWorker(
                conn,
                CoordToWorker::Stop(Stop { lease: held.lease }),
            ));
        }
    }
    if count > 0 {
        tracing::info!(
            worker = %name,
            held = count,
            adopted,
            "worker back with the leases it held through the lost connection"
        );
    }
    release_orphans(t, fx, Some(&name));
    Ok(())
}

/// Adopts one held lease; `false` if it cannot be (the worker is told to stop).
fn adopt(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    name: &str,
    held: &HeldLease,
) -> Result<bool, ProtocolViolation> {
    let id = held.lease;
    if let Some(live) = t.leases.get(id) {
        // Ours already (a duplicate claim) is harmless; another's is not ours to give.
        return Ok(live.worker == conn);
    }
    let Some(job) = t.jobs.get_mut(held.job) else {
        return Ok(false);
    };
    if job.record.state.is_final() || job.session.digest != held.work {
        return Ok(false);
    }
    let claim = Claim {
        job: held.job,
        lease: id,
        range: held.start..held.end,
        indices: &held.found,
        finder: name,
    };
    let orphan = job.session.orphans.get(&id).cloned();
    // A lease keeps its share target: one of this run from when it was lost, one of
    // the previous run from the job's row (the shares verified in it before are not
    // durable).
    let (mut share_bits, mut shares, mut whole_shares) = (None, BTreeSet::new(), true);
    let adopted_from = match orphan {
        Some(o) => {
            job.session.orphans.remove(&id);
            share_bits = o.share_bits;
            // The shares of the last row are kept (sent again, each is a repeat);
            // those verified after it are not, so the set is not whole.
            shares = o.shares.clone();
            whole_shares = false;
            let fits = o.worker == name
                && held.start <= o.position
                && o.position <= held.position
                && held.end <= o.end;
            if !fits {
                job.record.requeue(o.position..o.end);
                fx.schedule = true;
                return Ok(false);
            }
            if held.end < o.end {
                job.record.requeue(held.end..o.end);
            }
            // What the worker searched since the row was written commits below.
            o.position
        }
        None if id.0 < t.leases.next_id()
            && job.session.lost.get(&id).is_some_and(|l| l.worker == name)
            && job.record.take_exact(&(held.position..held.end)) =>
        {
            // A lease of this run, taken back from this worker when its connection
            // was lost and still queued: the rest of it carries on (what was
            // searched since the last report is searched again), at the share
            // target it had, so claims on it are judged as before.
            if let Some(lost) = job.session.lost.remove(&id) {
                (share_bits, shares) = (lost.share_bits, lost.shares);
            }
            held.position
        }
        None => {
            verify::record_found(t, fx, now, claim)?;
            return Ok(false);
        }
    };
    verify::record_found(t, fx, now, claim)?;
    let Some(job) = t.jobs.get_mut(held.job) else {
        return Ok(true);
    };
    if job.record.state.is_final() {
        // A held solution completed it.
        return Ok(true);
    }
    t.leases
        .insert(now, id, held.job, conn, adopted_from..held.end);
    if let Some(lease) = t.leases.get_mut(id) {
        lease.share_bits = share_bits;
        lease.shares = shares;
        lease.whole_shares = whole_shares;
    }
    job.record.state = JobState::Running;
    job.session.leases.insert(id);
    let exempt = job.session.kernel.is_none();
    if t.workers.add_lease(conn, id, now, exempt) {
        if let Some(w) = t.workers.worker_mut(conn) {
            w.restart_sample(held.job, now);
        }
    }
    fx.stats.adopted_leases += 1;
    // What was searched while the worker was away is committed but not weighed
    // against shares: its shares went to a connection (or a coordinator) that is
    // gone. Audits still sample it; what the lease does from here is weighed.
    leasing::advance(t, fx, now, id, held.position)?;
    if held.position == held.end {
        audit::lease_ended(t, fx, now, id)?;
    }
    fx.mark_dirty(now, held.job);
    fx.schedule = true;
    Ok(true)
}

/// Returns held-back leases of the previous run to their jobs' queues: those of
/// worker `name` (it reconnected without claiming them), or all (the deadline
/// passed).
pub(super) fn release_orphans(t: &mut Tables, fx: &mut Effects, name: Option<&str>) {
    let mut left = false;
    for id in t.jobs.live_ids().collect::<Vec<_>>() {
        let Some(job) = t.jobs.get_mut(id) else {
            continue;
        };
        let released: Vec<LeaseId> = job
            .session
            .orphans
            .iter()
            .filter(|(_, o)| name.is_none_or(|n| o.worker == n))
            .map(|(l, _)| *l)
            .collect();
        for lease in released {
            if let Some(o) = job.session.orphans.remove(&lease) {
                job.record.requeue(o.position..o.end);
                fx.schedule = true;
            }
        }
        left |= !job.session.orphans.is_empty();
    }
    if !left {
        fx.timers.adopt_until = None;
        fx.timers.adopt_grace = None;
    }
}
