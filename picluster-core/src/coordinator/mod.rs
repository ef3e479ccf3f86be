//! The coordinator's decisions as a synchronous state machine: connected peers, the
//! job table, leases, chunk sizing (calibration, speed-proportional shares, adaptive
//! prefetch), which job gets the next chunk (priority, then fairness between clients),
//! work stealing, drain, verification of claimed solutions, lease expiry, and how long
//! finished jobs are kept. It never reads a clock or touches a socket: time comes in as
//! `now`, effects go out as [`Transmit`] values. The async driver (`crate::service`, in
//! the IO half) owns one `Coordinator` and does the IO; tests and the simulation
//! (`picluster_suite::sim`) drive it directly.
//!
//! Driving order: after any `handle_*` call, drain [`Coordinator::poll_transmit`] (with
//! the current time) until it returns `None`, then sleep until
//! [`Coordinator::poll_timeout`] (or the next input) and call
//! [`Coordinator::handle_timeout`] when it passes. Scheduling is requested by the
//! handlers and runs once, at the first `poll_transmit` after a batch. When a peer's
//! outgoing queue is full, the driver asks [`Transmit::overflow`] what to do: skip the
//! message, or cut the peer off through [`Coordinator::handle_backlogged`].
//!
//! Every index of a job is committed exactly once: leases cover disjoint ranges, a
//! lease advances only through its worker's reports, and whatever a lost, expired or
//! released lease had not reached returns to the job's queue. A steal takes effect only
//! when the owner has said where it stops (`Trimmed`). Reports naming a lease that no
//! longer exists are stale and ignored (counted in [`CoordinatorStats`]).
//!
//! A worker's claims are bounded by what it does: its leases expire when it falls
//! silent or when its work stops moving for a lease timeout (custom jobs excepted),
//! a trim it does not answer in time, or answers keeping more than its threads can
//! have begun, takes the lease back, and its rate on a job is what it reports doing
//! once it has reported (its benchmark only sizes its first share).
//!
//! # Layout
//! The state is a set of tables (`Tables`) and an effects sink (`Effects`); every
//! operation is a function over the tables it touches and the sink. Topic files form
//! a stack, each importing only those below it (CI checks that there is no circle):
//! - this file: [`Coordinator`]: `handle_*` and `poll_*`, routing each input on the
//!   connection's state, the timers.
//! - `dispatch`: carrying out the schedule (leases and audits handed out, leases
//!   held back after a restart released to an idle worker, steals).
//! - `worker_msgs`, `client_msgs`: what a worker, a client says (a client's request
//!   checked against its role first).
//! - `recover`: the tables rebuilt from a store.
//! - `enroll`: joins, renewals, revocation, join tokens.
//! - `audit`: a sample of finished ranges searched again by another worker, and
//!   the verdict when the two disagree.
//! - `verify`: solutions, shares, vardiff, the quarantine of a false claim.
//! - `peers`: connections arriving and leaving.
//! - `lifecycle`: submission, watchers and progress pushes, the end of a job,
//!   retention.
//! - `leasing`: lease primitives (assign, advance, finish, requeue) that return facts.
//! - `effects`: the sink (outbox, schedule flag, counters, timers) and the
//!   durability gate; `durable`: the journal's state and a job's row; `transmit`:
//!   the effects' types.
//! - `tables` and the tables themselves: `jobs`, `leases`, `workers`, `conns`,
//!   `credentials`; `shares` (a worker's share account).
//! - `schedule`, `steal`: decisions as pure functions over a view of the tables.
//! - `report`, `metrics`: what clients and the metrics endpoint are shown.
//! - `journal`: the records and the snapshot a store folds them into.
//! - `violation`: [`ProtocolViolation`] and [`CloseReason`]; `config`:
//!   [`CoordinatorConfig`].

mod audit;
mod client_msgs;
mod config;
mod conns;
mod credentials;
mod dispatch;
mod durable;
mod effects;
mod enroll;
mod jobs;
mod journal;
mod leases;
mod leasing;
mod lifecycle;
mod metrics;
mod peers;
mod recover;
mod report;
mod schedule;
mod shares;
mod steal;
mod tables;
mod transmit;
mod verify;
mod violation;
mod worker_msgs;
mod workers;

