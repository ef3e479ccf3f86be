//! Whether a worker did the work it claims: claimed solutions re-verified with one
//! hash ([`record_found`]), shares checked against their lease's target and counted
//! ([`on_shares`]), the claimed progress weighed against the shares it should have
//! brought ([`account`], with vardiff retargeting), and the quarantine that follows
//! a false claim ([`violation`]): what the worker committed in doubt is searched
//! again and it gets nothing until an admin releases it.

use super::effects::Effects;
use super::journal::Record;
use super::leasing::{self, Advanced};
use super::lifecycle;
use super::peers;
use super::tables::Tables;
use super::transmit::Transmit;
use super::violation::{CloseReason, ProtocolViolation};
use crate::ids::{ConnId, JobId, LeaseId};
use crate::wire::{CoordToClient, CoordToWorker, JobState, ShareTarget, MAX_SOLUTIONS};
use std::ops::Range;
use std::time::Instant;

type Handled = Result<(), ProtocolViolation>;

/// Moves a lease to `position` (committing what is in between), then judges the
/// claim against the worker's shares.
pub(super) fn commit(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    lease: LeaseId,
    position: u64,
) -> Handled {
    match leasing::advance(t, fx, now, lease, position)? {
        // Judged once the claim is committed: if it is false, the quarantine takes
        // it back with the rest of the worker's work.
        Some(Advanced {
            worker,
            delta,
            share_bits,
        }) => account(t, fx, now, worker, delta, share_bits),
        None => Ok(()),
    }
}

/// Claimed progress at `bits` adds to the shares expected of `conn`'s worker;
/// a full window with far too few is a false claim. Vardiff may retarget.
pub(super) fn account(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    claimed: u64,
    bits: Option<u8>,
) -> Handled {
    let Some(account) = t.workers.worker_mut(conn).and_then(|w| w.shares.as_mut()) else {
        return Ok(());
    };
    if let Some(bits) = bits {
        account.claimed(claimed, bits);
        if let Err(too_few) = account.judge() {
            return Err(ProtocolViolation::TooFewShares {
                expected: too_few.expected.round() as u64,
                observed: too_few.observed,
            });
        }
    }
    if let Some(bits) = account.retarget(now) {
        fx.push(Transmit::ToWorker(
            conn,
            CoordToWorker::ShareTarget(ShareTarget { bits }),
        ));
    }
    Ok(())
}

/// Shares of a lease: each must meet the lease's share target.
pub(super) fn on_shares(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    lease_id: LeaseId,
    indices: &[u64],
) -> Handled {
    let Some(lease) = leasing::own_lease(t, fx, conn, lease_id)? else {
        return Ok(()); // stale
    };
    let (job_id, start, end) = (lease.job, lease.position, lease.end);
    // An audit's shares vouch for nothing the job counts (it commits nothing).
    let audit = lease.audit.is_some();
    let Some(bits) = lease.share_bits else {
        return Ok(()); // an adopted lease, or one from before the target: not counted
    };
    let Some(kernel) = t.jobs.get(job_id).and_then(|j| j.session.kernel.clone()) else {
        return Ok(());
    };
    for &index in indices {
        let meets = (start..end).contains(&index)
            && kernel
                .digest(index)
                .is_some_and(|d| crate::kernel::digest_zero_bits(&d) >= u32::from(bits));
        if !meets {
            return Err(ProtocolViolation::FalseShare {
                lease: lease_id,
                index,
            });
        }
        // A share is evidence once: sent again, it claims work done once twice.
        if !t
            .leases
            .get_mut(lease_id)
            .is_some_and(|l| l.shares.insert(index))
        {
            return Err(ProtocolViolation::RepeatedShare {
                lease: lease_id,
                index,
            });
        }
        fx.stats.shares += 1;
        if let Some(account) = t.workers.worker_mut(conn).and_then(|w| w.shares.as_mut()) {
            account.verified(bits);
        }
    }
    if !indices.is_empty() && !audit {
        let name = t.workers.get(conn).map(|w| w.name.clone());
        if let (Some(name), Some(job)) = (name, t.jobs.get_mut(job_id)) {
            job.record.vouch(&name);
        }
    }
    account(t, fx, now, conn, 0, None)
}

