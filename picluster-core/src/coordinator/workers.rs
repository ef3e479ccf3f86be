//! The worker table: connected workers, their leases in the order they run them,
//! their measured rates, and the indexes the scheduler and the timers use (lease
//! deadlines in time order, the workers that may want work, names). Every change to a
//! worker goes through a method here that keeps those indexes right, and bumps
//! [`WorkerTable::generation`] when the set of workers that can be given work changes.

use crate::ids::{ConnId, JobId, LeaseId, WorkerId};
use crate::wire::WorkerHello;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// A connected worker.
pub(super) struct Worker {
    pub(super) id: WorkerId,
    pub(super) name: String,
    hello: Option<WorkerHello>,
    /// Its leases, in the order it got (and runs) them.
    leases: BTreeSet<LeaseId>,
    /// Lost its leases for silence: gets no new work until it is heard from again.
    suspect: bool,
    pub(super) connected: Instant,
    /// When the worker was last heard from, or given work while it held none: its
    /// leases expire `lease_timeout` after this.
    last_heard: Instant,
    /// When its work last moved (a lease advanced or ended, or it was given work
    /// while it held none): unless it holds a custom job's lease (whose blocks may
    /// each take longer), its leases also expire `lease_timeout` after this, so that
    /// talking without progressing does not hold work.
    moved_at: Instant,
    /// Its leases of custom jobs, exempt from the rule above.
    exempt: BTreeSet<LeaseId>,
    /// This worker's entry in `WorkerTable::deadlines`, if it holds leases.
    deadline: Option<Instant>,
    /// Indices it committed this session.
    pub(super) hashes: u64,
    /// The last measured rate, of whatever job: shown in the status.
    pub(super) rate_hps: f64,
    /// Measured rate per job: kernels differ in cost, so a rate holds for one job.
    pub(super) rates: BTreeMap<JobId, Rate>,
    /// It asked for a renewed certificate on this connection.
    renewed: bool,
    /// Jobs it stalled on (`leasing::check_pace`): it gets none of their work again
    /// this session.
    pub(super) stalled_on: BTreeSet<JobId>,
    /// Its shares, if it speaks them.
    pub(super) shares: Option<super::shares::ShareAccount>,
    /// What it last said of its board's heat.
    pub(super) health: Option<crate::wire::Health>,
}

/// A worker's rate on one job, an exponentially weighted average of samples of at
/// least 0.2 s.
pub(super) struct Rate {
    /// Indices per second; zero until the first sample (and after a sample of a
    /// worker that did not move: rates come from reported work, not claims).
    hps: f64,
    /// A sample was taken.
    sampled: bool,
    /// (time, indices of the job committed by the worker) when the sample began.
    sample: (Instant, u64),
    /// Indices of the job committed by the worker.
    done: u64,
    /// The highest `hps` so far: what the worker has shown it can do.
    peak: f64,
}

impl Worker {
    /// What the worker said in its hello; `None` until it said it.
    pub(super) fn hello(&self) -> Option<&WorkerHello> {
        self.hello.as_ref()
    }

    /// Its leases, in the order it runs them.
    pub(super) fn leases(&self) -> &BTreeSet<LeaseId> {
        &self.leases
    }

    /// When it was last heard from (or given work while idle).
    pub(super) fn last_heard(&self) -> Instant {
        self.last_heard
    }

    /// Whether it lost its leases for silence and was not heard from since.
    pub(super) fn is_suspect(&self) -> bool {
        self.suspect
    }

    /// Starts a new rate sample of `job` at `now` (the worker starts on it after
    /// being idle or on another job).
    pub(super) fn restart_sample(&mut self, job: JobId, now: Instant) {
        if let Some(rate) = self.rates.get_mut(&job) {
            rate.sample = (now, rate.done);
        }
    }

    /// The measured rate on `job`, if any (zero for a worker that reported no work
    /// over its last sample).
    pub(super) fn measured(&self, job: JobId) -> Option<f64> {
        self.rates.get(&job).filter(|r| r.sampled).map(|r| r.hps)
    }

    /// Its best measured rate on `job` (0 before any).
    pub(super) fn peak(&self, job: JobId) -> f64 {
        self.rates.get(&job).map_or(0.0, |r| r.peak)
    }