pub use config::CoordinatorConfig;
pub use credentials::{MAX_TOKENS, MAX_TOKEN_TTL_S, MAX_TOKEN_USES};
pub use journal::{
    Record, Snapshot, StoredJob, StoredLease, StoredToken, UnixMillis, JOURNAL_FORMAT,
};
pub use metrics::{CoordinatorStats, KindProgress, MetricsSnapshot, WorkerMetrics, WorkerTotals};
pub use recover::RecoverError;
pub use shares::{
    poisson_cdf, FALSE_ALARM, INITIAL_SHARE_BITS, MAX_SHARE_BITS, MIN_SHARE_BITS, RETARGET_AFTER,
    RETARGET_SHARES, SHARE_SECONDS, WINDOW_SHARES,
};
pub use transmit::{Issue, Overflow, Transmit};
pub use violation::{CloseReason, ProtocolViolation};

use crate::identity::PeerIdentity;
use crate::ids::{ConnId, JobId};
use crate::wire::{
    ClientToCoord, ClusterStatus, CsrError, FrameError, JobDetail, JobReport, JobSummary,
    JoinRequest, WorkerToCoord,
};
use conns::ConnKind;
use effects::Effects;
use report::Reporter;
use std::time::Instant;
use tables::Tables;

/// A decoded message from a peer.
#[derive(Clone, Debug)]
pub enum Inbound {
    /// From a worker connection.
    Worker(WorkerToCoord),
    /// From a client connection.
    Client(ClientToCoord),
    /// From a joining connection (no certificate): its enrollment request, and what
    /// the driver found wrong with its certificate request (its signature is checked
    /// there, before the request may spend a token).
    Join(JoinRequest, Result<(), CsrError>),
}

/// The coordinator state machine. See the module docs for the driving order.
pub struct Coordinator {
    t: Tables,
    fx: Effects,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("workers", &self.t.workers.iter().count())
            .field("jobs", &self.t.jobs.all().count())
            .field("leases", &self.t.leases.len())
            .field("stats", &self.fx.stats)
            .finish()
    }
}

impl Coordinator {
    /// A coordinator with no peers and no jobs, started at `now` (without a store,
    /// the wall clock on reports counts from there until
    /// [`Coordinator::handle_wall_clock`] sets it).
    pub fn new(config: CoordinatorConfig, now: Instant) -> Self {
        Coordinator {
            t: Tables::new(config),
            fx: Effects::new((now, 0)),
        }
    }

    /// A coordinator with a journal, rebuilt from what a store held (an empty
    /// [`Snapshot`] for a new store): live jobs resume from their committed ranges,
    /// finished ones keep their reports, job ids continue. The leases the previous run
    /// had given are held for their workers to claim ([`WorkerToCoord::Holding`])
    /// until a lease timeout from `now`, then return to the queue. `now` and
    /// `unix_ms` anchor the wall clock on records ([`Coordinator::handle_wall_clock`]
    /// moves it).
    pub fn recover(
        config: CoordinatorConfig,
        snapshot: Snapshot,
        now: Instant,
        unix_ms: UnixMillis,
    ) -> Result<Self, RecoverError> {
        let mut core = Coordinator::new(config, now);
        recover::recover(&mut core.t, &mut core.fx, snapshot, now, unix_ms)?;
        Ok(core)
    }

    /// Counters of stale reports, expiries and violations.
    pub fn stats(&self) -> CoordinatorStats {
        self.fx.stats
    }

    /// The configuration in force.
    pub fn config(&self) -> &CoordinatorConfig {
        &self.t.config
    }

    // -----------------------------------------------------------------------------
    // Inputs
    // -----------------------------------------------------------------------------

    /// A peer completed the TLS handshake; `identity` comes from its certificate.
    /// A worker connecting under a name that is already connected waits for its
    /// hello, which decides: if the connected one has gone silent (its leases expired,
    /// or it holds some and has not reported for two progress intervals) it is a
    /// ghost and is replaced, its leases returning to the queue; otherwise the newer
    /// connection is refused ([`CloseReason::NameInUse`]) and the working one kept, so
    /// a copied credential cannot evict a live worker. A peer presenting the
    /// coordinator's own certificate is closed.
    pub fn handle_connected(&mut self, now: Instant, conn: ConnId, identity: PeerIdentity) {
        peers::connected(&mut self.t, &mut self.fx, now, conn, identity);
    }

    /// A connection ended (closed by either side, or lost). Its leases return to the
    /// queue from the last reported position.
    pub fn handle_disconnected(&mut self, _now: Instant, conn: ConnId) {
        peers::disconnected(&mut self.t, &mut self.fx, conn);
    }

    /// A peer without a certificate completed the TLS handshake: it may send one
    /// join request ([`Inbound::Join`]) and nothing else.
    pub fn handle_joining(&mut self, _now: Instant, conn: ConnId) {
        self.t
            .conns
            .insert(conn, conns::Conn::Joining { answered: false });
    }