/// Solutions a worker claims in a range of one of its leases.
pub(super) struct Claim<'a> {
    pub(super) job: JobId,
    pub(super) lease: LeaseId,
    /// The part of the lease they must lie in.
    pub(super) range: Range<u64>,
    pub(super) indices: &'a [u64],
    /// The worker's name.
    pub(super) finder: &'a str,
}

/// Verifies claimed solutions and records the new ones (a worker back from a lost
/// connection reports again those the coordinator may have lost with unsynced
/// records); the job completes when it has what it asked.
pub(super) fn record_found(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    claim: Claim<'_>,
) -> Handled {
    let Claim {
        job: job_id,
        lease,
        range,
        indices: found,
        finder,
    } = claim;
    let Some(job) = t.jobs.get_mut(job_id) else {
        return Ok(());
    };
    let Some(kernel) = job.session.kernel.clone() else {
        return if found.is_empty() {
            Ok(())
        } else {
            Err(ProtocolViolation::SolutionsForCustom(lease))
        };
    };
    let mut new = Vec::new();
    for &index in found {
        let solution = range
            .contains(&index)
            .then(|| kernel.verify(index))
            .flatten();
        let Some(solution) = solution else {
            return Err(ProtocolViolation::FalseSolution { lease, index });
        };
        // Known already: kept, or counted beyond the kept ones.
        if job.record.solutions.contains_key(&index) || job.record.beyond.contains(&index) {
            continue;
        }
        new.push(solution);
    }
    if new.is_empty() {
        return Ok(());
    }
    let record = &mut job.record;
    for solution in &new {
        record.solutions.insert(solution.index, solution.clone());
        record.found_by.insert(solution.index, finder.to_string());
        if record.solutions.len() > MAX_SOLUTIONS {
            if let Some((dropped, _)) = record.solutions.pop_last() {
                record.found_by.remove(&dropped);
                if record.beyond.len() < super::jobs::MAX_COUNTED_BEYOND {
                    record.beyond.insert(dropped);
                }
            }
            record.truncated = true;
        }
    }
    job.session.dirty = true;
    let done = job.found_enough();
    fx.totals(finder).solutions += new.len() as u64;
    // Watchers that take them get each solution once it is durable.
    let watchers: Vec<ConnId> = job
        .session
        .watchers
        .iter()
        .copied()
        .filter(|c| {
            t.conns
                .client(*c)
                .is_some_and(|s| s.minor >= crate::wire::MINOR_TEMPLATES)
        })
        .collect();
    let pushed = (!watchers.is_empty()).then(|| new.clone());
    let log = &mut job.session.solution_log;
    for solution in new {
        // One line each for the first few; then counts, so that an easy target's
        // hundreds of thousands of solutions neither flood the log nor slow the job.
        log.found += 1;
        if log.found <= super::jobs::LOGGED_SOLUTIONS {
            tracing::info!(job = %job_id, worker = %finder, index = solution.index, "solution found");
        } else {
            log.unsaid += 1;
        }
        let index = solution.index;
        fx.record(Record::Solution(job_id, solution));
        fx.record(Record::Finder(job_id, index, finder.to_string()));
    }
    if let Some(solutions) = pushed {
        for conn in watchers {
            fx.reply(
                &t.jobs,
                Transmit::ToClient(conn, CoordToClient::Solutions(job_id, solutions.clone())),
            );
        }
    }
    let Some(job) = t.jobs.get_mut(job_id) else {
        return Ok(());
    };
    let log = &mut job.session.solution_log;
    let due = log
        .said_at
        .is_none_or(|at| now.saturating_duration_since(at) >= super::jobs::SOLUTION_SUMMARY_EVERY);
    if log.unsaid > 0 && (due || done) {
        tracing::info!(job = %job_id, found = log.unsaid, in_all = log.found, "solutions found (only the first are logged one by one)");
        log.unsaid = 0;
        log.said_at = Some(now);
    }
    fx.note_content(&mut t.jobs, job_id);
    if done {
        // The lease was searched up to its solutions (a worker reports what it found
        // in a block only once the block is done): that counts as searched, though
        // the job stops before the worker's next report (a first solution, or every
        // target of a preimage job).
        if let Some(top) = found.iter().copied().filter(|i| range.contains(i)).max() {
            count_searched(t, fx, now, lease, top + 1);
        }
        lifecycle::end_job(t, fx, now, job_id, JobState::Completed);
    }
    Ok(())
}