    /// The worker committed `delta` more indices of `job` at `now`; its first report
    /// on a job began sampling at `since` (when it got the lease).
    pub(super) fn record_progress(&mut self, job: JobId, delta: u64, since: Instant, now: Instant) {
        self.hashes += delta;
        let rate = self.rates.entry(job).or_insert(Rate {
            hps: 0.0,
            sampled: false,
            sample: (since, 0),
            done: 0,
            peak: 0.0,
        });
        rate.done += delta;
        let (t0, d0) = rate.sample;
        let dt = now.saturating_duration_since(t0).as_secs_f64();
        if dt >= 0.2 {
            let sample = (rate.done - d0) as f64 / dt;
            rate.hps = if rate.hps == 0.0 {
                sample
            } else {
                0.7 * rate.hps + 0.3 * sample
            };
            rate.sample = (now, rate.done);
            rate.sampled = true;
            rate.peak = rate.peak.max(rate.hps);
            self.rate_hps = rate.hps;
        }
    }
}

/// A worker's claimed benchmark counts for at most this many times the highest of the
/// others' until its rate is measured: a claim sizes its first chunk, bounded by
/// evidence from its peers.
pub(super) const PLAUSIBLE_BENCH_FACTOR: f64 = 8.0;

/// Every connected worker, by connection.
pub(super) struct WorkerTable {
    workers: BTreeMap<ConnId, Worker>,
    by_name: BTreeMap<String, ConnId>,
    /// Names of drained workers (the mark outlives their connections).
    drained: BTreeSet<String>,
    /// Why drained workers were drained, where a reason was given.
    drain_reasons: BTreeMap<String, String>,
    /// Names of quarantined workers: refused until an admin releases them.
    quarantined: BTreeSet<String>,
    /// The share accounts of workers that are not connected, by name: a worker that
    /// reconnects carries on its window and target (one per enrolled name).
    parked: BTreeMap<String, super::shares::ShareAccount>,
    /// When each worker holding leases expires, ordered: timeouts without a scan.
    deadlines: BTreeSet<(Instant, ConnId)>,
    /// Workers that may have room for another lease: the scheduler visits only these
    /// (a worker enters when it frees a slot or becomes ready, and leaves when full).
    wanting: BTreeSet<ConnId>,
    /// Greeted workers by claimed benchmark: the ceiling on what one may claim.
    benches: BTreeSet<(u64, ConnId)>,
    lease_timeout: Duration,
    next_worker: u64,
    generation: u64,
}

impl WorkerTable {
    pub(super) fn new(lease_timeout: Duration) -> WorkerTable {
        WorkerTable {
            workers: BTreeMap::new(),
            by_name: BTreeMap::new(),
            drained: BTreeSet::new(),
            drain_reasons: BTreeMap::new(),
            quarantined: BTreeSet::new(),
            parked: BTreeMap::new(),
            deadlines: BTreeSet::new(),
            wanting: BTreeSet::new(),
            benches: BTreeSet::new(),
            lease_timeout,
            next_worker: 1,
            generation: 0,
        }
    }

    /// Changes whenever the set of workers that can be given work changes: cached
    /// sums over them hold while it does not.
    /// The most `conn`'s worker may be believed to hash before it is measured:
    /// [`PLAUSIBLE_BENCH_FACTOR`] times the highest benchmark of the other workers;
    /// `None` when it is the only one.
    pub(super) fn bench_ceiling(&self, conn: ConnId) -> Option<f64> {
        let other = self.benches.iter().rev().find(|(_, c)| *c != conn)?;
        Some(other.0 as f64 * PLAUSIBLE_BENCH_FACTOR)
    }

    pub(super) fn generation(&self) -> u64 {
        self.generation
    }

    /// A new connection of worker `name`, not yet greeted.
    pub(super) fn insert(&mut self, conn: ConnId, name: String, now: Instant) {
        let id = WorkerId(self.next_worker);
        self.next_worker += 1;
        self.by_name.insert(name.clone(), conn);
        self.workers.insert(
            conn,
            Worker {
                id,
                name,
                hello: None,
                leases: BTreeSet::new(),
                suspect: false,
                connected: now,
                last_heard: now,
                moved_at: now,
                exempt: BTreeSet::new(),
                deadline: None,
                hashes: 0,
                rate_hps: 0.0,
                rates: BTreeMap::new(),
                stalled_on: BTreeSet::new(),
                renewed: false,
                shares: None,
                health: None,
            },
        );
    }

    /// Removes a worker; its leases are the caller's to requeue.
    pub(super) fn remove(&mut self, conn: ConnId) -> Option<Worker> {
        let worker = self.workers.remove(&conn)?;
        if self.by_name.get(&worker.name) == Some(&conn) {
            self.by_name.remove(&worker.name);
        }
        if let Some(deadline) = worker.deadline {
            self.deadlines.remove(&(deadline, conn));
        }
        self.wanting.remove(&conn);
        if let Some(hello) = &worker.hello {
            self.benches.remove(&(hello.bench_hps, conn));
        }
        self.generation += 1;
        Some(worker)
    }

