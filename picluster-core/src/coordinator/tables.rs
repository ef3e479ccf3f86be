//! The coordinator's state as a set of tables, each owning its data and invariants:
//! jobs, leases, workers, connections, credentials, and the schedule's rate cache,
//! with the configuration they are kept by. Operations take `&mut Tables` and borrow
//! the fields they touch disjointly (tako's `Core::split_mut`); decisions read a
//! [`View`] of it. Keeping two tables consistent with each other (a worker's leases
//! and the lease table, a worker connection and the worker table) is the job of the
//! operations in `leasing` and `peers`, not of the tables.

use super::config::CoordinatorConfig;
use super::conns::ConnTable;
use super::credentials::Credentials;
use super::jobs::JobTable;
use super::leases::LeaseTable;
use super::schedule::{RateCache, View};
use super::workers::WorkerTable;

/// Every table of the coordinator.
pub(super) struct Tables {
    /// The tunables (read only).
    pub(super) config: CoordinatorConfig,
    pub(super) jobs: JobTable,
    pub(super) leases: LeaseTable,
    pub(super) workers: WorkerTable,
    /// Every connection's state: joining, clashing, worker or client.
    pub(super) conns: ConnTable,
    pub(super) credentials: Credentials,
    pub(super) rates: RateCache,
}

impl Tables {
    pub(super) fn new(config: CoordinatorConfig) -> Tables {
        Tables {
            jobs: JobTable::new(),
            leases: LeaseTable::new(),
            workers: WorkerTable::new(config.lease_timeout),
            conns: ConnTable::default(),
            credentials: Credentials::default(),
            rates: RateCache::default(),
            config,
        }
    }

    /// What a scheduling decision reads.
    pub(super) fn view(&self) -> View<'_> {
        View {
            config: &self.config,
            jobs: &self.jobs,
            leases: &self.leases,
            workers: &self.workers,
        }
    }
}
