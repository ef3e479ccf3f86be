//! Deterministic simulation: the real coordinator and worker-agent state machines,
//! driven by simulated time, per-link FIFO latency with spikes, dropped connections,
//! crashed and rejoining workers, heterogeneous speeds and several jobs. Seeded: a
//! failing seed replays exactly (`PICLUSTER_SIM_SEED=N cargo test sim::`).
//!
//! Only compute is simulated: a worker advances through its task at its speed and
//! reports the solutions in what it covered, taken from a single-process scan of the
//! job done once up front. The coordinator still verifies every claimed solution with
//! a real hash, and the properties compare its reports with that scan.

use crate::fixtures::vectors;
use picluster_core::coordinator::{
    Coordinator, CoordinatorConfig, Inbound, Record, Snapshot, Transmit,
};
use picluster_core::identity::{PeerIdentity, Role};
use picluster_core::ids::{ConnId, JobId, RequestId};
use picluster_core::job::{JobKind, SearchMode};
use picluster_core::kernel::sha256d::{Sha256dJob, Target};
use picluster_core::kernel::SearchKernel;
use picluster_core::wire::*;
use picluster_worker::agent::{Agent, ComputeCommand, WorkerInfo};
use picluster_worker::compute::{ComputeEvent, TaskId, Work};
use std::collections::{BTreeMap, VecDeque};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// splitmix64: small, seedable, good enough for choosing scenarios.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits (splitmix64).
    pub fn bits(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.bits() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.bits() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
    /// A number from `lo` to `hi`, both included.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// The jobs scenarios draw from, with their solutions by a single-process scan.
struct PoolJob {
    job: Sha256dJob,
    solutions: Vec<u64>,
}

fn pool() -> &'static Vec<PoolJob> {
    static POOL: OnceLock<Vec<PoolJob>> = OnceLock::new();
    POOL.get_or_init(|| {
        // About 1 in 4096 hashes meets this target.
        let mut t = [0xff; 32];
        t[0] = 0;
        t[1] = 0x0f;
        let target = Target(t);
        let sizes = [1u64 << 19, 3 << 18, 1 << 20];
        vectors()
            .iter()
            .zip(sizes)
            .map(|(v, size)| {
                // Distinct keyspace sizes identify the job inside the simulated engine.
                let job = Sha256dJob::new(v.header, Some(target), 0..size, 0).unwrap();
                let mut solutions = Vec::new();
                job.kernel().scan(0..job.keyspace(), &mut solutions);
                PoolJob { job, solutions }
            })
            .collect()
    })
}

const MS: u64 = 1000; // simulation time is in microseconds
const QUIC_IDLE: u64 = 10_000 * MS;

#[derive(Clone, Debug)]
enum Packet {
    ToCoord(ConnId, WorkerToCoord),
    ToWorker(ConnId, CoordToWorker),
}

struct SimTask {
    id: TaskId,
    job: usize,
    start: u64,
    position: f64,
    limit: u64,
    stopped: bool,
    reported: u64,
    found_up_to: u64,
    next_tick: u64,
}

struct SimWorker {
    name: String,
    /// Indices per microsecond.
    speed: f64,
    conn: Option<ConnId>,
    agent: Agent,
    tasks: VecDeque<SimTask>,
    progress_every: u64,
    /// Up when the process runs; a crashed worker rejoins at `rejoin_at`.
    up: bool,
    rejoin_at: Option<u64>,
    reconnect_at: Option<u64>,
    computed: u64,
}

struct Scenario {
    workers: Vec<f64>,
    jobs: Vec<(u64, usize, SearchMode)>,
    cancel: Option<(u64, usize)>,
    latency: (u64, u64),
    spike: f64,
    crashes: Vec<(u64, usize, u64)>,
    drops: Vec<(u64, usize)>,
}

#[derive(Debug)]
struct Outcome {
    reports: BTreeMap<JobId, (JobReport, u64)>,
    submitted_at: BTreeMap<JobId, u64>,
    pool_index: BTreeMap<JobId, usize>,
    modes: BTreeMap<JobId, SearchMode>,
    cancelled: Option<(JobId, u64)>,
    /// A cancellation sent whose acknowledgement a coordinator crash may have lost.
    cancel_asked: Option<JobId>,
    /// Leases adopted by restarted (or the same) coordinators.
    adopted_leases: u64,
    /// Batches of records a coordinator crash lost before they were durable.
    lost_batches: u64,
    late_assigns: usize,
    computed: u64,
    steals: u64,
}

const CLIENT: ConnId = ConnId(1_000_000);

struct Sim {
    now: u64,
    base: Instant,
    rng: Rng,
    coord: Coordinator,
    workers: Vec<SimWorker>,
    /// In flight: (deliver at, sequence) -> packet.
    wire: BTreeMap<(u64, u64), Packet>,
    link_free: BTreeMap<ConnId, (u64, u64)>,
    seq: u64,
    next_conn: u64,
    conn_worker: BTreeMap<ConnId, usize>,
    pending_disconnects: Vec<(u64, ConnId)>,
    latency: (u64, u64),
    spike: f64,
    outcome: Outcome,
    /// With coordinator crashes: its store, and the client's view of its jobs.
    journal: Option<SimJournal>,
    /// The client's current connection.
    client: ConnId,
}

