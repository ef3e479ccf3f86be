//! Rebuilding the tables from what a store held (a [`Snapshot`]): live jobs resume
//! from their committed ranges, finished ones keep their reports, job and lease ids
//! continue, the previous run's leases are held for their workers to claim, and a
//! job whose end was not durable yet (though what made it end was) ends again with
//! the same answer.

use super::durable::Journal;
use super::effects::Effects;
use super::jobs::{Job, JobRecord, JobSession, Orphan};
use super::journal::{self, Snapshot, StoredJob, UnixMillis};
use super::leases::LEASE_ID_GAP;
use super::lifecycle;
use super::tables::Tables;
use crate::ids::{JobId, LeaseId};
use crate::job::{JobKind, JobSpec, SpecError};
use crate::kernel::Solution;
use crate::wire::{ChunkOutput, JobState, MAX_SOLUTIONS};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::Range;
use std::time::Instant;

/// Why a store's contents could not be recovered. The store must be repaired or set
/// aside; starting over it would lose or contradict what it holds.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// A stored job does not describe a valid job.
    #[error("stored job {job} is not a valid job: {source}")]
    InvalidJob {
        /// The job.
        job: JobId,
        /// Why.
        source: SpecError,
    },
}

/// Fills new, empty tables from `snapshot` and gives the effects a journal; the
/// wall clock read `unix_ms` at `now`.
pub(super) fn recover(
    t: &mut Tables,
    fx: &mut Effects,
    snapshot: Snapshot,
    now: Instant,
    unix_ms: UnixMillis,
) -> Result<(), RecoverError> {
    fx.clock = (now, unix_ms);
    fx.journal = Some(Journal::new(t.config.checkpoint_interval));
    let Snapshot {
        next_job,
        next_lease,
        jobs,
        mut solutions,
        mut outputs,
        drained,
        quarantined,
        revoked,
        tokens,
        enrolled,
        mut finders,
        drain_reasons,
        renewed,
        rejected,
        mut share_bits,
        mut lease_shares,
        mut started,
    } = snapshot;
    t.credentials.restore(revoked, tokens, enrolled, renewed);
    for (name, n) in rejected {
        fx.totals(&name).rejected = n;
    }
    let mut finished = Vec::new();
    for (id, stored) in jobs {
        let bits = share_bits.remove(&id).unwrap_or_default();
        let shares = lease_shares.remove(&id).unwrap_or_default();
        if !bits.is_empty() || !shares.is_empty() {
            // The next row that has none clears them.
            if let Some(j) = fx.journal.as_mut() {
                j.with_share_bits.insert(id);
            }
        }
        let mut job = restore_job(
            fx,
            id,
            stored,
            solutions.remove(&id).unwrap_or_default(),
            outputs.remove(&id).unwrap_or_default(),
            &bits,
            &shares,
        )?;
        job.record.found_by = finders.remove(&id).unwrap_or_default();
        job.session.started = started.remove(&id).map(|ms| fx.instant_of(ms));
        match job.session.finished {
            Some(ended) => finished.push((ended, id, job)),
            None => t.jobs.restore(id, job),
        }
    }
    finished.sort_by_key(|(ended, id, _)| (*ended, *id));
    for (_, id, job) in finished {
        t.jobs.restore(id, job);
    }
    t.jobs.reserve(next_job);
    let epoch_start = epoch_leases(t.config.epoch);
    if next_job > 0 || next_lease > 0 || epoch_start > 0 {
        // Leases given since the last recorded id must not be given again; a new
        // leader's are its term's own.
        let next = next_lease
            .max(1)
            .saturating_add(LEASE_ID_GAP)
            .max(epoch_start);
        t.leases.reserve(next);
        fx.record_next_lease(next);
    }
    // A job whose end was not durable yet, though what made it end was (its
    // report may have gone out): it ends again, with the same answer.
    let done: Vec<JobId> = t
        .jobs
        .live()
        .filter(|(_, job)| job.found_enough() || job.searched_all())
        .map(|(id, _)| id)
        .collect();
    for id in done {
        lifecycle::end_job(t, fx, now, id, JobState::Completed);
        fx.record_job(t, id);
    }
    let orphans = t
        .jobs
        .live()
        .any(|(_, job)| !job.session.orphans.is_empty());
    if orphans {
        let grace = now + t.config.lease_timeout;
        fx.timers.adopt_grace = Some(grace);
        fx.timers.adopt_until = Some(grace.max(now + t.config.adoption_window));
    }
    for name in drained {
        t.workers.restore_drained(name);
    }
    for (name, reason) in drain_reasons {
        t.workers.restore_drain_reason(name, reason);
    }
    for name in quarantined {
        t.workers.quarantine(&name);
    }
    fx.schedule = true;
    Ok(())
}

