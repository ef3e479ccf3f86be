//! What an operation produces besides changes to the tables: messages for the driver
//! (the outbox), the request to run the scheduler, counters, timers, and records for
//! the journal. Every operation takes `&mut Effects` beside the tables it touches, as
//! raft-rs passes `msgs` and tako passes `comm`.
//!
//! The durability gate sits here: [`Effects::reply`] queues a message to a client
//! behind the records it depends on ([`Journal::needs`]), and [`Effects::durable`]
//! lets them go when the driver says those records are written. Messages to workers
//! never wait ([`Effects::push`]).

use super::durable::{self, Journal};
use super::jobs::JobTable;
use super::journal::{Record, UnixMillis};
use super::metrics::{CoordinatorStats, WorkerTotals};
use super::report;
use super::tables::Tables;
use super::transmit::Transmit;
use crate::ids::{JobId, LeaseId};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

/// The coordinator's own deadlines (the tables keep theirs: lease deadlines in the
/// worker table, retention in the job table, the checkpoint in the journal).
#[derive(Default)]
pub(super) struct Timers {
    /// When progress next goes to the watchers of jobs that moved.
    pub(super) push: Option<Instant>,
    /// Trims sent, by the time their answer is due.
    pub(super) trims: BTreeSet<(Instant, LeaseId)>,
    /// After a restart, until when the previous run's leases are held for their
    /// workers to claim (`None` once none is left)...
    pub(super) adopt_until: Option<Instant>,
    /// ...and from when a worker with nothing else to do ends the wait.
    pub(super) adopt_grace: Option<Instant>,
    /// When client sessions are next looked at for idleness (`None`: no client).
    pub(super) idle_sweep: Option<Instant>,
}

/// The effects sink every operation writes to.
pub(super) struct Effects {
    outbox: VecDeque<Transmit>,
    /// Run the scheduler at the next `poll_transmit` (once per batch of inputs).
    pub(super) schedule: bool,
    pub(super) stats: CoordinatorStats,
    /// Cumulative counts per worker name (this run), for the metrics.
    pub(super) totals: BTreeMap<String, WorkerTotals>,
    /// Jobs submitted this run.
    pub(super) submitted: u64,
    /// `None` without a store: nothing is recorded and no reply waits.
    pub(super) journal: Option<Journal>,
    /// The wall clock at an instant, for the times on records and reports.
    pub(super) clock: (Instant, UnixMillis),
    pub(super) timers: Timers,
}

impl Effects {
    pub(super) fn new(clock: (Instant, UnixMillis)) -> Effects {
        Effects {
            outbox: VecDeque::new(),
            schedule: false,
            stats: CoordinatorStats::default(),
            totals: BTreeMap::new(),
            submitted: 0,
            journal: None,
            clock,
            timers: Timers::default(),
        }
    }

    /// Queues an effect that waits for nothing: a message to a worker, a close of a
    /// worker or of a connection that has no table entry.
    pub(super) fn push(&mut self, t: Transmit) {
        self.outbox.push_back(t);
    }

    /// Queues a message to a client or a joining connection (or its close). With a
    /// journal, it waits, in order, until the records it depends on are durable.
    pub(super) fn reply(&mut self, jobs: &JobTable, t: Transmit) {
        match self.journal.as_mut() {
            Some(j) => {
                let need = j.needs(jobs, &t);
                if need > j.durable || !j.held.is_empty() {
                    j.held.push_back((need, t));
                } else {
                    self.outbox.push_back(t);
                }
            }
            None => self.outbox.push_back(t),
        }
    }

    /// The next effect for the driver.
    pub(super) fn pop(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// Every record up to `seq` is durable: the messages waiting for them go out.
    pub(super) fn durable(&mut self, seq: u64) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        for t in journal.released(seq) {
            self.outbox.push_back(t);
        }
    }

    /// The metrics totals of worker `name`.
    pub(super) fn totals(&mut self, name: &str) -> &mut WorkerTotals {
        self.totals.entry(name.to_string()).or_default()
    }

    /// The wall clock at `t`.
    pub(super) fn unix_ms(&self, t: Instant) -> UnixMillis {
        report::wall_clock(self.clock, t)
    }

    /// The instant at which the wall clock read `ms` (the anchor if that is before
    /// the monotonic clock's start).
    pub(super) fn instant_of(&self, ms: UnixMillis) -> Instant {
        let (at, now_ms) = self.clock;
        let ago = std::time::Duration::from_millis(now_ms.saturating_sub(ms));
        at.checked_sub(ago).unwrap_or(at)
    }

    /// Emits a record (nothing without a journal).
    pub(super) fn record(&mut self, record: Record) {
        if let Some(j) = self.journal.as_mut() {
            j.push(record);
        }
    }

    /// The job's report now depends on every record emitted so far.
    pub(super) fn note_content(&mut self, jobs: &mut JobTable, id: JobId) {
        let Some(last) = self.journal.as_ref().map(|j| j.last) else {
            return;
        };
        if let Some(job) = jobs.get_mut(id) {
            job.session.content_seq = last;
        }
    }

    /// A job progressed (or completed): its row is written at the next checkpoint.
    pub(super) fn mark_dirty(&mut self, now: Instant, id: JobId) {
        if let Some(j) = self.journal.as_mut() {
            j.dirty.insert(id);
            let interval = j.checkpoint_interval;
            j.next_checkpoint.get_or_insert(now + interval);
        }
    }

    /// Records the job's row as it stands now.
    pub(super) fn record_job(&mut self, t: &Tables, id: JobId) {
        if self.journal.is_some() {
            if let Some(row) = durable::row(t, self.clock, id) {
                self.record(Record::Job(id, row));
            }
            let bits = durable::share_bits(t, id);
            let shares = durable::lease_shares(t, id);
            if let Some(j) = self.journal.as_mut() {
                j.dirty.remove(&id);
                // Written with the row when there are any, or to clear the last.
                let write = if bits.is_empty() && shares.is_empty() {
                    j.with_share_bits.remove(&id)
                } else {
                    j.with_share_bits.insert(id);
                    true
                };
                if write {
                    self.record(Record::ShareBits(id, bits));
                    self.record(Record::LeaseShares(id, shares));
                }
            }
        }
    }

    /// At the checkpoint's time, writes the rows of the jobs that progressed and the
    /// next lease id.
    pub(super) fn checkpoint(&mut self, t: &Tables, now: Instant) {
        let due = self
            .journal
            .as_ref()
            .and_then(|j| j.next_checkpoint)
            .is_some_and(|at| now >= at);
        if !due {
            return;
        }
        let dirty: Vec<JobId> = self
            .journal
            .as_mut()
            .map(|j| {
                j.next_checkpoint = None;
                std::mem::take(&mut j.dirty).into_iter().collect()
            })
            .unwrap_or_default();
        for id in dirty {
            self.record_job(t, id);
        }
        self.record_next_lease(t.leases.next_id());
    }

    /// Records `next` as the next lease id if it is past the last one recorded.
    pub(super) fn record_next_lease(&mut self, next: u64) {
        if self.journal.as_ref().is_some_and(|j| j.next_lease < next) {
            self.record(Record::NextLease(next));
            if let Some(j) = self.journal.as_mut() {
                j.next_lease = next;
            }
        }
    }
}