/// A coordinator with a journal whose store is simulated: batches become durable
/// after a delay, and a crash loses the ones not yet durable.
struct SimJournal {
    config: CoordinatorConfig,
    store: Snapshot,
    /// Batches written but not yet durable: (durable at, last sequence, records).
    unsynced: VecDeque<(u64, u64, Vec<Record>)>,
    /// When the coordinator crashes.
    crashes: VecDeque<u64>,
    rng: Rng,
    /// Submissions in order: (pool job, mode, submitted at, acknowledged id).
    jobs: Vec<(usize, SearchMode, u64, Option<JobId>)>,
    /// Each submission's current request id.
    requests: BTreeMap<RequestId, usize>,
    next_request: u32,
    /// Cancellation asked for (sim job), and acknowledged.
    cancel_asked: Option<usize>,
    lost_batches: u64,
}

/// The wall clock at the simulation's start.
const T0_MS: u64 = 1_764_600_000_000;

impl Sim {
    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn send(&mut self, conn: ConnId, packet: Packet) {
        if std::env::var("PICLUSTER_SIM_TRACE").is_ok_and(|v| v == "2") {
            eprintln!("{:>8} ms {conn} {packet:?}", self.now / MS);
        }
        let mut delay = self.rng.range(self.latency.0, self.latency.1);
        if self.rng.chance(self.spike) {
            delay += self.rng.range(50 * MS, 1500 * MS); // retransmissions
        }
        let direction = u64::from(matches!(packet, Packet::ToWorker(..)));
        // Streams are ordered: nothing overtakes what was sent before on its link.
        let link = self.link_free.entry(conn).or_insert((0, 0));
        let slot = if direction == 0 {
            &mut link.0
        } else {
            &mut link.1
        };
        let at = (self.now + delay).max(*slot);
        *slot = at;
        self.seq += 1;
        self.wire.insert((at, self.seq), packet);
    }

    fn connect(&mut self, w: usize) {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.conn_worker.insert(conn, w);
        let worker = &mut self.workers[w];
        worker.conn = Some(conn);
        let mut hello = worker.agent.hello();
        // Simulated workers do not hash, so they cannot make shares: they speak the
        // minor version before shares (the share test has its own tests).
        if let WorkerToCoord::Hello(h) = &mut hello {
            h.minor = h.minor.min(MINOR_SHARES - 1);
        }
        let name = worker.name.clone();
        let now = self.instant();
        self.coord
            .handle_connected(now, conn, PeerIdentity::new(Role::Worker, name));
        self.send(conn, Packet::ToCoord(conn, hello));
    }

    fn drain_coord(&mut self) {
        let now = self.instant();
        while let Some(t) = self.coord.poll_transmit(now) {
            match t {
                Transmit::ToWorker(conn, m) => {
                    if let (Some((job, _)), CoordToWorker::Assign(a)) = (self.outcome.cancelled, &m)
                    {
                        if a.job == job {
                            self.outcome.late_assigns += 1;
                        }
                    }
                    self.send(conn, Packet::ToWorker(conn, m));
                }
                Transmit::ToClient(c, CoordToClient::Finished(r)) => {
                    let known = match &self.journal {
                        None => true,
                        // Only the jobs this client was told about, on its connection.
                        Some(j) => {
                            c == self.client && j.jobs.iter().any(|job| job.3 == Some(r.job))
                        }
                    };
                    if known {
                        self.outcome.reports.entry(r.job).or_insert((r, self.now));
                    }
                }
                Transmit::ToClient(c, CoordToClient::Submitted(JobRequest { request, job }))
                    if c == self.client =>
                {
                    self.acknowledged(request, job);
                }
                Transmit::ToClient(c, CoordToClient::Cancelled(_, summary))
                    if c == self.client && self.journal.is_some() =>
                {
                    self.outcome.cancelled = Some((summary.progress.job, self.now));
                }
                Transmit::ToClient(_, _) => {}
                Transmit::ToJoiner(..) | Transmit::Issue(..) => {
                    panic!("nobody joins in the simulation: {t:?}")
                }
                Transmit::Close(conn, reason) => {
                    let code = reason.code();
                    // NameInUse: a worker back before its dead connection was
                    // noticed; it retries, as the daemon does.
                    assert!(
                        matches!(
                            code,
                            CloseCode::Normal | CloseCode::Replaced | CloseCode::NameInUse
                        ),
                        "unexpected close of {conn}: {code:?} {reason}"
                    );
                    if let Some(&w) = self.conn_worker.get(&conn) {
                        if self.workers[w].conn == Some(conn) {
                            self.pending_disconnects.push((self.now, conn));
                        }
                    }
                }
            }
        }
    }