/// A job as its row, solutions and results describe it: a live one queued over
/// what is neither committed nor held by a lease of the previous run.
fn restore_job(
    fx: &Effects,
    id: JobId,
    stored: StoredJob,
    solutions: BTreeMap<u64, Solution>,
    outputs: BTreeMap<u64, ChunkOutput>,
    share_bits: &BTreeMap<u64, u8>,
    lease_shares: &BTreeMap<u64, BTreeSet<u64>>,
) -> Result<Job, RecoverError> {
    let kind = JobKind::try_from(&stored.work)
        .map_err(|source| RecoverError::InvalidJob { job: id, source })?;
    let spec = JobSpec {
        kind,
        mode: stored.mode,
    };
    let keyspace = spec.kind.keyspace();
    let committed: Vec<Range<u64>> = stored
        .committed
        .iter()
        .map(|&(a, b)| a.min(keyspace)..b.min(keyspace))
        .collect();
    let final_state = stored.state.is_final();
    let mut orphans = BTreeMap::new();
    if !final_state {
        for l in &stored.leases {
            let (position, end) = (l.position.min(keyspace), l.end.min(keyspace));
            // A lease whose range overlaps what is committed or another lease's is
            // not held (the row says otherwise): its range is simply queued.
            let clear = position < end
                && !committed.iter().any(|c| c.start < end && position < c.end)
                && !orphans
                    .values()
                    .any(|o: &Orphan| o.position < end && position < o.end);
            if clear {
                orphans.insert(
                    LeaseId(l.lease),
                    Orphan {
                        worker: l.worker.clone(),
                        position,
                        end,
                        share_bits: share_bits.get(&l.lease).copied(),
                        shares: lease_shares.get(&l.lease).cloned().unwrap_or_default(),
                    },
                );
            }
        }
    }
    let pending = if final_state {
        VecDeque::new()
    } else {
        let mut held: Vec<Range<u64>> = committed.clone();
        held.extend(orphans.values().map(|o| o.position..o.end));
        journal::complement(keyspace, &mut held)
            .into_iter()
            .map(|(a, b)| a..b)
            .collect()
    };
    let mut session = JobSession::new(&spec, fx.instant_of(stored.submitted));
    session.orphans = orphans;
    session.finished = stored.finished.map(|ms| fx.instant_of(ms));
    let outputs: Vec<ChunkOutput> = outputs.into_values().collect();
    let output_bytes = outputs.iter().map(|o| o.data.len() as u64).sum();
    // The store keeps every solution found: the lowest are kept, the rest counted.
    let mut solutions = solutions;
    let mut truncated = stored.truncated;
    let mut beyond = std::collections::BTreeSet::new();
    while solutions.len() > MAX_SOLUTIONS {
        if let Some((dropped, _)) = solutions.pop_last() {
            if beyond.len() < super::jobs::MAX_COUNTED_BEYOND {
                beyond.insert(dropped);
            }
        }
        truncated = true;
    }
    let record = JobRecord {
        spec,
        priority: stored.priority,
        client: stored.client,
        keyspace,
        pending,
        // A live job starts over from the queue: nothing holds a lease of it.
        state: if final_state {
            stored.state
        } else {
            JobState::Queued
        },
        hashes: stored.hashes,
        solutions,
        found_by: BTreeMap::new(),
        truncated,
        beyond,
        contributions: stored.contributions.into_iter().collect(),
        outputs,
        output_bytes,
        failure: stored.failure,
        committed_by: BTreeMap::new(),
        vouched: BTreeMap::new(),
    };
    Ok(Job { record, session })
}

/// The first lease id of a leader's term (0 for a coordinator alone): the term in
/// the top 24 bits.
pub(super) fn epoch_leases(epoch: u64) -> u64 {
    (epoch & 0xff_ffff) << 40
}
