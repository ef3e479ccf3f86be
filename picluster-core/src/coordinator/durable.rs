//! The journal's gate, as raft-rs' `Ready` has it: records the state machine emitted
//! and the driver has not taken, how far the driver has made them durable, and the
//! client messages waiting for that ([`Journal::needs`] says which record each one
//! waits for); and a job's row ([`row`]) as the tables describe it. What the records
//! mean is in `journal`; rebuilding the tables from a store is in `recover`.

use super::jobs::JobTable;
use super::journal::{self, Record, StoredJob, StoredLease, UnixMillis};
use super::report;
use super::tables::Tables;
use super::transmit::Transmit;
use crate::ids::JobId;
use crate::wire::{CoordToClient, JobState};
use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Records not yet taken by the driver, and client messages waiting for theirs.
pub(super) struct Journal {
    pub(super) records: Vec<Record>,
    /// Sequence number of the last record emitted (records are numbered from 1).
    pub(super) last: u64,
    /// Every record up to this one is durable.
    pub(super) durable: u64,
    /// Client messages, each with the record it must wait for, in order.
    pub(super) held: VecDeque<(u64, Transmit)>,
    /// Live jobs that progressed since their last row was written.
    pub(super) dirty: BTreeSet<JobId>,
    pub(super) next_checkpoint: Option<Instant>,
    /// How long a progressed job's row may wait.
    pub(super) checkpoint_interval: Duration,
    /// The lease id last recorded as `NextLease`.
    pub(super) next_lease: u64,
    /// Jobs whose last `ShareBits` record was not empty: only they need one when
    /// their leases have no share target left.
    pub(super) with_share_bits: BTreeSet<JobId>,
}

impl Journal {
    pub(super) fn new(checkpoint_interval: Duration) -> Journal {
        Journal {
            records: Vec::new(),
            last: 0,
            durable: 0,
            held: VecDeque::new(),
            dirty: BTreeSet::new(),
            next_checkpoint: None,
            checkpoint_interval,
            next_lease: 0,
            with_share_bits: BTreeSet::new(),
        }
    }

    pub(super) fn push(&mut self, record: Record) {
        self.last += 1;
        self.records.push(record);
    }

    /// Every record up to `seq` is durable: the messages that may now go, in order.
    pub(super) fn released(&mut self, seq: u64) -> Vec<Transmit> {
        self.durable = self.durable.max(seq);
        let mut out = Vec::new();
        while self
            .held
            .front()
            .is_some_and(|(need, _)| *need <= self.durable)
        {
            if let Some((_, t)) = self.held.pop_front() {
                out.push(t);
            }
        }
        out
    }

    /// The sequence number of the last record a client message depends on:
    /// - acknowledgements of changes (a submission, cancel, drain, removal), results,
    ///   the end of a cancelled or failed job, a close: every record before them;
    /// - a completed job's report and progress: the job's submission, solutions and
    ///   results only; its final row may follow (if a crash loses it, the restarted
    ///   coordinator completes the job again from what is durable, with the same
    ///   answer);
    /// - replies that change nothing (welcome, listings, watch, refusals): nothing.
    ///
    /// Messages to clients still leave in the order they were sent.
    pub(super) fn needs(&self, jobs: &JobTable, t: &Transmit) -> u64 {
        let content = |job: JobId| {
            jobs.get(job)
                .map_or(self.last, |job| job.session.content_seq)
        };
        match t {
            Transmit::ToClient(_, CoordToClient::Progress(p)) => content(p.job),
            Transmit::ToClient(_, CoordToClient::Finished(r)) if r.state == JobState::Completed => {
                content(r.job)
            }
            Transmit::ToClient(
                _,
                CoordToClient::Welcome(_)
                | CoordToClient::Watching(..)
                | CoordToClient::Jobs(..)
                | CoordToClient::Status(..)
                | CoordToClient::Credentials(..)
                | CoordToClient::Tokens(..)
                | CoordToClient::MinerNoted(..)
                | CoordToClient::Miners(..)
                | CoordToClient::Refused(..),
            ) => 0,
            Transmit::Issue(_, issue) if issue.renewal => 0,
            _ => self.last,
        }
    }
}

/// The share targets of the job's leases that the row lists (its live leases and
/// its held-back ones), by lease id.
pub(super) fn share_bits(t: &Tables, id: JobId) -> Vec<(u64, u8)> {
    let Some(job) = t.jobs.get(id) else {
        return Vec::new();
    };
    let live = job
        .session
        .leases
        .iter()
        .filter_map(|l| {
            t.leases
                .get(*l)
                .filter(|x| x.audit.is_none())
                .map(|x| (l, x))
        })
        .filter_map(|(l, x)| Some((l.0, x.share_bits?)));
    let held = job
        .session
        .orphans
        .iter()
        .filter_map(|(l, o)| Some((l.0, o.share_bits?)));
    live.chain(held).collect()
}

/// The shares verified in the job's leases that the row lists (not below a
/// lease's position: those are committed, and a share there is refused anyway),
/// by lease id; leases without any are left out.
pub(super) fn lease_shares(t: &Tables, id: JobId) -> Vec<(u64, Vec<u64>)> {
    let Some(job) = t.jobs.get(id) else {
        return Vec::new();
    };
    let live = job.session.leases.iter().filter_map(|l| {
        let lease = t.leases.get(*l).filter(|x| x.audit.is_none())?;
        let shares: Vec<u64> = lease.shares.range(lease.position..).copied().collect();
        (!shares.is_empty()).then_some((l.0, shares))
    });
    let held = job.session.orphans.iter().filter_map(|(l, o)| {
        let shares: Vec<u64> = o.shares.range(o.position..).copied().collect();
        (!shares.is_empty()).then_some((l.0, shares))
    });
    live.chain(held).collect()
}

/// The job's row as it stands now; times on the wall clock anchored at `clock`.
pub(super) fn row(t: &Tables, clock: (Instant, UnixMillis), id: JobId) -> Option<StoredJob> {
    let job = t.jobs.get(id)?;
    let record = &job.record;
    let mut uncommitted: Vec<Range<u64>> = record.pending.iter().cloned().collect();
    let mut leases = Vec::new();
    for lease in &job.session.leases {
        // An audit's range is committed already (and its lease is not adoptable).
        if let Some(l) = t.leases.get(*lease).filter(|l| l.audit.is_none()) {
            uncommitted.push(l.position..l.end);
            if let Some(w) = t.workers.get(l.worker) {
                leases.push(StoredLease {
                    lease: lease.0,
                    worker: w.name.clone(),
                    position: l.position,
                    end: l.end,
                });
            }
        }
    }
    for (lease, o) in &job.session.orphans {
        uncommitted.push(o.position..o.end);
        leases.push(StoredLease {
            lease: lease.0,
            worker: o.worker.clone(),
            position: o.position,
            end: o.end,
        });
    }
    Some(StoredJob {
        work: (*job.session.work).clone(),
        mode: record.spec.mode,
        priority: record.priority,
        client: record.client.clone(),
        state: record.state,
        failure: record.failure.clone(),
        committed: journal::complement(record.keyspace, &mut uncommitted),
        hashes: record.hashes,
        contributions: record
            .contributions
            .iter()
            .map(|(name, n)| (name.clone(), *n))
            .collect(),
        truncated: record.truncated,
        submitted: report::wall_clock(clock, job.session.submitted),
        finished: job.session.finished.map(|t| report::wall_clock(clock, t)),
        leases: if record.state.is_final() {
            Vec::new()
        } else {
            leases
        },
    })
}