    fn drain_worker(&mut self, w: usize) {
        loop {
            let Some(cmd) = self.workers[w].agent.poll_compute() else {
                break;
            };
            let worker = &mut self.workers[w];
            match cmd {
                ComputeCommand::Run {
                    task, work, range, ..
                } => {
                    let Work::Search(kernel) = work else {
                        panic!("the simulation runs SHA-256d jobs only")
                    };
                    let job = pool()
                        .iter()
                        .position(|p| p.job.keyspace() == kernel.keyspace())
                        .unwrap();
                    let next_tick = self.now + worker.progress_every;
                    worker.tasks.push_back(SimTask {
                        id: task,
                        job,
                        start: range.start,
                        position: range.start as f64,
                        limit: range.end,
                        stopped: false,
                        reported: range.start,
                        found_up_to: range.start,
                        next_tick,
                    });
                }
                ComputeCommand::Stop(task) => {
                    if let Some(t) = worker.tasks.iter_mut().find(|t| t.id == task) {
                        t.stopped = true;
                    }
                }
                ComputeCommand::Trim(task, end) => {
                    // Blocks already claimed are finished, as in the real engine, where
                    // a block is about 50 ms of one thread's work.
                    let block = ((worker.speed * 50.0 * MS as f64) as u64).max(1);
                    let head = worker.tasks.front().map(|t| t.id);
                    if let Some(t) = worker.tasks.iter_mut().find(|t| t.id == task) {
                        let pos = t.position.ceil() as u64;
                        let claimed = if head == Some(task) {
                            t.start + (pos - t.start).div_ceil(block) * block
                        } else {
                            t.start
                        };
                        t.limit = t.limit.min(end.max(claimed));
                        let limit = t.limit;
                        worker
                            .agent
                            .handle_compute(ComputeEvent::Trimmed { task, end: limit });
                    }
                }
            }
        }
        if let Some(conn) = self.workers[w].conn {
            while let Some(m) = self.workers[w].agent.poll_transmit() {
                self.send(conn, Packet::ToCoord(conn, m));
            }
        } else {
            while self.workers[w].agent.poll_transmit().is_some() {}
        }
    }

