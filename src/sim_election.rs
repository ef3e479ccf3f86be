//! Deterministic simulation of coordinators sharing etcd: the real [`Election`]
//! state machine of each candidate, a model of etcd (leases expiring on etcd's
//! clock, a leader key created only when absent, transactions guarded by the key's
//! creation revision), message latency, candidates that crash and restart, and
//! partitions between a candidate and etcd. Seeded (`PICLUSTER_SIM_SEED=N cargo
//! test sim::`).
//!
//! Each leader does what a coordinator does with a job whose keyspace is cut into
//! chunks: it loads the committed chunks from etcd once elected, hands out the
//! others (to workers that take a while), and commits each finished chunk in a
//! guarded transaction, acting only while its fence is open. A deposed leader's
//! chunks are refused by etcd and searched again under the next leader. The
//! properties: every chunk committed exactly once (none lost, none twice); no write
//! from an old leader accepted after the new one's first; never two candidates
//! acting at once.

use crate::sim::Rng;
use picluster_core::election::{
    Campaigned, Election, ElectionAction, ElectionConfig, ElectionEvent,
};
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::time::{Duration, Instant};

const MS: u64 = 1000;

/// What a run went through and found.
#[derive(Clone, Debug, Default)]
pub struct ElectionOutcome {
    /// Leaders elected.
    pub elections: u64,
    /// Candidates crashed.
    pub crashes: u64,
    /// Partitions between a candidate and etcd.
    pub partitions: u64,
    /// Candidates frozen (SIGSTOP) past their lease, then thawed.
    pub freezes: u64,
    /// Chunk commits etcd refused (a deposed leader's).
    pub refused: u64,
    /// Chunks committed twice (must be 0).
    pub duplicated: u64,
    /// Chunks never committed (must be 0).
    pub lost: u64,
    /// Accepted writes guarded by an older revision than one accepted before
    /// (must be 0).
    pub stale_writes: u64,
    /// Moments two candidates were acting at once (must be 0).
    pub overlaps: u64,
    /// Takeovers: from a leader's loss (crash or partition) to the next leader's
    /// first chunk handed out, in ms.
    pub takeovers_ms: Vec<u64>,
}

/// A message between a candidate and etcd.
#[derive(Clone, Debug)]
enum Msg {
    /// A candidate's request.
    Request(usize, u64, Request),
    /// etcd's answer.
    Answer(usize, u64, Answer),
    /// A worker finished a chunk for a leader.
    Done(usize, u64, u64),
}

#[derive(Clone, Debug)]
enum Request {
    Election(ElectionAction, Instant),
    Load,
    Commit(i64, u64),
}

#[derive(Clone, Debug)]
enum Answer {
    Granted(i64, Duration, Instant),
    Renewed(i64, Duration, Instant),
    Campaigned(i64, Campaigned),
    Loaded(BTreeSet<u64>),
    Committed(u64, bool),
    Failed(ElectionAction),
    /// A load or commit that got no answer (the driver's timeout): the leader
    /// steps down, as `serve` does when the journal cannot be read or written.
    Lost(Option<u64>),
}

/// The model of etcd.
#[derive(Default)]
struct Etcd {
    revision: i64,
    next_lease: i64,
    leases: BTreeMap<i64, u64>,
    /// The leader key: (holder, lease, creation revision).
    key: Option<(usize, i64, i64)>,
    committed: BTreeMap<u64, i64>,
    /// The newest guard revision of an accepted write.
    last_guard: i64,
}

impl Etcd {
    fn expire(&mut self, now: u64) {
        let gone: Vec<i64> = self
            .leases
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(l, _)| *l)
            .collect();
        for lease in gone {
            self.leases.remove(&lease);
            if self.key.is_some_and(|(_, l, _)| l == lease) {
                self.key = None;
                self.revision += 1;
            }
        }
    }
}

struct Candidate {
    election: Election,
    up: bool,
    /// Partitioned from etcd until then.
    cut_until: u64,
    /// Frozen (SIGSTOP) until then: it handles nothing, and what it sent last is
    /// held until it thaws.
    frozen_until: u64,
    /// Bumped at each restart: answers to an earlier life are dropped.
    life: u64,
    /// Leading: the fencing revision, the chunks known committed (once loaded),
    /// those handed out.
    leading: Option<(i64, Option<BTreeSet<u64>>, BTreeSet<u64>)>,
}

