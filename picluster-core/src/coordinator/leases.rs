//! The lease table: which worker searches which range of which job, how far it has
//! reported, and any trim (a steal) waiting for the owner's answer. Lease ids are
//! never reused, so a report naming a lease that is gone is recognisably stale; after
//! a restart they continue above every id the previous run can have given (see
//! [`LEASE_ID_GAP`]), and an adopted lease keeps the id its worker knows.

use crate::ids::{ConnId, JobId, LeaseId};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::time::Instant;

/// One range of one job, held by one worker.
pub(super) struct Lease {
    pub(super) job: JobId,
    pub(super) worker: ConnId,
    /// Where it began (as given, or as adopted).
    pub(super) start: u64,
    /// Everything below this is searched (and, unless it is an audit, committed).
    pub(super) position: u64,
    pub(super) end: u64,
    /// When `position` was reported, or the worker started on the lease (as far as
    /// the coordinator can tell: when it got it while idle, or finished the one before).
    pub(super) reported_at: Instant,
    /// A trim sent and not yet acknowledged: the requested end and the worker that
    /// gets the rest.
    pub(super) trim: Option<(u64, ConnId)>,
    /// The share target its worker reports shares at (`None`: no shares).
    pub(super) share_bits: Option<u8>,
    /// The shares verified in it: each counts once.
    pub(super) shares: BTreeSet<u64>,
    /// `shares` holds every share its worker reported in it (not so for a lease
    /// adopted after a restart: the shares of the previous run are not kept).
    pub(super) whole_shares: bool,
    /// When its worker last answered a trim keeping everything: it is not asked
    /// again for a progress interval (a worker that gives nothing up would otherwise
    /// be asked thousands of times a second).
    pub(super) kept_at: Option<Instant>,
    /// Since when, and from which position, its pace is being measured (from its
    /// first report on): a lease that moves far slower than its worker has shown it
    /// can is taken back (`leasing::check_pace`).
    pub(super) pace: Option<(Instant, u64)>,
    /// An audit: a range another worker committed, searched again to compare what
    /// each found (`audit`). It commits nothing.
    pub(super) audit: Option<Box<AuditRun>>,
}

/// An audit lease's subject and what its searcher has found so far.
pub(super) struct AuditRun {
    /// The range searched again, as its subject committed it.
    pub(super) sample: super::jobs::AuditSample,
    /// Solutions the auditor found in it (verified), at most
    /// [`MAX_SOLUTIONS`](crate::wire::MAX_SOLUTIONS).
    pub(super) found: BTreeSet<u64>,
    /// More solutions than kept: they cannot be compared.
    pub(super) overflow: bool,
}

/// How far past the last recorded lease id a restarted coordinator starts: the
/// previous run records its next id at each checkpoint, and gives far fewer leases
/// than this between two checkpoints.
pub(super) const LEASE_ID_GAP: u64 = 1 << 32;

/// Every live lease, by id.
pub(super) struct LeaseTable {
    leases: BTreeMap<LeaseId, Lease>,
    next_lease: u64,
}

impl LeaseTable {
    pub(super) fn new() -> LeaseTable {
        LeaseTable {
            leases: BTreeMap::new(),
            next_lease: 1,
        }
    }

    /// A new lease of `range` of `job` for `worker`, its clock starting at `now`.
    pub(super) fn create(
        &mut self,
        now: Instant,
        job: JobId,
        worker: ConnId,
        range: Range<u64>,
    ) -> LeaseId {
        // An adopted lease may hold an id this run would give next (one given by a
        // previous run after its last recorded id): skip it.
        while self.leases.contains_key(&LeaseId(self.next_lease)) {
            self.next_lease += 1;
        }
        let id = LeaseId(self.next_lease);
        self.next_lease += 1;
        self.insert(now, id, job, worker, range);
        id
    }

    /// Puts back a lease under the id its worker knows (re-adoption); the id must not
    /// be live and must be below [`LeaseTable::next_id`].
    pub(super) fn insert(
        &mut self,
        now: Instant,
        id: LeaseId,
        job: JobId,
        worker: ConnId,
        range: Range<u64>,
    ) {
        debug_assert!(id.0 < self.next_lease && !self.leases.contains_key(&id));
        self.leases.insert(
            id,
            Lease {
                job,
                worker,
                start: range.start,
                position: range.start,
                end: range.end,
                reported_at: now,
                trim: None,
                share_bits: None,
                shares: BTreeSet::new(),
                whole_shares: true,
                kept_at: None,
                pace: None,
                audit: None,
            },
        );
    }

    /// The id the next new lease gets.
    pub(super) fn next_id(&self) -> u64 {
        self.next_lease
    }

    /// New leases get ids from `next` on (a restart: see [`LEASE_ID_GAP`]).
    pub(super) fn reserve(&mut self, next: u64) {
        self.next_lease = self.next_lease.max(next);
    }

    pub(super) fn get(&self, id: LeaseId) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub(super) fn get_mut(&mut self, id: LeaseId) -> Option<&mut Lease> {
        self.leases.get_mut(&id)
    }

    pub(super) fn remove(&mut self, id: LeaseId) -> Option<Lease> {
        self.leases.remove(&id)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (LeaseId, &Lease)> {
        self.leases.iter().map(|(id, l)| (*id, l))
    }

    pub(super) fn len(&self) -> usize {
        self.leases.len()
    }
}