    /// The coordinator acknowledged a submission (journal mode): from now on the job
    /// must finish, and the client watches it.
    fn acknowledged(&mut self, request: RequestId, job: JobId) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let Some(k) = j.requests.remove(&request) else {
            return;
        };
        let (pool_job, mode, at, _) = j.jobs[k];
        j.jobs[k].3 = Some(job);
        self.outcome.submitted_at.insert(job, at);
        self.outcome.pool_index.insert(job, pool_job);
        self.outcome.modes.insert(job, mode);
        self.client_says(ClientToCoord::Watch(JobRequest {
            request: RequestId(2),
            job,
        }));
    }

    /// A message from the client on its current connection.
    fn client_says(&mut self, message: ClientToCoord) {
        let (now, client) = (self.instant(), self.client);
        self.coord
            .handle_inbound(now, client, Inbound::Client(message));
    }

    /// Submits sim job `k` (journal mode), with a fresh request id.
    fn submit_journaled(&mut self, k: usize) {
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        let request = RequestId(j.next_request);
        j.next_request += 1;
        j.requests.insert(request, k);
        let (p, mode, _, _) = j.jobs[k];
        let work = WorkSpec::from(&JobKind::Sha256d(pool()[p].job));
        self.client_says(ClientToCoord::Submit(Submit {
            request,
            work,
            mode,
            priority: 0,
        }));
    }

    fn connect_client(&mut self) {
        let now = self.instant();
        let client = self.client;
        self.coord
            .handle_connected(now, client, PeerIdentity::new(Role::Admin, "admin"));
        self.coord.handle_inbound(
            now,
            client,
            Inbound::Client(ClientToCoord::Hello(ClientHello {
                minor: picluster_core::wire::PROTOCOL_MINOR,
                client_version: "sim".into(),
            })),
        );
    }

    /// Takes the journal's new records and makes due batches durable.
    fn sync_journal(&mut self) {
        let now = self.now;
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        while let Some((seq, records)) = self.coord.poll_records() {
            let delay = j.rng.range(200, 20 * MS);
            j.unsynced.push_back((now + delay, seq, records));
        }
        while j.unsynced.front().is_some_and(|(at, _, _)| *at <= now) {
            let Some((_, seq, records)) = j.unsynced.pop_front() else {
                break;
            };
            for r in records {
                j.store.apply(r);
            }
            let instant = self.base + Duration::from_micros(now);
            self.coord.handle_durable(instant, seq);
        }
    }

    /// The coordinator process dies and restarts from its store: what was not
    /// durable is lost, every connection with it.
    fn crash_coordinator(&mut self) {
        let instant = self.instant();
        let now = self.now;
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        j.lost_batches += j.unsynced.len() as u64;
        j.unsynced.clear();
        self.outcome.adopted_leases += self.coord.stats().adopted_leases;
        self.coord = Coordinator::recover(
            j.config.clone(),
            j.store.clone(),
            instant,
            T0_MS + now / 1000,
        )
        .expect("the store recovers");
        self.wire.clear();
        self.pending_disconnects.clear();
        for w in 0..self.workers.len() {
            if self.workers[w].conn.take().is_some() {
                self.workers[w].agent.handle_disconnected();
                self.drain_worker(w);
                if self.workers[w].up {
                    self.workers[w].reconnect_at = Some(now + 500 * MS);
                }
            }
        }
        // The client reconnects at once, watches what it was told about, and submits
        // again what it was not.
        self.client = ConnId(self.next_conn);
        self.next_conn += 1;
        self.connect_client();
        let Some(j) = self.journal.as_mut() else {
            return;
        };
        j.requests.clear();
        let jobs = j.jobs.clone();
        for (k, (_, _, _, id)) in jobs.into_iter().enumerate() {
            match id {
                Some(job) if !self.outcome.reports.contains_key(&job) => {
                    self.client_says(ClientToCoord::Watch(JobRequest {
                        request: RequestId(2),
                        job,
                    }));
                }
                Some(_) => {}
                None => self.submit_journaled(k),
            }
        }
    }

    /// Advances worker `w`'s compute to `self.now`, emitting events.
    fn run_worker(&mut self, w: usize, from: u64) {
        let mut t0 = from;
        loop {
            let worker = &mut self.workers[w];
            if !worker.up {
                return;
            }
            let speed = worker.speed;
            let every = worker.progress_every;
            let Some(task) = worker.tasks.front_mut() else {
                return;
            };
            let mut events = Vec::new();
            let finished;
            if task.stopped {
                finished = true;
            } else {
                let needed = (task.limit as f64 - task.position) / speed;
                let available = (self.now - t0) as f64;
                if needed <= available {
                    worker.computed += task.limit - task.position as u64;
                    task.position = task.limit as f64;
                    t0 += needed.ceil() as u64;
                    finished = true;
                } else {
                    let before = task.position as u64;
                    task.position += available * speed;
                    worker.computed += task.position as u64 - before;
                    t0 = self.now;
                    finished = false;
                }
            }
            let pos = task.position as u64;
            let solutions = &pool()[task.job].solutions;
            let found: Vec<u64> = solutions
                .iter()
                .copied()
                .filter(|i| *i >= task.found_up_to && *i < pos)
                .collect();
            task.found_up_to = task.found_up_to.max(pos);
            if !found.is_empty() {
                events.push(ComputeEvent::Found {
                    task: task.id,
                    indices: found,
                });
            }
            if finished {
                events.push(ComputeEvent::Finished {
                    task: task.id,
                    position: pos,
                    output: None,
                });
                worker.tasks.pop_front();
                if let Some(next) = worker.tasks.front_mut() {
                    next.next_tick = t0 + every;
                }
            } else if self.now >= task.next_tick {
                task.next_tick = self.now + every;
                if pos > task.reported {
                    task.reported = pos;
                    events.push(ComputeEvent::Progress {
                        task: task.id,
                        position: pos,
                        output: None,
                    });
                }
            }
            for e in events {
                self.workers[w].agent.handle_compute(e);
            }
            self.drain_worker(w);
            if !finished {
                return;
            }
        }
    }

    /// When worker `w` next has something to report.
    fn worker_wakeup(&self, w: usize) -> Option<u64> {
        let worker = &self.workers[w];
        if !worker.up {
            return None;
        }
        let task = worker.tasks.front()?;
        if task.stopped {
            return Some(self.now);
        }
        let done = self.now + ((task.limit as f64 - task.position) / worker.speed).ceil() as u64;
        Some(done.min(task.next_tick).max(self.now))
    }
}

fn scenario(rng: &mut Rng, faults: bool) -> Scenario {
    // Pi 3, Pi 4, laptop: 1x, 4x, 30x.
    let n = rng.range(2, 5) as usize;
    let ratios: Vec<f64> = (0..n)
        .map(|_| [1.0, 4.0, 30.0][rng.below(3) as usize])
        .collect();
    if !faults {
        // Jobs of 10 to 60 s at the cluster's total speed: "a few seconds or more".
        let job = rng.below(3) as usize;
        let seconds = rng.range(10, 60) as f64;
        let total = pool()[job].job.keyspace() as f64 / (seconds * 1e6);
        let sum: f64 = ratios.iter().sum();
        let workers = ratios.iter().map(|r| r * total / sum).collect();
        return Scenario {
            workers,
            jobs: vec![(0, job, SearchMode::All)],
            cancel: None,
            latency: (200, 2 * MS),
            spike: 0.0,
            crashes: vec![],
            drops: vec![],
        };
    }
    let base = 0.004 + rng.below(4) as f64 * 0.002;
    let workers: Vec<f64> = ratios.iter().map(|r| r * base).collect();
    let jobs: Vec<(u64, usize, SearchMode)> = (0..rng.range(1, 3))
        .map(|_| {
            let mode = if rng.chance(0.5) {
                SearchMode::All
            } else {
                SearchMode::First
            };
            (rng.below(5000) * MS, rng.below(3) as usize, mode)
        })
        .collect();
    let cancel = rng.chance(0.3).then(|| {
        (
            rng.range(100, 8000) * MS,
            rng.below(jobs.len() as u64) as usize,
        )
    });
    let crashes = (0..rng.below(3))
        .map(|_| {
            (
                rng.range(100, 20_000) * MS,
                rng.below(n as u64) as usize,
                rng.range(500, 15_000) * MS,
            )
        })
        .collect();
    let drops = (0..rng.below(3))
        .map(|_| (rng.range(100, 20_000) * MS, rng.below(n as u64) as usize))
        .collect();
    Scenario {
        workers,
        jobs,
        cancel,
        latency: (100, rng.range(1, 20) * MS),
        spike: [0.0, 0.01, 0.05][rng.below(3) as usize],
        crashes,
        drops,
    }
}