/// A job found all it asks for (a first solution, or every target) in `lease`,
/// searched up to `upto`:
/// the lease's part below it counts as searched by its worker (the job ends
/// next; nothing else of it is committed later).
fn count_searched(t: &mut Tables, fx: &mut Effects, now: Instant, lease_id: LeaseId, upto: u64) {
    let Some(lease) = t.leases.get(lease_id) else {
        return;
    };
    if upto <= lease.position || upto > lease.end {
        return;
    }
    // An honest report within the lease: `commit` cannot refuse it.
    let _ = commit(t, fx, now, lease_id, upto);
}

/// `conn` broke the protocol: it is closed. A worker whose violation is a false
/// claim is quarantined first, and what it committed in doubt is searched again.
pub(super) fn violation(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    violation: ProtocolViolation,
) {
    fx.stats.violations += 1;
    let liar = match (&violation, t.workers.get(conn)) {
        (v, Some(w)) if v.is_false_claim() => Some(w.name.clone()),
        _ => None,
    };
    let Some(name) = liar else {
        peers::drop_peer(t, fx, conn, CloseReason::Violation(violation));
        return;
    };
    // A worker that lies once may have lied before: what it committed since its
    // last verified share (a false solution or share), or in this whole session
    // (too few shares, or a share sent twice: its claims are what is in doubt), is
    // searched again, and it gets nothing until an admin releases it.
    let all = matches!(
        violation,
        ProtocolViolation::TooFewShares { .. }
            | ProtocolViolation::RepeatedShare { .. }
            | ProtocolViolation::MissedSolution { .. }
            | ProtocolViolation::MissedShare { .. }
    );
    condemn(t, fx, now, &name, &violation, all);
    peers::drop_peer(t, fx, conn, CloseReason::Quarantined { name, violation });
}

/// Worker `name` claimed work it did not do (`violation`): it is quarantined
/// (durably), what it committed in this session (`all`) or since its last verified
/// share is searched again, and audits of its ranges are dropped (they are searched
/// again anyway). Its connection, if any, is the caller's to close.
pub(super) fn condemn(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    name: &str,
    violation: &ProtocolViolation,
    all: bool,
) {
    let rejected = {
        let totals = fx.totals(name);
        totals.rejected += 1;
        totals.rejected
    };
    fx.record(Record::Rejected(name.to_string(), rejected));
    t.workers.quarantine(name);
    fx.record(Record::Quarantined(name.to_string(), true));
    let mut redo = 0;
    for id in t.jobs.live_ids().collect::<Vec<_>>() {
        if let Some(job) = t.jobs.get_mut(id) {
            job.session.audits.retain(|s| s.subject != name);
            let n = job.record.uncommit(name, all);
            if n > 0 {
                redo += n;
                job.session.dirty = true;
                fx.mark_dirty(now, id);
            }
        }
    }
    tracing::warn!(worker = %name, %violation, indices_to_search_again = redo, "worker quarantined: it claimed work it did not do");
    fx.schedule = true;
}