    /// Notes a renewal by `conn`'s worker; `false` if it had one on this connection.
    pub(super) fn note_renewal(&mut self, conn: ConnId) -> bool {
        self.workers
            .get_mut(&conn)
            .is_some_and(|w| !std::mem::replace(&mut w.renewed, true))
    }

    pub(super) fn get(&self, conn: ConnId) -> Option<&Worker> {
        self.workers.get(&conn)
    }

    /// The connection of the worker named `name`, greeted or not.
    pub(super) fn named(&self, name: &str) -> Option<ConnId> {
        self.by_name.get(name).copied()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (ConnId, &Worker)> {
        self.workers.iter().map(|(c, w)| (*c, w))
    }

    /// The worker said hello: it can be given work.
    pub(super) fn greet(&mut self, conn: ConnId, hello: WorkerHello) {
        if let Some(w) = self.workers.get_mut(&conn) {
            self.benches.insert((hello.bench_hps, conn));
            w.hello = Some(hello);
            self.wanting.insert(conn);
            self.generation += 1;
        }
    }

    /// The worker was heard from at `now`. Returns whether it had been suspect (it
    /// may be given work again).
    pub(super) fn heard_from(&mut self, conn: ConnId, now: Instant) -> bool {
        let Some(w) = self.workers.get_mut(&conn) else {
            return false;
        };
        w.last_heard = now;
        let revived = std::mem::take(&mut w.suspect);
        if revived {
            self.wanting.insert(conn);
            self.generation += 1;
        }
        self.refresh_deadline(conn);
        revived
    }

    /// Whether the worker may be given work.
    pub(super) fn is_ready(&self, conn: ConnId) -> bool {
        self.workers
            .get(&conn)
            .is_some_and(|w| w.hello.is_some() && !w.suspect && !self.drained.contains(&w.name))
    }

    /// Worker `conn` runs `change.threads` threads now: its announced threads and
    /// benchmark follow, and its measured rates are scaled by the same factor (and
    /// sampled afresh) so that the next chunks fit at once. Returns its name and
    /// its threads before; `None` if nothing changed or it has not said hello.
    pub(super) fn rescale(
        &mut self,
        conn: ConnId,
        change: crate::wire::RateChange,
        now: Instant,
    ) -> Option<(String, u32)> {
        let w = self.workers.get_mut(&conn)?;
        let hello = w.hello.as_mut()?;
        if hello.threads == change.threads.max(1) {
            return None;
        }
        let before = hello.threads;
        let factor = f64::from(change.threads.max(1)) / f64::from(before.max(1));
        hello.threads = change.threads.max(1);
        hello.bench_hps = change.bench_hps;
        w.rate_hps *= factor;
        for rate in w.rates.values_mut() {
            rate.hps *= factor;
            rate.peak *= factor;
            rate.sample = (now, rate.done);
        }
        // The benchmark ceiling was computed from the old claim.
        self.benches.retain(|(_, c)| *c != conn);
        self.benches.insert((change.bench_hps, conn));
        Some((w.name.clone(), before))
    }

    /// Quarantines `name` (it claimed a false solution).
    pub(super) fn quarantine(&mut self, name: &str) {
        self.quarantined.insert(name.to_string());
    }

    /// Keeps a departing worker's share account for its next connection.
    pub(super) fn park_account(&mut self, name: String, account: super::shares::ShareAccount) {
        self.parked.insert(name, account);
    }

    /// The share account `name` had on its last connection, if any.
    pub(super) fn unpark_account(&mut self, name: &str) -> Option<super::shares::ShareAccount> {
        self.parked.remove(name)
    }

    /// Releases `name` from quarantine; `false` if it was not quarantined.
    pub(super) fn release(&mut self, name: &str) -> bool {
        self.quarantined.remove(name)
    }

    pub(super) fn is_quarantined(&self, name: &str) -> bool {
        self.quarantined.contains(name)
    }

    /// Quarantined names, in order.
    pub(super) fn quarantined(&self) -> impl Iterator<Item = &str> {
        self.quarantined.iter().map(String::as_str)
    }

    /// A drained name recovered from the store.
    pub(super) fn restore_drained(&mut self, name: String) {
        self.drained.insert(name);
    }

    pub(super) fn is_drained(&self, name: &str) -> bool {
        self.drained.contains(name)
    }

    /// Marks `name` drained (or not), connected or not, with an optional reason.
    /// Returns the worker's connection if it is connected and greeted.
    pub(super) fn set_drained(
        &mut self,
        name: &str,
        drained: bool,
        reason: Option<String>,
    ) -> Option<ConnId> {
        if drained {
            self.drained.insert(name.to_string());
            match reason {
                Some(reason) => self.drain_reasons.insert(name.to_string(), reason),
                None => self.drain_reasons.remove(name),
            };
        } else {
            self.drained.remove(name);
            self.drain_reasons.remove(name);
        }
        self.generation += 1;
        let conn = self
            .named(name)
            .filter(|c| self.workers[c].hello.is_some())?;
        if !drained {
            self.wanting.insert(conn);
        }
        Some(conn)
    }

    /// A drain reason recovered from the store.
    pub(super) fn restore_drain_reason(&mut self, name: String, reason: String) {
        if self.drained.contains(&name) {
            self.drain_reasons.insert(name, reason);
        }
    }

    /// Why `name` was drained, if it is and a reason was given.
    pub(super) fn drain_reason(&self, name: &str) -> Option<&str> {
        self.drain_reasons.get(name).map(String::as_str)
    }

    /// Drained names, in order.
    pub(super) fn drained(&self) -> impl Iterator<Item = &str> {
        self.drained.iter().map(String::as_str)
    }

    /// Gives the worker `lease` (`exempt` for a custom job's), after the ones it
    /// holds. Returns whether it was idle (then it owes no reports yet: its lease
    /// clock starts now).
    pub(super) fn add_lease(
        &mut self,
        conn: ConnId,
        lease: LeaseId,
        now: Instant,
        exempt: bool,
    ) -> bool {
        let Some(w) = self.workers.get_mut(&conn) else {
            return false;
        };
        let idle = w.leases.is_empty();
        if idle {
            w.last_heard = now;
            w.moved_at = now;
        }
        w.leases.insert(lease);
        if exempt {
            w.exempt.insert(lease);
        }
        self.refresh_deadline(conn);
        idle
    }

    /// Takes `lease` from the worker, which then has room for another.
    pub(super) fn remove_lease(&mut self, conn: ConnId, lease: LeaseId) {
        if let Some(w) = self.workers.get_mut(&conn) {
            w.leases.remove(&lease);
            w.exempt.remove(&lease);
            self.wanting.insert(conn);
            self.refresh_deadline(conn);
        }
    }

    /// The worker's work moved at `now`: a lease advanced or ended.
    pub(super) fn moved(&mut self, conn: ConnId, now: Instant) {
        if let Some(w) = self.workers.get_mut(&conn) {
            w.moved_at = now;
            self.refresh_deadline(conn);
        }
    }

    /// The worker fell silent: it is suspect until heard from, and every lease it
    /// held is returned for the caller to requeue.
    pub(super) fn expire(&mut self, conn: ConnId) -> Vec<LeaseId> {
        let Some(w) = self.workers.get_mut(&conn) else {
            return Vec::new();
        };
        w.suspect = true;
        w.exempt.clear();
        let leases = std::mem::take(&mut w.leases).into_iter().collect();
        self.generation += 1;
        self.refresh_deadline(conn);
        leases
    }

    /// Workers whose lease deadline has passed at `now`.
    pub(super) fn silent(&self, now: Instant) -> Vec<ConnId> {
        self.deadlines
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, conn)| *conn)
            .collect()
    }

    /// The earliest lease deadline.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Workers that may want work, in order.
    pub(super) fn wanting(&self) -> Vec<ConnId> {
        self.wanting.iter().copied().collect()
    }

    /// The worker wants nothing until it frees a slot or becomes ready again.
    pub(super) fn unwant(&mut self, conn: ConnId) {
        self.wanting.remove(&conn);
    }

    /// The worker's measured rates, for updates.
    pub(super) fn worker_mut(&mut self, conn: ConnId) -> Option<&mut Worker> {
        self.workers.get_mut(&conn)
    }

    /// Forgets every worker's rate on an ended job.
    pub(super) fn forget_job(&mut self, job: JobId) {
        for w in self.workers.values_mut() {
            w.rates.remove(&job);
            w.stalled_on.remove(&job);
        }
    }

    /// Re-indexes a worker's lease deadline after its leases or `last_heard` changed.
    fn refresh_deadline(&mut self, conn: ConnId) {
        let Some(w) = self.workers.get_mut(&conn) else {
            return;
        };
        let since = if w.exempt.is_empty() {
            w.last_heard.min(w.moved_at)
        } else {
            w.last_heard
        };
        let wanted = (!w.leases.is_empty()).then(|| since + self.lease_timeout);
        if wanted != w.deadline {
            if let Some(old) = w.deadline {
                self.deadlines.remove(&(old, conn));
            }
            if let Some(new) = wanted {
                self.deadlines.insert((new, conn));
            }
            w.deadline = wanted;
        }
    }
}