/// How the coordinator splits work, for comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The real scheduler: adaptive chunks and work stealing.
    Stealing,
    /// One equal chunk per worker, no stealing.
    StaticSplit,
    /// Fixed-size chunks (1/16 of an equal share), no stealing.
    FixedChunks,
}

/// Faults and crashes run with audits at the default fraction (an audit is a lease
/// that commits nothing: nothing may be lost or counted twice with them either);
/// fault-free runs, which measure the schedule against the ideal, without.
fn run(seed: u64, faults: bool, coordinator_crashes: bool) -> (Scenario, Outcome) {
    let audits = if faults {
        CoordinatorConfig::default().audit_fraction
    } else {
        0.0
    };
    run_with(seed, faults, Policy::Stealing, coordinator_crashes, audits)
}

/// Runs one seed's scenario under `policy`, without audits; returns the makespan
/// over ideal of its first job (meaningful for fault-free scenarios).
pub fn makespan_ratio(seed: u64, policy: Policy) -> f64 {
    audited_makespan_ratio(seed, policy, 0.0)
}

/// [`makespan_ratio`] with `audit_fraction` of the finished leases searched again
/// (the ideal counts no audit work: the ratio shows what audits cost).
pub fn audited_makespan_ratio(seed: u64, policy: Policy, audit_fraction: f64) -> f64 {
    let (sc, out) = run_with(seed, false, policy, false, audit_fraction);
    let (job, (_, finished_at)) = out.reports.iter().next().expect("a job");
    let keyspace = pool()[out.pool_index[job]].job.keyspace();
    let speed: f64 = sc.workers.iter().sum();
    let ideal = keyspace as f64 / speed + 2.0 * sc.latency.1 as f64;
    (finished_at - out.submitted_at[job]) as f64 / ideal
}