struct Sim {
    now: u64,
    base: Instant,
    rng: Rng,
    config: ElectionConfig,
    etcd: Etcd,
    candidates: Vec<Candidate>,
    queue: BinaryHeap<std::cmp::Reverse<(u64, u64, usize)>>,
    messages: BTreeMap<usize, Msg>,
    next_message: usize,
    seq: u64,
    chunks: u64,
    out: ElectionOutcome,
    /// When the acting leader was lost, and which it was, until a leader's next
    /// chunk (a takeover when another candidate's).
    lost_at: Option<(u64, usize)>,
}

impl Sim {
    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.now)
    }

    fn post(&mut self, at: u64, msg: Msg) {
        let id = self.next_message;
        self.next_message += 1;
        self.messages.insert(id, msg);
        self.seq += 1;
        self.queue.push(std::cmp::Reverse((at, self.seq, id)));
    }

    fn latency(&mut self) -> u64 {
        self.rng.below(5 * MS) + 200
    }

    fn cut(&self, c: usize) -> bool {
        self.now < self.candidates[c].cut_until
    }

    /// Sends candidate `c`'s request; a partitioned or dead one's times out.
    fn request(&mut self, c: usize, request: Request) {
        let life = self.candidates[c].life;
        let at = self.now + self.latency();
        if self.cut(c) {
            self.lost(c, life, &request);
            return;
        }
        self.post(at, Msg::Request(c, life, request));
    }

    /// A request (or its answer) lost: the driver's timeout answers instead.
    fn lost(&mut self, c: usize, life: u64, request: &Request) {
        let answer = match request {
            Request::Election(ElectionAction::Revoke { .. }, _) => return,
            Request::Election(action, _) => Answer::Failed(action.clone()),
            Request::Load => Answer::Lost(None),
            Request::Commit(_, chunk) => Answer::Lost(Some(*chunk)),
        };
        self.post(self.now + 1500 * MS, Msg::Answer(c, life, answer));
    }

    fn drive(&mut self, c: usize) {
        let now = self.instant();
        while let Some(action) = self.candidates[c].election.poll_action() {
            self.request(c, Request::Election(action, now));
        }
        while let Some(event) = self.candidates[c].election.poll_event() {
            match event {
                ElectionEvent::Elected { revision } => {
                    self.out.elections += 1;
                    self.candidates[c].leading = Some((revision, None, BTreeSet::new()));
                    self.request(c, Request::Load);
                }
                ElectionEvent::Fenced { .. } => {
                    if self.candidates[c].leading.take().is_some() {
                        self.lost_at.get_or_insert((self.now, c));
                    }
                }
                ElectionEvent::Leader(_) => {}
            }
        }
        self.hand_out(c);
    }

    /// Whether candidate `c` may act now (leading, its fence open).
    fn acting(&self, c: usize) -> bool {
        let cand = &self.candidates[c];
        cand.up
            && cand.leading.is_some()
            && cand
                .election
                .fence_deadline()
                .is_some_and(|d| self.instant() < d)
    }

    /// A leader with its state loaded keeps two chunks out.
    fn hand_out(&mut self, c: usize) {
        if !self.acting(c) {
            return;
        }
        let life = self.candidates[c].life;
        let chunks = self.chunks;
        let Some((_, Some(committed), out)) = self.candidates[c].leading.as_mut() else {
            return;
        };
        let mut given = Vec::new();
        for chunk in 0..chunks {
            if out.len() >= 2 {
                break;
            }
            if !committed.contains(&chunk) && !out.contains(&chunk) {
                out.insert(chunk);
                given.push(chunk);
            }
        }
        for chunk in given {
            if let Some((lost, who)) = self.lost_at.take() {
                if who != c {
                    self.out.takeovers_ms.push((self.now - lost) / MS);
                }
            }
            let work = self.rng.range(50 * MS, 400 * MS);
            self.post(self.now + work, Msg::Done(c, life, chunk));
        }
    }

    fn at_etcd(&mut self, c: usize, life: u64, request: Request) {
        self.etcd.expire(self.now);
        let ttl = self.config.ttl;
        let asked = request.clone();
        let answer = match request {
            Request::Election(action, sent) => match action {
                ElectionAction::Grant { ttl } => {
                    self.etcd.next_lease += 1;
                    let lease = self.etcd.next_lease;
                    self.etcd
                        .leases
                        .insert(lease, self.now + ttl.as_micros() as u64);
                    Answer::Granted(lease, ttl, sent)
                }
                ElectionAction::Renew { lease, sent } => {
                    let alive = self.etcd.leases.contains_key(&lease);
                    if alive {
                        self.etcd
                            .leases
                            .insert(lease, self.now + ttl.as_micros() as u64);
                    }
                    Answer::Renewed(lease, if alive { ttl } else { Duration::ZERO }, sent)
                }
                ElectionAction::Campaign { lease } => {
                    if !self.etcd.leases.contains_key(&lease) {
                        Answer::Failed(ElectionAction::Campaign { lease })
                    } else {
                        match self.etcd.key {
                            None => {
                                self.etcd.revision += 1;
                                let revision = self.etcd.revision;
                                self.etcd.key = Some((c, lease, revision));
                                Answer::Campaigned(lease, Campaigned::Won { revision })
                            }
                            Some((holder, held, revision)) => Answer::Campaigned(
                                lease,
                                Campaigned::Held {
                                    leader: format!("c{holder}"),
                                    lease: held,
                                    revision,
                                },
                            ),
                        }
                    }
                }
                ElectionAction::Revoke { lease } => {
                    self.etcd.leases.remove(&lease);
                    if self.etcd.key.is_some_and(|(_, l, _)| l == lease) {
                        self.etcd.key = None;
                        self.etcd.revision += 1;
                    }
                    return;
                }
            },
            Request::Load => Answer::Loaded(self.etcd.committed.keys().copied().collect()),
            Request::Commit(guard, chunk) => {
                let ok = self.etcd.key.is_some_and(|(_, _, rev)| rev == guard);
                if ok {
                    self.etcd.revision += 1;
                    if guard < self.etcd.last_guard {
                        self.out.stale_writes += 1;
                    }
                    self.etcd.last_guard = guard;
                    if self.etcd.committed.insert(chunk, guard).is_some() {
                        self.out.duplicated += 1;
                    }
                } else {
                    self.out.refused += 1;
                }
                Answer::Committed(chunk, ok)
            }
        };
        // The answer is lost if the candidate is cut off meanwhile: a timeout.
        if self.cut(c) {
            self.lost(c, life, &asked);
            return;
        }
        let at = self.now + self.latency();
        self.post(at, Msg::Answer(c, life, answer));
    }

    fn at_candidate(&mut self, c: usize, answer: Answer) {
        let now = self.instant();
        match answer {
            Answer::Granted(lease, ttl, sent) => self.candidates[c]
                .election
                .handle_granted(now, sent, lease, ttl),
            Answer::Renewed(lease, ttl, sent) => self.candidates[c]
                .election
                .handle_renewed(now, lease, sent, ttl),
            Answer::Campaigned(lease, answer) => self.candidates[c]
                .election
                .handle_campaigned(now, lease, answer),
            Answer::Failed(action) => self.candidates[c].election.handle_failed(now, &action),
            Answer::Loaded(committed) => {
                if let Some((_, view @ None, _)) = self.candidates[c].leading.as_mut() {
                    *view = Some(committed);
                }
            }
            Answer::Lost(chunk) => {
                if let Some((_, _, out)) = self.candidates[c].leading.as_mut() {
                    if let Some(chunk) = chunk {
                        out.remove(&chunk);
                    }
                    self.candidates[c].election.handle_step_down(now);
                }
            }
            Answer::Committed(chunk, ok) => {
                let acting = self.acting(c);
                if let Some((_, view, out)) = self.candidates[c].leading.as_mut() {
                    out.remove(&chunk);
                    if ok {
                        if let Some(view) = view {
                            view.insert(chunk);
                        }
                    } else if acting {
                        // Deposed: the driver steps down (`serve`).
                        self.candidates[c].election.handle_step_down(now);
                    }
                }
            }
        }
        self.drive(c);
    }

    fn deliver(&mut self, msg: Msg) {
        match msg {
            Msg::Request(c, life, request) => self.at_etcd(c, life, request),
            Msg::Answer(c, life, answer) if self.candidates[c].frozen_until > self.now => {
                let thaw = self.candidates[c].frozen_until;
                self.post(thaw, Msg::Answer(c, life, answer));
            }
            Msg::Done(c, life, chunk) if self.candidates[c].frozen_until > self.now => {
                let thaw = self.candidates[c].frozen_until;
                self.post(thaw, Msg::Done(c, life, chunk));
            }
            Msg::Answer(c, life, answer) => {
                if self.candidates[c].up && self.candidates[c].life == life {
                    self.at_candidate(c, answer);
                }
            }
            Msg::Done(c, life, chunk) => {
                if self.candidates[c].life != life || !self.acting(c) {
                    return;
                }
                if let Some((guard, _, _)) = self.candidates[c].leading {
                    self.request(c, Request::Commit(guard, chunk));
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.etcd.committed.len() as u64 == self.chunks
    }
}

/// Runs one seed: 3 candidates, a keyspace of 200 chunks, crashes and partitions
/// until it is all committed.
pub fn run_election(seed: u64) -> ElectionOutcome {
    let mut rng = Rng(seed ^ 0x656c_6563);
    let base = Instant::now();
    let config = ElectionConfig::default();
    let n = 3;
    let candidates = (0..n)
        .map(|_| Candidate {
            election: Election::new(config, base),
            up: true,
            cut_until: 0,
            frozen_until: 0,
            life: 0,
            leading: None,
        })
        .collect();
    let mut sim = Sim {
        now: 0,
        base,
        rng: Rng(rng.bits()),
        config,
        etcd: Etcd::default(),
        candidates,
        queue: BinaryHeap::new(),
        messages: BTreeMap::new(),
        next_message: 0,
        seq: 0,
        chunks: 200,
        out: ElectionOutcome::default(),
        lost_at: None,
    };
    // Faults: every 2-8 s, the acting leader (or anyone) crashes or is cut off.
    let mut next_fault = rng.range(2000, 8000) * MS;
    let limit = 600_000 * MS;
    while !sim.done() {
        assert!(sim.now < limit, "seed {seed}: not done in 600 s");
        // The next moment anything happens.
        let timers = (0..n)
            .filter(|c| sim.candidates[*c].up)
            .filter_map(|c| {
                let cand = &sim.candidates[c];
                let timer = cand.election.poll_timeout()?;
                let at = timer.saturating_duration_since(base).as_micros() as u64;
                // A frozen process wakes at its thaw.
                Some(at.max(cand.frozen_until))
            })
            .min();
        let message = sim.queue.peek().map(|r| r.0 .0);
        let next = [timers, message, Some(next_fault)]
            .into_iter()
            .flatten()
            .min()
            .expect("something is due");
        sim.now = sim.now.max(next);
        if sim.now >= next_fault {
            next_fault = sim.now + rng.range(2000, 8000) * MS;
            let acting: Vec<usize> = (0..n).filter(|c| sim.acting(*c)).collect();
            let victim = if rng.below(4) > 0 && !acting.is_empty() {
                acting[0]
            } else {
                rng.below(n as u64) as usize
            };
            if acting.contains(&victim) {
                sim.lost_at.get_or_insert((sim.now, victim));
            }
            let fault = rng.below(3);
            if fault == 2 {
                // SIGSTOP for 3-6 s, past the lease; a commit it had decided on
                // just before goes out when it thaws.
                sim.out.freezes += 1;
                let thaw = sim.now + rng.range(3000, 6000) * MS;
                sim.candidates[victim].frozen_until = thaw;
                let life = sim.candidates[victim].life;
                let decided = sim.candidates[victim]
                    .leading
                    .as_ref()
                    .and_then(|(guard, _, out)| Some((*guard, out.first().copied()?)));
                if let Some((guard, chunk)) = decided {
                    let at = thaw + sim.latency();
                    sim.post(
                        at,
                        Msg::Request(victim, life, Request::Commit(guard, chunk)),
                    );
                }
            } else if fault == 0 {
                // kill -9, back after 1-4 s as a new process.
                sim.out.crashes += 1;
                let cand = &mut sim.candidates[victim];
                cand.up = false;
                cand.life += 1;
                cand.leading = None;
                let back = sim.now + rng.range(1000, 4000) * MS;
                sim.candidates[victim].cut_until = back;
                // Restart marker: a message to itself.
                sim.post(back, Msg::Done(victim, u64::MAX, u64::MAX));
            } else {
                sim.out.partitions += 1;
                sim.candidates[victim].cut_until = sim.now + rng.range(1000, 6000) * MS;
            }
        }
        while sim.queue.peek().is_some_and(|r| r.0 .0 <= sim.now) {
            let std::cmp::Reverse((_, _, id)) = sim.queue.pop().expect("peeked");
            let msg = sim.messages.remove(&id).expect("posted");
            if let Msg::Done(c, u64::MAX, u64::MAX) = msg {
                let cand = &mut sim.candidates[c];
                cand.up = true;
                cand.election = Election::new(config, base + Duration::from_micros(sim.now));
                continue;
            }
            sim.deliver(msg);
        }
        sim.etcd.expire(sim.now);
        let now = sim.instant();
        for c in 0..n {
            if sim.candidates[c].up && sim.candidates[c].frozen_until <= sim.now {
                sim.candidates[c].election.handle_timeout(now);
                sim.drive(c);
            }
        }
        let acting = (0..n).filter(|c| sim.acting(*c)).count();
        if acting > 1 {
            sim.out.overlaps += 1;
        }
    }
    sim.out.lost = sim.chunks - sim.etcd.committed.len() as u64;
    sim.out
}
