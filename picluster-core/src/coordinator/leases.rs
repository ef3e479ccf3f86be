//! The lease table: which worker searches which range of which job, how far it has
//! reported, and any trim (a steal) waiting for the owner's answer. Lease ids are
//! never reused, so a report naming a lease that is gone is recognisably stale.

use crate::ids::{ConnId, JobId, LeaseId};
use std::collections::BTreeMap;
use std::ops::Range;
use std::time::Instant;

/// One range of one job, held by one worker.
pub(super) struct Lease {
    pub(super) job: JobId,
    pub(super) worker: ConnId,
    /// Everything below this is searched and committed.
    pub(super) position: u64,
    pub(super) end: u64,
    /// When `position` was reported, or the worker started on the lease (as far as
    /// the coordinator can tell: when it got it while idle, or finished the one before).
    pub(super) reported_at: Instant,
    /// A trim sent and not yet acknowledged: the requested end and the worker that
    /// gets the rest.
    pub(super) trim: Option<(u64, ConnId)>,
}

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
        let id = LeaseId(self.next_lease);
        self.next_lease += 1;
        self.leases.insert(
            id,
            Lease {
                job,
                worker,
                position: range.start,
                end: range.end,
                reported_at: now,
                trim: None,
            },
        );
        id
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