fn run_with(
    seed: u64,
    faults: bool,
    policy: Policy,
    coordinator_crashes: bool,
    audit_fraction: f64,
) -> (Scenario, Outcome) {
    let mut rng = Rng(seed);
    let sc = scenario(&mut rng, faults);
    // The real minimums (64 Ki) are about 16 ms of a Pi 3's work; keep that relation
    // at the simulation's speeds.
    let slowest = sc.workers.iter().copied().fold(f64::INFINITY, f64::min);
    let granule = ((slowest * 20.0 * MS as f64) as u64).max(16);
    let mut config = CoordinatorConfig {
        min_chunk: granule,
        min_steal: granule,
        audit_fraction,
        audit_seed: seed,
        ..CoordinatorConfig::default()
    };
    let equal_share = sc.jobs.first().map_or(1, |j| {
        pool()[j.1].job.keyspace().div_ceil(sc.workers.len() as u64)
    });
    match policy {
        Policy::Stealing => {}
        Policy::StaticSplit => {
            config.steal = false;
            config.leases_per_worker = 1;
            config.min_chunk = equal_share;
            config.max_chunk = equal_share;
        }
        Policy::FixedChunks => {
            config.steal = false;
            config.min_chunk = (equal_share / 16).max(1);
            config.max_chunk = (equal_share / 16).max(1);
        }
    }
    let progress_every = config.progress_interval.as_micros() as u64;
    let base = Instant::now();
    let journal = coordinator_crashes.then(|| {
        // A separate stream: the scenario's draws stay those of the runs without.
        let mut rng = Rng(seed ^ 0x5eed_c0de);
        config.checkpoint_interval = Duration::from_millis(rng.range(200, 3000));
        let crashes = (0..rng.range(1, 3))
            .map(|_| rng.range(50, 15_000) * MS)
            .collect::<Vec<_>>();
        let mut crashes: VecDeque<u64> = crashes.into();
        crashes.make_contiguous().sort_unstable();
        SimJournal {
            config: config.clone(),
            store: Snapshot::default(),
            unsynced: VecDeque::new(),
            crashes,
            rng,
            jobs: Vec::new(),
            requests: BTreeMap::new(),
            next_request: 100,
            cancel_asked: None,
            lost_batches: 0,
        }
    });
    let coord = match &journal {
        Some(j) => Coordinator::recover(j.config.clone(), Snapshot::default(), base, T0_MS)
            .expect("an empty store recovers"),
        None => Coordinator::new(config, base),
    };
    let mut sim = Sim {
        now: 0,
        base,
        rng,
        coord,
        workers: sc
            .workers
            .iter()
            .enumerate()
            .map(|(i, &speed)| SimWorker {
                name: format!("w{i}"),
                speed,
                conn: None,
                agent: Agent::new(
                    WorkerInfo {
                        threads: 1,
                        kernel_impl: "sim".into(),
                        bench_hps: (speed * 1e6) as u64,
                    },
                    Default::default(),
                ),
                tasks: VecDeque::new(),
                progress_every,
                up: true,
                rejoin_at: None,
                reconnect_at: None,
                computed: 0,
            })
            .collect(),
        wire: BTreeMap::new(),
        link_free: BTreeMap::new(),
        seq: 0,
        next_conn: 1,
        conn_worker: BTreeMap::new(),
        pending_disconnects: Vec::new(),
        latency: sc.latency,
        spike: sc.spike,
        outcome: Outcome {
            reports: BTreeMap::new(),
            submitted_at: BTreeMap::new(),
            pool_index: BTreeMap::new(),
            modes: BTreeMap::new(),
            cancelled: None,
            cancel_asked: None,
            lost_batches: 0,
            adopted_leases: 0,
            late_assigns: 0,
            computed: 0,
            steals: 0,
        },
        journal,
        client: CLIENT,
    };
    sim.connect_client();
    for w in 0..sim.workers.len() {
        sim.connect(w);
    }
    let mut submits: VecDeque<(u64, usize, SearchMode)> = sc.jobs.iter().copied().collect();
    submits.make_contiguous().sort_by_key(|j| j.0);
    let mut crashes = sc.crashes.clone();
    crashes.sort();
    let mut drops = sc.drops.clone();
    drops.sort();
    let mut cancel = sc.cancel;
    let mut next_job = 1u64;
    let deadline = 20_000_000 * MS;
    let mut last = 0;
    for _step in 0..2_000_000 {
        sim.drain_coord();
        sim.sync_journal();
        sim.drain_coord();
        if submits.is_empty() && sim.outcome.reports.len() == sc.jobs.len() {
            break;
        }
        // The next event.
        let mut next = deadline;
        if let Some((&(t, _), _)) = sim.wire.first_key_value() {
            next = next.min(t);
        }
        for w in 0..sim.workers.len() {
            if let Some(t) = sim.worker_wakeup(w) {
                next = next.min(t);
            }
            let wk = &sim.workers[w];
            for t in [wk.rejoin_at, wk.reconnect_at].into_iter().flatten() {
                next = next.min(t);
            }
        }
        if let Some(t) = sim.coord.poll_timeout() {
            next = next.min(t.duration_since(sim.base).as_micros() as u64);
        }
        for t in [
            submits.front().map(|s| s.0),
            crashes.first().map(|c| c.0),
            drops.first().map(|d| d.0),
            cancel.map(|c| c.0),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        for (t, _) in &sim.pending_disconnects {
            next = next.min(*t);
        }
        if let Some(j) = &sim.journal {
            for t in [j.unsynced.front().map(|u| u.0), j.crashes.front().copied()]
                .into_iter()
                .flatten()
            {
                next = next.min(t);
            }
        }
        assert!(
            next < deadline,
            "seed {seed}: simulation stalled at {} ms",
            sim.now / MS
        );
        sim.now = next.max(sim.now);
        for w in 0..sim.workers.len() {
            sim.run_worker(w, last);
        }
        last = sim.now;
        let now = sim.instant();
        if sim
            .journal
            .as_ref()
            .and_then(|j| j.crashes.front())
            .is_some_and(|t| *t <= sim.now)
        {
            if let Some(j) = sim.journal.as_mut() {
                j.crashes.pop_front();
            }
            sim.crash_coordinator();
        }
        // Deliveries due.
        while let Some((&(t, s), _)) = sim.wire.first_key_value() {
            if t > sim.now {
                break;
            }
            let packet = sim.wire.remove(&(t, s)).unwrap();
            match packet {
                Packet::ToCoord(conn, m) => {
                    let live = sim
                        .conn_worker
                        .get(&conn)
                        .is_some_and(|&w| sim.workers[w].conn == Some(conn) && sim.workers[w].up);
                    if live {
                        sim.coord.handle_inbound(now, conn, Inbound::Worker(m));
                    }
                }
                Packet::ToWorker(conn, m) => {
                    if let Some(&w) = sim.conn_worker.get(&conn) {
                        if sim.workers[w].conn == Some(conn) && sim.workers[w].up {
                            if let CoordToWorker::Welcome(welcome) = m {
                                sim.workers[w].agent.handle_welcome(welcome);
                            } else {
                                sim.workers[w].agent.handle_message(m).unwrap();
                            }
                            sim.drain_worker(w);
                        }
                    }
                }
            }
        }
        if sim.coord.poll_timeout().is_some_and(|t| t <= now) {
            sim.coord.handle_timeout(now);
        }
        // Connections the coordinator closed, or lost ones it noticed.
        let due: Vec<ConnId> = sim
            .pending_disconnects
            .iter()
            .filter(|(t, _)| *t <= sim.now)
            .map(|(_, c)| *c)
            .collect();
        sim.pending_disconnects.retain(|(t, _)| *t > sim.now);
        for conn in due {
            sim.coord.handle_disconnected(now, conn);
            if let Some(&w) = sim.conn_worker.get(&conn) {
                if sim.workers[w].conn == Some(conn) {
                    sim.workers[w].conn = None;
                    sim.workers[w].agent.handle_disconnected();
                    sim.drain_worker(w);
                    if sim.workers[w].up {
                        sim.workers[w].reconnect_at = Some(sim.now + 500 * MS);
                    }
                }
            }
        }
        while submits.front().is_some_and(|s| s.0 <= sim.now) {
            let (_, p, mode) = submits.pop_front().unwrap();
            if let Some(j) = sim.journal.as_mut() {
                // Ids come from the acknowledgement, which waits for the store.
                j.jobs.push((p, mode, sim.now, None));
                let k = j.jobs.len() - 1;
                sim.submit_journaled(k);
                continue;
            }
            let job = JobId(next_job);
            next_job += 1;
            sim.outcome.submitted_at.insert(job, sim.now);
            sim.outcome.pool_index.insert(job, p);
            sim.outcome.modes.insert(job, mode);
            let work = WorkSpec::from(&JobKind::Sha256d(pool()[p].job));
            sim.coord.handle_inbound(
                now,
                CLIENT,
                Inbound::Client(ClientToCoord::Submit(Submit {
                    request: RequestId(1),
                    work,
                    mode,
                    priority: 0,
                })),
            );
            sim.coord.handle_inbound(
                now,
                CLIENT,
                Inbound::Client(ClientToCoord::Watch(JobRequest {
                    request: RequestId(2),
                    job,
                })),
            );
        }
        if let Some((t, j)) = cancel.filter(|_| sim.journal.is_some()) {
            if t <= sim.now {
                cancel = None;
                let acked = sim
                    .journal
                    .as_ref()
                    .and_then(|journal| journal.jobs.get(j).and_then(|job| job.3));
                match acked {
                    Some(job) => {
                        let client = sim.client;
                        sim.coord.handle_inbound(
                            now,
                            client,
                            Inbound::Client(ClientToCoord::Cancel(JobRequest {
                                request: RequestId(3),
                                job,
                            })),
                        );
                        if let Some(journal) = sim.journal.as_mut() {
                            journal.cancel_asked = Some(j);
                        }
                        sim.outcome.cancel_asked = Some(job);
                    }
                    None => cancel = Some((t + 1000 * MS, j)),
                }
            }
        } else if let Some((t, j)) = cancel {
            if t <= sim.now {
                cancel = None;
                let job = JobId(j as u64 + 1);
                if sim.outcome.submitted_at.contains_key(&job) {
                    sim.coord.handle_inbound(
                        now,
                        CLIENT,
                        Inbound::Client(ClientToCoord::Cancel(JobRequest {
                            request: RequestId(3),
                            job,
                        })),
                    );
                    sim.outcome.cancelled = Some((job, sim.now));
                } else {
                    cancel = Some((t + 1000 * MS, j));
                }
            }
        }
        while crashes.first().is_some_and(|c| c.0 <= sim.now) {
            let (_, w, down_for) = crashes.remove(0);
            let worker = &mut sim.workers[w];
            if !worker.up {
                continue;
            }
            // The process dies; the coordinator notices when QUIC's idle timer fires.
            worker.up = false;
            worker.tasks.clear();
            worker.rejoin_at = Some(sim.now + down_for);
            if let Some(conn) = worker.conn.take() {
                sim.pending_disconnects.push((sim.now + QUIC_IDLE, conn));
            }
        }
        while drops.first().is_some_and(|d| d.0 <= sim.now) {
            let (_, w) = drops.remove(0);
            if let Some(conn) = sim.workers[w].conn {
                sim.pending_disconnects.push((sim.now, conn));
            }
        }
        for w in 0..sim.workers.len() {
            if sim.workers[w].rejoin_at.is_some_and(|t| t <= sim.now) {
                let worker = &mut sim.workers[w];
                worker.rejoin_at = None;
                worker.up = true;
                worker.agent = Agent::new(
                    WorkerInfo {
                        threads: 1,
                        kernel_impl: "sim".into(),
                        bench_hps: (worker.speed * 1e6) as u64,
                    },
                    Default::default(),
                );
                sim.connect(w);
            }
            if sim.workers[w].reconnect_at.is_some_and(|t| t <= sim.now) {
                sim.workers[w].reconnect_at = None;
                if sim.workers[w].conn.is_none() && sim.workers[w].up {
                    sim.connect(w);
                }
            }
        }
    }
    assert!(
        sim.outcome.reports.len() == sc.jobs.len(),
        "seed {seed}: jobs did not all finish"
    );
    sim.outcome.computed = sim.workers.iter().map(|w| w.computed).sum();
    sim.outcome.steals = sim.coord.stats().steals;
    sim.outcome.lost_batches = sim.journal.as_ref().map_or(0, |j| j.lost_batches);
    sim.outcome.adopted_leases += sim.coord.stats().adopted_leases;
    (sc, sim.outcome)
}

/// Checks every property of one seed; returns the makespan ratio for fault-free runs
/// and the number of steals. Panics, naming the seed, on any violation.
pub fn check(seed: u64, faults: bool) -> (Option<f64>, u64) {
    let (ratio, steals, _) = check_with(seed, faults, false);
    (ratio, steals)
}

/// Checks one seed of the fault scenarios with the coordinator crashing too: it is
/// rebuilt from what its simulated store had made durable (losing the batches that
/// were not), every connection drops, workers and the client reconnect. Returns the
/// number of batches lost.
pub fn check_coordinator_crashes(seed: u64) -> CrashCounts {
    check_with(seed, true, true).2
}

/// What a seed with coordinator crashes went through.
#[derive(Clone, Copy, Debug, Default)]
pub struct CrashCounts {
    /// Batches of records lost before they were durable.
    pub lost_batches: u64,
    /// Leases workers kept through a crash and the restarted coordinator adopted.
    pub adopted_leases: u64,
}

fn check_with(
    seed: u64,
    faults: bool,
    coordinator_crashes: bool,
) -> (Option<f64>, u64, CrashCounts) {
    let (sc, out) = run(seed, faults, coordinator_crashes);
    let lost = CrashCounts {
        lost_batches: out.lost_batches,
        adopted_leases: out.adopted_leases,
    };
    let steals = out.steals;
    for (job, (report, finished_at)) in &out.reports {
        let p = &pool()[out.pool_index[job]];
        let reference = &p.solutions;
        let keyspace = p.job.keyspace();
        let found: Vec<u64> = report.solutions.iter().map(|s| s.index).collect();
        let contributed: u64 = report.contributions.iter().map(|c| c.hashes).sum();
        assert_eq!(
            contributed, report.hashes,
            "seed {seed} {job}: contributions add up"
        );
        assert!(
            report.hashes <= keyspace,
            "seed {seed} {job}: nothing counted twice"
        );
        let mode = out.modes[job];
        let cancelled =
            out.cancelled.is_some_and(|(c, _)| c == *job) || out.cancel_asked == Some(*job);
        if cancelled && report.state == JobState::Cancelled {
            assert_eq!(
                out.late_assigns, 0,
                "seed {seed}: work assigned after cancel"
            );
            continue;
        }
        assert_eq!(report.state, JobState::Completed, "seed {seed} {job}");
        match mode {
            SearchMode::All => {
                assert_eq!(
                    report.hashes, keyspace,
                    "seed {seed} {job}: every index searched once"
                );
                assert_eq!(
                    &found, reference,
                    "seed {seed} {job}: same answer as one process"
                );
            }
            SearchMode::First => {
                assert!(!found.is_empty(), "seed {seed} {job}: a solution");
                assert!(
                    found.iter().all(|i| reference.contains(i)),
                    "seed {seed} {job}"
                );
            }
        }
        if !faults {
            let speed: f64 = sc.workers.iter().sum::<f64>();
            // Total work over total speed, plus one chunk's round trip.
            let ideal = keyspace as f64 / speed + 2.0 * sc.latency.1 as f64;
            let makespan = (finished_at - out.submitted_at[job]) as f64;
            if std::env::var("PICLUSTER_SIM_TRACE").is_ok() {
                eprintln!(
                    "seed {seed}: speeds {:?} idx/us, keyspace {keyspace}, ideal {:.0} ms, makespan {:.0} ms, computed {} ({} duplicate), steals {}, contributions {:?}",
                    sc.workers, ideal / 1000.0, makespan / 1000.0, out.computed, out.computed - keyspace, out.steals,
                    report.contributions.iter().map(|c| (c.worker.as_str(), c.hashes)).collect::<Vec<_>>()
                );
            }
            return (Some(makespan / ideal), steals, lost);
        }
    }
    (None, steals, lost)
}

/// Everything one seed's run produced (every report, with its times, and the run's
/// counters), as text: a redesign that changes no behaviour leaves it byte for byte
/// the same (`cargo bench --bench sim_fingerprint`).
pub fn fingerprint(seed: u64, faults: bool, coordinator_crashes: bool) -> String {
    let (_, outcome) = run(seed, faults, coordinator_crashes);
    format!("{outcome:?}")
}

/// The seeds to run: `PICLUSTER_SIM_SEED` alone when set, else 0..1000.
pub fn seeds() -> Vec<u64> {
    match std::env::var("PICLUSTER_SIM_SEED") {
        Ok(s) => vec![s.parse().expect("a seed")],
        Err(_) => (0..1000).collect(),
    }
}