    /// A message arrived from `conn`.
    pub fn handle_inbound(&mut self, now: Instant, conn: ConnId, message: Inbound) {
        let (t, fx) = (&mut self.t, &mut self.fx);
        let result = match (t.conns.kind(conn), message) {
            (Some(ConnKind::Joining { answered: false }), Inbound::Join(request, checked)) => {
                enroll::on_join(t, fx, now, conn, request, checked);
                Ok(())
            }
            (Some(ConnKind::Joining { .. }), _) => {
                t.conns.remove(conn);
                Self::refuse(fx, conn, ProtocolViolation::NotEnrolled);
                Ok(())
            }
            (Some(ConnKind::Clashing), Inbound::Worker(WorkerToCoord::Hello(hello))) => {
                if let Some(name) = t.conns.remove_clashing(conn) {
                    worker_msgs::resolve_clash(t, fx, now, conn, name, hello);
                }
                Ok(())
            }
            (Some(ConnKind::Clashing), _) => {
                t.conns.remove(conn);
                Self::refuse(fx, conn, ProtocolViolation::BeforeHello);
                Ok(())
            }
            (Some(ConnKind::Worker), Inbound::Worker(m)) => {
                worker_msgs::on_worker(t, fx, now, conn, m)
            }
            (Some(ConnKind::Client), Inbound::Client(m)) => {
                client_msgs::on_client(t, fx, now, conn, m)
            }
            (Some(ConnKind::Worker | ConnKind::Client), _) => Err(ProtocolViolation::WrongRole),
            (None, _) => Ok(()), // already closed; late frames are harmless
        };
        if let Err(violation) = result {
            verify::violation(&mut self.t, &mut self.fx, now, conn, violation);
        }
    }

    /// Closes a connection that has no session yet (joining or clashing) for a
    /// violation.
    fn refuse(fx: &mut Effects, conn: ConnId, violation: ProtocolViolation) {
        fx.stats.violations += 1;
        fx.push(Transmit::Close(conn, CloseReason::Violation(violation)));
    }

    /// `conn` sent bytes that are not a valid frame: it is closed.
    pub fn handle_bad_frame(&mut self, now: Instant, conn: ConnId, error: FrameError) {
        let (t, fx) = (&mut self.t, &mut self.fx);
        match t.conns.kind(conn) {
            Some(ConnKind::Joining { .. }) => {
                t.conns.remove(conn);
                Self::refuse(fx, conn, ProtocolViolation::NotEnrolled);
            }
            Some(ConnKind::Clashing) => {
                t.conns.remove(conn);
                Self::refuse(fx, conn, ProtocolViolation::BadFrame(error));
            }
            Some(ConnKind::Worker | ConnKind::Client) => {
                verify::violation(t, fx, now, conn, ProtocolViolation::BadFrame(error));
            }
            None => {}
        }
    }

    /// The driver could not queue a message that `conn` must get (its queue is full:
    /// it does not read what it is sent). It is cut off; a worker's leases return to
    /// the queue.
    pub fn handle_backlogged(&mut self, _now: Instant, conn: ConnId) {
        if self.t.conns.is_peer(conn) {
            self.fx.stats.backlogged += 1;
            peers::drop_peer(&mut self.t, &mut self.fx, conn, CloseReason::Backlogged);
        }
    }

    /// A message for `conn` could not be encoded: it is closed rather than left
    /// waiting for a reply that will never come.
    pub fn handle_unsendable(&mut self, _now: Instant, conn: ConnId, error: FrameError) {
        let reason = CloseReason::Unsendable(error);
        peers::drop_peer(&mut self.t, &mut self.fx, conn, reason);
    }

    /// Time passed: expire leases of silent workers and unanswered trims, push
    /// progress to watchers, drop finished jobs past their retention, checkpoint.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (t, fx) = (&mut self.t, &mut self.fx);
        if fx.timers.adopt_until.is_some_and(|at| now >= at) {
            fx.timers.adopt_until = None;
            worker_msgs::release_orphans(t, fx, None);
        }
        if fx.timers.adopt_grace.is_some_and(|at| now >= at) {
            // From now on a worker with nothing to do ends the wait (see schedule).
            fx.timers.adopt_grace = None;
            fx.schedule = true;
        }
        while let Some(&(due, lease)) = fx.timers.trims.first() {
            if due > now {
                break;
            }
            fx.timers.trims.pop_first();
            if t.leases.get(lease).is_some_and(|l| l.trim.is_some()) {
                leasing::take_back(t, fx, lease);
            }
        }
        if fx.timers.idle_sweep.is_some_and(|at| now >= at) {
            peers::close_idle_clients(t, fx, now);
        }
        leasing::expire_silent(t, fx, now);
        lifecycle::push_progress(t, fx, now);
        lifecycle::expire_finished(t, fx, now);
        fx.checkpoint(t, now);
    }

    /// The coordinator is stopping: every job that progressed since its last row gets
    /// one now, so a restart redoes nothing (drain [`Coordinator::poll_records`]).
    pub fn handle_shutdown(&mut self, now: Instant) {
        if let Some(j) = self.fx.journal.as_mut() {
            j.next_checkpoint = Some(now);
        }
        self.fx.checkpoint(&self.t, now);
    }

    /// The wall clock reads `unix_ms` at `now`: times on records follow it.
    pub fn handle_wall_clock(&mut self, now: Instant, unix_ms: UnixMillis) {
        self.fx.clock = (now, unix_ms);
    }

    /// Every record up to `seq` is durable: the client messages waiting for them go
    /// out (drain [`Coordinator::poll_transmit`]).
    pub fn handle_durable(&mut self, _now: Instant, seq: u64) {
        self.fx.durable(seq);
    }

    // -----------------------------------------------------------------------------
    // Outputs
    // -----------------------------------------------------------------------------

    /// Every record emitted since the last call, and the sequence number of the last
    /// one: write them in one transaction, then call
    /// [`Coordinator::handle_durable`] with that number. `None` when there is
    /// nothing to write (or no journal).
    pub fn poll_records(&mut self) -> Option<(u64, Vec<Record>)> {
        let journal = self.fx.journal.as_mut()?;
        if journal.records.is_empty() {
            return None;
        }
        Some((journal.last, std::mem::take(&mut journal.records)))
    }

    /// The next time [`Coordinator::handle_timeout`] has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let (t, fx) = (&self.t, &self.fx);
        [
            t.workers.next_deadline(),
            fx.timers.push,
            t.jobs.next_expiry(&t.config),
            fx.journal.as_ref().and_then(|j| j.next_checkpoint),
            fx.timers.adopt_until,
            fx.timers.adopt_grace,
            fx.timers.trims.first().map(|(at, _)| *at),
            fx.timers.idle_sweep,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next effect to carry out. Runs the scheduler first if any input asked for it.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        if self.fx.schedule {
            self.fx.schedule = false;
            self.schedule(now);
        }
        self.fx.pop()
    }

    // -----------------------------------------------------------------------------
    // Queries
    // -----------------------------------------------------------------------------

    fn reporter(&self, now: Instant) -> Reporter<'_> {
        Reporter::new(&self.t, now, self.fx.clock)
    }

    /// The jobs kept, by id: every live one, then the newest finished ones, up to
    /// [`MAX_LISTED_JOBS`](crate::wire::MAX_LISTED_JOBS) in all.
    pub fn jobs(&self, now: Instant) -> Vec<JobSummary> {
        self.reporter(now).listing(None)
    }

    /// The report of a job (final or not), while it is kept.
    pub fn report(&self, job: JobId, now: Instant) -> Option<JobReport> {
        let j = self.t.jobs.get(job)?;
        Some(self.reporter(now).report(job, j))
    }

    /// One job in detail (workers, chunks, reassignments, solutions so far), while
    /// it is kept.
    pub fn detail(&self, job: JobId, now: Instant) -> Option<JobDetail> {
        let j = self.t.jobs.get(job)?;
        Some(self.reporter(now).detail(job, j))
    }

    /// What the metrics endpoint shows: every worker name seen this run with its
    /// state, rate and totals; jobs by state; live jobs' progress by kind; connected
    /// peers by role; the coordinator's counters.
    pub fn metrics(&self, now: Instant) -> MetricsSnapshot {
        let fx = &self.fx;
        metrics::snapshot(&self.t, &fx.totals, fx.stats, fx.submitted, fx.clock, now)
    }

    /// Connected workers (by name) and the jobs kept.
    pub fn status(&self, now: Instant) -> ClusterStatus {
        self.reporter(now).status(None)
    }

    // -----------------------------------------------------------------------------
    // Scheduling
    // -----------------------------------------------------------------------------
    /// Carries out the schedule (see `dispatch`).
    fn schedule(&mut self, now: Instant) {
        dispatch::schedule(&mut self.t, &mut self.fx, now);
    }
}
