//! The coordinator's journal driven directly: records emitted, replies held until
//! their records are durable, and a coordinator rebuilt from what a store kept.

use picluster_core::coordinator::{
    Coordinator, CoordinatorConfig, Inbound, Record, Snapshot, Transmit, JOURNAL_FORMAT,
};
use picluster_core::identity::{PeerIdentity, Role};
use picluster_core::ids::{ConnId, JobId, LeaseId, RequestId};
use picluster_core::job::{JobKind, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::kernel::SearchKernel;
use picluster_core::wire::*;
use picluster_suite::fixtures::{easy_target, reference_scan, vectors};
use std::time::{Duration, Instant};

mod credentials;
mod outage;
mod shares;

const CLIENT: ConnId = ConnId(100);
const T0_MS: u64 = 1_764_600_000_000;

/// A journaled coordinator and the store it writes to (a folded snapshot).
struct Durable {
    core: Coordinator,
    store: Snapshot,
    now: Instant,
    start: Instant,
    next_conn: u64,
    client: ConnId,
    /// Every batch written, in order.
    batches: Vec<Vec<Record>>,
}

impl Durable {
    fn new(config: CoordinatorConfig) -> Durable {
        let now = Instant::now();
        let core = Coordinator::recover(config, Snapshot::default(), now, T0_MS).unwrap();
        let mut d = Durable {
            core,
            store: Snapshot::default(),
            now,
            start: now,
            next_conn: 1,
            client: CLIENT,
            batches: Vec::new(),
        };
        d.connect_client();
        d
    }

    fn config() -> CoordinatorConfig {
        CoordinatorConfig {
            min_chunk: 1 << 12,
            max_chunk: 1 << 12,
            checkpoint_interval: Duration::from_secs(1),
            ..CoordinatorConfig::default()
        }
    }

    fn connect_client(&mut self) {
        self.client = ConnId(1000 + self.next_conn);
        self.next_conn += 1;
        let (now, client) = (self.now, self.client);
        self.core
            .handle_connected(now, client, PeerIdentity::new(Role::Admin, "admin"));
        self.say(ClientToCoord::Hello(ClientHello {
            minor: picluster_core::wire::PROTOCOL_MINOR,
            client_version: "t".into(),
        }));
        self.sync();
    }

    fn say(&mut self, m: ClientToCoord) {
        let (now, client) = (self.now, self.client);
        self.core.handle_inbound(now, client, Inbound::Client(m));
    }

    fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.core.poll_transmit(self.now)).collect()
    }

    /// Writes every record and tells the coordinator; returns what it sent meanwhile.
    fn sync(&mut self) -> Vec<Transmit> {
        let mut out = self.drain();
        while let Some((seq, records)) = self.core.poll_records() {
            self.batches.push(records.clone());
            for r in records {
                self.store.apply(r);
            }
            self.core.handle_durable(self.now, seq);
            out.extend(self.drain());
        }
        out
    }

    /// The coordinator dies; a new one starts from the store.
    fn crash(&mut self) {
        let wall = T0_MS + (self.now - self.start).as_millis() as u64;
        self.core =
            Coordinator::recover(Durable::config(), self.store.clone(), self.now, wall).unwrap();
        self.connect_client();
    }

    fn add_worker(&mut self, name: &str) -> ConnId {
        self.add_worker_speaking(name, 0)
    }

    /// A worker whose hello offers `minor` (from 1 on it says what it holds next).
    fn add_worker_speaking(&mut self, name: &str, minor: u16) -> ConnId {
        self.add_worker_as(PeerIdentity::new(Role::Worker, name), minor)
    }

    /// A worker with the certificate of `identity` whose hello offers `minor`.
    fn add_worker_as(&mut self, identity: PeerIdentity, minor: u16) -> ConnId {
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        self.core.handle_connected(self.now, conn, identity);
        self.core.handle_inbound(
            self.now,
            conn,
            Inbound::Worker(WorkerToCoord::Hello(WorkerHello {
                minor,
                agent_version: "t".into(),
                threads: 1,
                arch: "x86_64".into(),
                kernel_impl: "test".into(),
                bench_hps: 1_000_000,
                kernels: vec![],
            })),
        );
        conn
    }

    fn worker_says(&mut self, conn: ConnId, m: WorkerToCoord) {
        let now = self.now;
        self.core.handle_inbound(now, conn, Inbound::Worker(m));
    }

    fn submit(&mut self, job: &Sha256dJob) -> Vec<Transmit> {
        self.say(ClientToCoord::Submit(Submit {
            request: RequestId(1),
            work: WorkSpec::from(&JobKind::Sha256d(*job)),
            mode: SearchMode::All,
            priority: 0,
        }));
        self.drain()
    }
}

fn genesis(nonces: std::ops::Range<u64>) -> Sha256dJob {
    Sha256dJob::new(vectors()[0].header, Some(easy_target()), nonces, 0).unwrap()
}

fn replies(out: &[Transmit], to: ConnId) -> Vec<CoordToClient> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToClient(c, m) if *c == to => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn assigns(out: &[Transmit]) -> Vec<(ConnId, Assign)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Assign(a)) => Some((*c, a.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_submission_is_acknowledged_only_once_its_record_is_durable() {
    let mut d = Durable::new(Durable::config());
    let out = d.submit(&genesis(0..10));
    assert!(
        replies(&out, d.client).is_empty(),
        "held until durable: {out:?}"
    );
    let (seq, records) = d.core.poll_records().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0], Record::NextJob(2));
    let Record::Job(JobId(1), row) = &records[1] else {
        panic!("{records:?}")
    };
    assert_eq!(
        (row.state, row.hashes, row.submitted),
        (JobState::Queued, 0, T0_MS)
    );
    assert!(row.committed.is_empty());
    assert_eq!(d.core.poll_records(), None, "taken once");
    d.core.handle_durable(d.now, seq);
    assert_eq!(
        replies(&d.drain(), d.client),
        vec![CoordToClient::Submitted(JobRequest {
            request: RequestId(1),
            job: JobId(1)
        })]
    );
}

#[test]
fn a_restarted_coordinator_resumes_from_checkpoints_and_keeps_reports_and_ids() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker("pi-1");
    let done_job = genesis(0..100);
    let mut out = d.submit(&done_job);
    let job = genesis(0..1 << 14);
    out.extend(d.submit(&job));
    out.extend(d.sync());
    // Finish the small job, and two chunks of the big one; checkpoint; then one more
    // chunk that the crash loses.
    let mut held = assigns(&out);
    let kernel = |j: &Sha256dJob, a: &Assign| {
        let mut hits = Vec::new();
        j.kernel().scan(a.start..a.end, &mut hits);
        hits
    };
    let report = |d: &mut Durable, a: &Assign| {
        let j = if a.job == JobId(1) { &done_job } else { &job };
        let hits = kernel(j, a);
        if !hits.is_empty() {
            d.core.handle_inbound(
                d.now,
                w,
                Inbound::Worker(WorkerToCoord::Found(Found {
                    lease: a.lease,
                    indices: hits,
                })),
            );
        }
        d.core.handle_inbound(
            d.now,
            w,
            Inbound::Worker(WorkerToCoord::Progress(Progress {
                lease: a.lease,
                position: a.end,
            })),
        );
    };
    let mut big_done = 0;
    while big_done < 2 {
        let (_, a) = held.remove(0);
        report(&mut d, &a);
        if a.job == JobId(2) {
            big_done += 1;
        }
        held.extend(assigns(&d.sync()));
    }
    d.now += Duration::from_secs(1);
    d.core.handle_timeout(d.now);
    d.sync();
    let checkpointed = d.store.jobs[&JobId(2)].clone();
    assert_eq!(checkpointed.hashes, 2 << 12);
    assert_eq!(
        checkpointed
            .committed
            .iter()
            .map(|(a, b)| b - a)
            .sum::<u64>(),
        2 << 12
    );
    assert_eq!(d.store.jobs[&JobId(1)].state, JobState::Completed);
    let (_, a) = held.remove(0);
    report(&mut d, &a);
    d.sync();
    assert_eq!(
        d.store.jobs[&JobId(2)].hashes,
        2 << 12,
        "not checkpointed yet"
    );

    let started: Vec<Option<u64>> = [JobId(1), JobId(2)]
        .iter()
        .map(|id| d.core.report(*id, d.now).unwrap().times.started_ms)
        .collect();
    assert!(started.iter().all(Option::is_some), "{started:?}");
    d.crash();
    // The finished job keeps its report; the live one resumes from its checkpoint.
    let now = d.now;
    let r1 = d.core.report(JobId(1), now).unwrap();
    assert_eq!(r1.state, JobState::Completed);
    // Both still say when they started (it was lost with the process).
    let after: Vec<Option<u64>> = [JobId(1), JobId(2)]
        .iter()
        .map(|id| d.core.report(*id, now).unwrap().times.started_ms)
        .collect();
    assert_eq!(after, started);
    let expected1: Vec<u32> = reference_scan(&done_job.header, &done_job.target, 0..100);
    assert_eq!(
        r1.solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        expected1
    );
    let r2 = d.core.report(JobId(2), now).unwrap();
    assert_eq!((r2.state, r2.hashes), (JobState::Queued, 2 << 12));
    // Ids continue.
    let out = d.submit(&genesis(0..10));
    assert!(replies(&out, d.client).is_empty());
    let out = d.sync();
    assert!(
        replies(&out, d.client).contains(&CoordToClient::Submitted(JobRequest {
            request: RequestId(1),
            job: JobId(3)
        }))
    );
    // A worker finishes the big job: every index once, the same answer as one process.
    let mut held = assigns(&out);
    d.add_worker("pi-2");
    d.say(ClientToCoord::Watch(JobRequest {
        request: RequestId(4),
        job: JobId(2),
    }));
    held.extend(assigns(&d.sync()));
    let mut finished = None;
    let mut waited = false;
    for _ in 0..1000 {
        if held.is_empty() && !waited {
            // pi-1's leases of the old run are held for it for a lease timeout.
            waited = true;
            d.now += Durable::config().lease_timeout;
            d.core.handle_timeout(d.now);
            held.extend(assigns(&d.sync()));
        }
        let Some((conn, a)) = (!held.is_empty()).then(|| held.remove(0)) else {
            break;
        };
        let j = if a.job == JobId(2) {
            job
        } else {
            genesis(0..10)
        };
        let hits = kernel(&j, &a);
        if !hits.is_empty() {
            d.core.handle_inbound(
                d.now,
                conn,
                Inbound::Worker(WorkerToCoord::Found(Found {
                    lease: a.lease,
                    indices: hits,
                })),
            );
        }
        d.core.handle_inbound(
            d.now,
            conn,
            Inbound::Worker(WorkerToCoord::Progress(Progress {
                lease: a.lease,
                position: a.end,
            })),
        );
        let out = d.sync();
        held.extend(assigns(&out));
        for m in replies(&out, d.client) {
            if let CoordToClient::Finished(r) = m {
                if r.job == JobId(2) {
                    finished = Some(r);
                }
            }
        }
    }
    let r2 = finished.expect("the recovered job finishes");
    assert_eq!(
        (r2.state, r2.hashes, r2.keyspace),
        (JobState::Completed, 1 << 14, 1 << 14)
    );
    let expected: Vec<u64> = reference_scan(&job.header, &job.target, 0..1 << 14)
        .into_iter()
        .map(u64::from)
        .collect();
    assert_eq!(
        r2.solutions.iter().map(|s| s.index).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        r2.contributions.iter().map(|c| c.hashes).sum::<u64>(),
        1 << 14
    );
}

#[test]
fn a_store_with_an_invalid_job_is_refused_naming_the_job() {
    let mut d = Durable::new(Durable::config());
    d.submit(&genesis(0..10));
    d.sync();
    let mut store = d.store.clone();
    let row = store.jobs.get_mut(&JobId(1)).unwrap();
    let WorkSpec::Sha256d(w) = &mut row.work else {
        unreachable!()
    };
    w.header.truncate(3);
    let err = Coordinator::recover(Durable::config(), store, d.now, T0_MS).unwrap_err();
    assert_eq!(
        err.to_string(),
        "stored job j1 is not a valid job: header is 3 bytes, expected 80"
    );
}

#[test]
fn a_workers_leases_outlive_a_coordinator_crash_and_are_adopted_not_redone() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w, WorkerToCoord::Holding(Holding { leases: vec![] }));
    let job = genesis(0..1 << 18);
    let expected: Vec<u64> = reference_scan(&job.header, &job.target, 0..1 << 18)
        .into_iter()
        .map(u64::from)
        .collect();
    let solutions_in = |r: std::ops::Range<u64>| -> Vec<u64> {
        expected.iter().copied().filter(|i| r.contains(i)).collect()
    };
    let mut out = d.submit(&job);
    out.extend(d.sync());
    let first = assigns(&out);
    assert!(!first.is_empty());
    let (_, a) = first[0].clone();
    let digest = a.work.digest();
    // 1000 indices reported and checkpointed (with the leases); 2000 more and their
    // solutions reported, lost with the crash.
    d.worker_says(
        w,
        WorkerToCoord::Progress(Progress {
            lease: a.lease,
            position: a.start + 1000,
        }),
    );
    d.now += Duration::from_secs(1);
    d.core.handle_timeout(d.now);
    d.sync();
    let row = &d.store.jobs[&JobId(1)];
    assert_eq!(row.hashes, 1000);
    assert!(
        row.leases
            .iter()
            .any(|l| l.lease == a.lease.0 && l.worker == "pi-1" && l.position == a.start + 1000),
        "{:?}",
        row.leases
    );
    let orphans: Vec<(u64, u64)> = row.leases.iter().map(|l| (l.position, l.end)).collect();
    let found = solutions_in(a.start..a.start + 3000);
    assert!(!found.is_empty(), "the easy target has solutions there");
    d.worker_says(
        w,
        WorkerToCoord::Found(Found {
            lease: a.lease,
            indices: found.clone(),
        }),
    );
    d.worker_says(
        w,
        WorkerToCoord::Progress(Progress {
            lease: a.lease,
            position: a.start + 3000,
        }),
    );
    d.drain();
    d.crash();
    assert_eq!(d.core.report(JobId(1), d.now).unwrap().hashes, 1000);

    // Another worker gets none of pi-1's ranges meanwhile.
    let w2 = d.add_worker_speaking("pi-2", PROTOCOL_MINOR);
    d.worker_says(w2, WorkerToCoord::Holding(Holding { leases: vec![] }));
    let mut held = assigns(&d.sync());
    assert!(!held.is_empty());
    for (_, b) in &held {
        for (p, e) in &orphans {
            assert!(b.end <= *p || b.start >= *e, "{b:?} overlaps {p}..{e}");
        }
    }
    // pi-1 comes back holding lease a (3000 searched) and a claim that is not its.
    let w1 = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(
        w1,
        WorkerToCoord::Holding(Holding {
            leases: vec![
                HeldLease {
                    lease: a.lease,
                    job: JobId(1),
                    work: digest,
                    start: a.start,
                    position: a.start + 3000,
                    end: a.end,
                    found: found.clone(),
                },
                HeldLease {
                    lease: LeaseId(77),
                    job: JobId(1),
                    work: [7; 32],
                    start: 0,
                    position: 0,
                    end: 10,
                    found: vec![],
                },
            ],
        }),
    );
    let out = d.sync();
    let stops: Vec<LeaseId> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Stop(s)) if *c == w1 => Some(s.lease),
            _ => None,
        })
        .collect();
    assert_eq!(stops, vec![LeaseId(77)], "{out:?}");
    assert!(
        !out.iter().any(|t| matches!(t, Transmit::Close(..))),
        "{out:?}"
    );
    assert_eq!(
        d.core.report(JobId(1), d.now).unwrap().hashes,
        3000,
        "adopted, not redone"
    );
    assert_eq!(
        d.store.solutions[&JobId(1)]
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        found,
        "the held solutions are durable again"
    );
    held.extend(assigns(&out));
    // pi-1 finishes lease a under its old id; everything else is searched.
    held.insert(
        0,
        (
            w1,
            Assign {
                start: a.start + 3000,
                ..a.clone()
            },
        ),
    );
    let mut finished = None;
    for _ in 0..1000 {
        let Some((conn, b)) = (!held.is_empty()).then(|| held.remove(0)) else {
            break;
        };
        let hits = solutions_in(b.start..b.end);
        if !hits.is_empty() {
            d.worker_says(
                conn,
                WorkerToCoord::Found(Found {
                    lease: b.lease,
                    indices: hits,
                }),
            );
        }
        d.worker_says(
            conn,
            WorkerToCoord::Progress(Progress {
                lease: b.lease,
                position: b.end,
            }),
        );
        let out = d.sync();
        assert!(
            !out.iter().any(|t| matches!(t, Transmit::Close(..))),
            "{out:?}"
        );
        held.extend(assigns(&out));
        if let Some(r) = d
            .core
            .report(JobId(1), d.now)
            .filter(|r| r.state.is_final())
        {
            finished = Some(r);
        }
    }
    let r = finished.expect("the job finishes");
    assert_eq!(
        (r.state, r.hashes, r.keyspace),
        (JobState::Completed, 1 << 18, 1 << 18)
    );
    assert_eq!(
        r.solutions.iter().map(|s| s.index).collect::<Vec<_>>(),
        expected
    );
}

#[test]
fn forget_and_prune_remove_finished_jobs_durably_and_refuse_live_ones() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker("pi-1");
    // j1 and j2 finish; j3 stays queued (no worker takes it once pi-1 is drained).
    for nonces in [0..10, 0..20] {
        let mut out = d.submit(&genesis(nonces));
        out.extend(d.sync());
        for (_, a) in assigns(&out) {
            d.worker_says(
                w,
                WorkerToCoord::Progress(Progress {
                    lease: a.lease,
                    position: a.end,
                }),
            );
        }
        d.sync();
    }
    d.say(ClientToCoord::Drain(Drain {
        request: RequestId(5),
        worker: "pi-1".into(),
        drain: true,
        reason: None,
    }));
    d.submit(&genesis(0..30));
    d.sync();
    let states: Vec<JobState> = d
        .core
        .jobs(d.now)
        .iter()
        .map(|j| j.progress.state)
        .collect();
    assert_eq!(
        states,
        vec![JobState::Completed, JobState::Completed, JobState::Queued]
    );

    d.say(ClientToCoord::Forget(JobRequest {
        request: RequestId(6),
        job: JobId(3),
    }));
    d.say(ClientToCoord::Forget(JobRequest {
        request: RequestId(7),
        job: JobId(9),
    }));
    d.say(ClientToCoord::Forget(JobRequest {
        request: RequestId(8),
        job: JobId(1),
    }));
    // Refusals change nothing and go at once; the removal waits for its record.
    let out = d.drain();
    assert_eq!(
        replies(&out, d.client),
        vec![
            CoordToClient::Refused(RequestId(6), Refusal::NotFinished(JobId(3))),
            CoordToClient::Refused(RequestId(7), Refusal::UnknownJob(JobId(9))),
        ]
    );
    let out = d.sync();
    assert_eq!(
        replies(&out, d.client),
        vec![CoordToClient::Forgotten(JobRequest {
            request: RequestId(8),
            job: JobId(1)
        })]
    );
    assert!(!d.store.jobs.contains_key(&JobId(1)));
    assert!(d.store.jobs.contains_key(&JobId(2)));
    d.say(ClientToCoord::Prune(RequestId(9)));
    let out = d.sync();
    assert_eq!(
        replies(&out, d.client),
        vec![CoordToClient::Pruned(RequestId(9), 1)]
    );
    assert_eq!(
        d.store.jobs.keys().copied().collect::<Vec<_>>(),
        vec![JobId(3)]
    );
    // Gone for good: a restarted coordinator knows only j3, and ids continue.
    d.crash();
    let ids: Vec<JobId> = d.core.jobs(d.now).iter().map(|j| j.progress.job).collect();
    assert_eq!(ids, vec![JobId(3)]);
    assert!(d.core.report(JobId(2), d.now).is_none());
    d.submit(&genesis(0..10));
    let out = d.sync();
    assert!(
        replies(&out, d.client).contains(&CoordToClient::Submitted(JobRequest {
            request: RequestId(1),
            job: JobId(4)
        }))
    );
}

#[test]
fn a_completed_report_waits_for_the_jobs_solutions_not_its_final_row() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker("pi-1");
    // First mode, an easy target: the first chunk holds solutions.
    let job = genesis(0..1 << 12);
    d.say(ClientToCoord::Submit(Submit {
        request: RequestId(1),
        work: WorkSpec::from(&JobKind::Sha256d(job)),
        mode: SearchMode::First,
        priority: 0,
    }));
    let out = d.sync();
    let (_, a) = assigns(&out).remove(0);
    d.say(ClientToCoord::Watch(JobRequest {
        request: RequestId(2),
        job: JobId(1),
    }));
    let out = d.sync();
    assert!(matches!(
        replies(&out, d.client)[..],
        [CoordToClient::Watching(..)]
    ));
    let mut hits = Vec::new();
    job.kernel().scan(a.start..a.end, &mut hits);
    d.worker_says(
        w,
        WorkerToCoord::Found(Found {
            lease: a.lease,
            indices: hits.clone(),
        }),
    );
    // The report waits for the solutions to be durable.
    assert!(replies(&d.drain(), d.client).is_empty());
    let (seq, records) = d.core.poll_records().unwrap();
    assert!(
        records
            .iter()
            .all(|r| matches!(r, Record::Solution(..) | Record::Finder(..))),
        "the final row waits for the next checkpoint: {records:?}"
    );
    // The solutions reach the store, the final row does not before the coordinator
    // dies: the report went out, and the restarted coordinator ends the job the
    // same way.
    for r in records {
        d.store.apply(r);
    }
    d.core.handle_durable(d.now, seq);
    let out = d.drain();
    // The watcher gets the solutions as they became durable, then the report.
    let [CoordToClient::Solutions(_, streamed), CoordToClient::Finished(report)] =
        &replies(&out, d.client)[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(report.state, JobState::Completed);
    // (A first-mode report keeps the first; every one verified was streamed.)
    assert!(report.solutions.iter().all(|s| streamed.contains(s)));
    assert_eq!(streamed.len(), hits.len());
    d.crash();
    let again = d.core.report(JobId(1), d.now).unwrap();
    assert_eq!(again.state, JobState::Completed);
    assert_eq!(again.solutions, report.solutions);
    let out = d.sync();
    assert!(assigns(&out).is_empty(), "nothing searched again");
    assert_eq!(d.store.jobs[&JobId(1)].state, JobState::Completed);

    // A one-chunk job without solutions: its report goes out before its final row
    // is durable; lost, the job runs again to the same end.
    let w = d.add_worker("pi-2");
    let mut out = d.submit(&genesis(0..10));
    out.extend(d.sync());
    let (_, a) = assigns(&out).remove(0);
    d.say(ClientToCoord::Watch(JobRequest {
        request: RequestId(3),
        job: JobId(2),
    }));
    d.sync();
    d.worker_says(
        w,
        WorkerToCoord::Progress(Progress {
            lease: a.lease,
            position: a.end,
        }),
    );
    let out = d.drain();
    assert!(
        matches!(&replies(&out, d.client)[..], [CoordToClient::Finished(r)] if r.state == JobState::Completed),
        "{out:?}"
    );
    assert_eq!(
        d.core.poll_records(),
        None,
        "the final row waits for a checkpoint"
    );
    d.crash();
    assert_eq!(
        d.core.report(JobId(2), d.now).unwrap().state,
        JobState::Queued
    );
}

#[test]
fn a_quarantine_outlives_a_restart_until_an_admin_releases_it() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker("liar");
    let job = Sha256dJob::new(vectors()[0].header, None, 0..4096, 0).unwrap();
    let mut out = d.submit(&job);
    out.extend(d.sync());
    let (_, a) = assigns(&out).remove(0);
    d.worker_says(
        w,
        WorkerToCoord::Found(Found {
            lease: a.lease,
            indices: vec![a.start],
        }),
    );
    d.sync();
    assert!(d.store.quarantined.contains("liar"));
    d.crash();
    // Its count of false claims (a counter for Prometheus) does not restart at 0.
    let rejected = |d: &Durable| {
        d.core
            .metrics(d.now)
            .workers
            .iter()
            .find(|w| w.name == "liar")
            .map(|w| w.totals.rejected)
    };
    assert_eq!(rejected(&d), Some(1));
    let w = d.add_worker("liar");
    let out = d.sync();
    assert!(
        out.iter().any(
            |t| matches!(t, Transmit::Close(c, r) if *c == w && r.code() == CloseCode::BadResult)
        ),
        "{out:?}"
    );
    d.say(ClientToCoord::Release(WorkerRequest {
        request: RequestId(5),
        worker: "liar".into(),
    }));
    let out = d.sync();
    assert_eq!(
        replies(&out, d.client),
        vec![CoordToClient::ReleasedWorker(RequestId(5), "liar".into())]
    );
    assert!(d.store.quarantined.is_empty());
    let w = d.add_worker("liar");
    assert!(!d
        .sync()
        .iter()
        .any(|t| matches!(t, Transmit::Close(c, _) if *c == w)));
}

mod store {
    use super::*;
    use picluster_core::service::{RedbStore, Store, StoreError};

    fn records() -> Vec<Record> {
        let mut d = Durable::new(Durable::config());
        d.add_worker("pi-1");
        d.submit(&genesis(0..100));
        d.submit(&genesis(0..10));
        d.say(ClientToCoord::Cancel(JobRequest {
            request: RequestId(2),
            job: JobId(2),
        }));
        d.say(ClientToCoord::Drain(Drain {
            request: RequestId(3),
            worker: "pi-1".into(),
            drain: true,
            reason: None,
        }));
        d.drain();
        d.core.poll_records().unwrap().1
    }

    #[test]
    fn what_a_store_gives_back_is_what_the_records_fold_to() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        let records = records();
        let mut folded = Snapshot::default();
        for r in records.clone() {
            folded.apply(r);
        }
        assert_eq!(folded.jobs.len(), 2);
        assert_eq!(folded.jobs[&JobId(2)].state, JobState::Cancelled);
        assert!(folded.drained.contains("pi-1"));
        {
            let mut store = RedbStore::open(&path).unwrap();
            let (first, rest) = records.split_at(3);
            store.commit(first).unwrap();
            store.commit(rest).unwrap();
        }
        let mut store = RedbStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), folded);
        store.commit(&[Record::Forget(JobId(1))]).unwrap();
        folded.apply(Record::Forget(JobId(1)));
        assert_eq!(store.load().unwrap(), folded);
        let marks = [
            Record::Quarantined("pi-7".into(), true),
            Record::Quarantined("pi-8".into(), true),
            Record::Quarantined("pi-7".into(), false),
            Record::NextLease(1 << 40),
            Record::Renewed("pi-1".into(), T0_MS),
            Record::Rejected("pi-7".into(), 2),
            Record::ShareBits(JobId(2), vec![(5, 16), (6, 20)]),
            Record::LeaseShares(JobId(2), vec![(5, vec![70, 71]), (6, vec![90])]),
            Record::LeaseShares(JobId(2), vec![(6, vec![91])]),
            Record::Started(JobId(2), T0_MS + 5),
        ];
        store.commit(&marks).unwrap();
        for r in marks {
            folded.apply(r);
        }
        let loaded = store.load().unwrap();
        assert_eq!(loaded, folded);
        assert_eq!(
            loaded.quarantined.into_iter().collect::<Vec<_>>(),
            vec!["pi-8".to_string()]
        );
        assert_eq!(loaded.next_lease, 1 << 40);
        // A job's lease shares are replaced by its next record, and go with it.
        assert_eq!(
            loaded.lease_shares[&JobId(2)],
            [(6, [91].into_iter().collect())].into_iter().collect()
        );
        store.commit(&[Record::Forget(JobId(2))]).unwrap();
        folded.apply(Record::Forget(JobId(2)));
        let loaded = store.load().unwrap();
        assert_eq!(loaded, folded);
        assert!(loaded.lease_shares.is_empty() && loaded.share_bits.is_empty());
        assert!(loaded.started.is_empty());
    }

    /// The batches a coordinator writes through a job's life: submission, progress
    /// with solutions and checkpoints, more jobs, a cancel, a drain, a removal.
    fn journal_batches() -> Vec<Vec<Record>> {
        let mut d = Durable::new(Durable::config());
        let w = d.add_worker("pi-1");
        let job = genesis(0..1 << 14);
        let mut out = d.submit(&job);
        out.extend(d.sync());
        let mut held = assigns(&out);
        while let Some((_, a)) = (!held.is_empty()).then(|| held.remove(0)) {
            let mut hits = Vec::new();
            job.kernel().scan(a.start..a.end, &mut hits);
            if !hits.is_empty() {
                d.worker_says(
                    w,
                    WorkerToCoord::Found(Found {
                        lease: a.lease,
                        indices: hits,
                    }),
                );
            }
            d.worker_says(
                w,
                WorkerToCoord::Progress(Progress {
                    lease: a.lease,
                    position: a.end,
                }),
            );
            d.now += Duration::from_millis(400);
            d.core.handle_timeout(d.now);
            held.extend(assigns(&d.sync()));
        }
        d.submit(&genesis(0..10));
        d.say(ClientToCoord::Cancel(JobRequest {
            request: RequestId(2),
            job: JobId(2),
        }));
        d.sync();
        d.say(ClientToCoord::Drain(Drain {
            request: RequestId(3),
            worker: "pi-1".into(),
            drain: true,
            reason: None,
        }));
        d.sync();
        d.say(ClientToCoord::Forget(JobRequest {
            request: RequestId(4),
            job: JobId(2),
        }));
        d.sync();
        d.batches
    }

    /// One damaged copy of a store file.
    struct Damage {
        what: String,
        bytes: Vec<u8>,
    }

    /// Damage confined to what the last commit wrote: the pages that differ between
    /// `before` and `after` (copy-on-write: nothing else changed), as a crash, a
    /// torn write or a failing SD card would leave them.
    fn damages(before: &[u8], after: &[u8], rng: &mut picluster_suite::sim::Rng) -> Vec<Damage> {
        const PAGE: usize = 4096;
        let page = |b: &[u8], i: usize| -> Vec<u8> {
            let mut p = b.get(i * PAGE..).unwrap_or_default().to_vec();
            p.resize(PAGE, 0);
            p.truncate(PAGE);
            p
        };
        let len = before.len().max(after.len());
        let pages = len.div_ceil(PAGE);
        let changed: Vec<usize> = (0..pages)
            .filter(|&i| page(before, i) != page(after, i))
            .collect();
        assert!(!changed.is_empty(), "the last commit wrote something");
        let mut out = Vec::new();
        // Cut short anywhere from where the last commit began writing.
        let from = changed[0] * PAGE;
        for k in 0..24 {
            let at = from
                + (after.len().saturating_sub(from)) * k / 24
                + rng.below(PAGE as u64) as usize;
            let at = at.min(after.len());
            out.push(Damage {
                what: format!("truncated at {at}"),
                bytes: after[..at].to_vec(),
            });
        }
        let with_pages = |base: &[u8], from: &[u8], which: &[usize]| -> Vec<u8> {
            let mut b = base.to_vec();
            b.resize(len, 0);
            for &i in which {
                let p = page(from, i);
                let end = ((i + 1) * PAGE).min(len);
                b[i * PAGE..end].copy_from_slice(&p[..end - i * PAGE]);
            }
            b
        };
        // Torn writes: some pages of the commit reached the card, others did not.
        for &i in &changed {
            out.push(Damage {
                what: format!("only page {i} of the last commit written"),
                bytes: with_pages(before, after, &[i]),
            });
            out.push(Damage {
                what: format!("page {i} of the last commit not written"),
                bytes: with_pages(after, before, &[i]),
            });
        }
        for k in 0..16 {
            let some: Vec<usize> = changed
                .iter()
                .copied()
                .filter(|_| rng.below(2) == 0)
                .collect();
            out.push(Damage {
                what: format!("torn write {k}: pages {some:?} written"),
                bytes: with_pages(before, after, &some),
            });
        }
        // Corrupted: zeroed pages, flipped bits.
        for &i in &changed {
            let mut b = after.to_vec();
            let end = ((i + 1) * PAGE).min(b.len());
            if i * PAGE < end {
                b[i * PAGE..end].fill(0);
            }
            out.push(Damage {
                what: format!("page {i} zeroed"),
                bytes: b,
            });
        }
        for k in 0..32 {
            let i = changed[rng.below(changed.len() as u64) as usize];
            let at =
                (i * PAGE + rng.below(PAGE as u64) as usize).min(after.len().saturating_sub(1));
            let mut b = after.to_vec();
            b[at] ^= 1 << rng.below(8);
            out.push(Damage {
                what: format!("bit flip {k} at byte {at}"),
                bytes: b,
            });
        }
        out
    }

    #[test]
    fn a_store_damaged_in_its_last_writes_opens_to_an_earlier_state_or_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        let batches = journal_batches();
        assert!(batches.len() > 6, "{}", batches.len());
        // The state after each prefix of the journal, and the file after each commit
        // (taken while the store is open, as a kill -9 leaves it).
        let mut states = vec![Snapshot::default()];
        let mut files = Vec::new();
        {
            let mut store = RedbStore::open(&path).unwrap();
            files.push(std::fs::read(&path).unwrap());
            let mut folded = Snapshot::default();
            for batch in &batches {
                store.commit(batch).unwrap();
                for r in batch.clone() {
                    folded.apply(r);
                }
                states.push(folded.clone());
                files.push(std::fs::read(&path).unwrap());
            }
        }
        let mut rng = picluster_suite::sim::Rng(0x5d_ca4d);
        let (mut latest, mut earlier, mut refused, mut contained) = (0, 0, 0, 0);
        let damaged = tmp.path().join("damaged.redb");
        // The last few commits, each as the one a crash interrupted.
        for k in files.len() - 4..files.len() {
            for damage in damages(&files[k - 1], &files[k], &mut rng) {
                std::fs::write(&damaged, &damage.bytes).unwrap();
                let opened = std::panic::catch_unwind(|| {
                    RedbStore::open(&damaged).and_then(|mut s| s.load())
                });
                let Ok(opened) = opened else {
                    panic!("commit {k}, {}: the store panicked", damage.what);
                };
                match opened {
                    Ok(snapshot) => {
                        let Some(at) = states.iter().position(|s| *s == snapshot) else {
                            panic!(
                                "commit {k}, {}: opened to a state no prefix of the journal had",
                                damage.what
                            );
                        };
                        assert!(
                            at <= k,
                            "commit {k}, {}: a state from the future",
                            damage.what
                        );
                        if at == k {
                            latest += 1;
                        } else {
                            earlier += 1;
                        }
                        // And a coordinator starts from it.
                        Coordinator::recover(Durable::config(), snapshot, Instant::now(), T0_MS)
                            .unwrap();
                    }
                    Err(e) => {
                        refused += 1;
                        contained += u32::from(matches!(e, StoreError::Damaged { .. }));
                        let message = e.to_string();
                        assert!(
                            message.starts_with(&format!("{}: ", damaged.display())),
                            "commit {k}, {}: {message}",
                            damage.what
                        );
                    }
                }
            }
        }
        eprintln!(
            "damaged stores: {latest} opened to the last commit, {earlier} to an earlier one, {refused} refused ({contained} after a failed check inside redb)"
        );
        assert!(earlier + refused > 0);
    }

    #[test]
    fn a_damaged_store_is_refused_with_the_file_and_what_to_do() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        std::fs::write(&path, b"not a database at all, just bytes").unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}: the job store is damaged (", path.display())),
            "{message}"
        );
        assert!(message.contains("move it aside"), "{message}");
        // Nothing was overwritten.
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"not a database at all, just bytes"
        );
    }

    #[test]
    fn a_store_in_use_by_another_coordinator_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        let _first = RedbStore::open(&path).unwrap();
        let err = RedbStore::open(&path).unwrap_err();
        assert!(err.to_string().contains("another coordinator"), "{err}");
    }

    #[test]
    fn a_store_of_another_format_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        drop(RedbStore::open(&path).unwrap());
        let set_format = |format: u64| {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn
                    .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
                    .unwrap();
                meta.insert("format", format).unwrap();
            }
            txn.commit().unwrap();
        };
        set_format(99);
        let err = RedbStore::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: job store format 99 is newer than this build reads ({JOURNAL_FORMAT}): run the picluster version that wrote it",
                path.display()
            )
        );
        set_format(1);
        let err = RedbStore::open(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: job store format 1 is from a pre-release build and cannot be read (this build writes {JOURNAL_FORMAT}): move the file aside to start with no jobs",
                path.display()
            )
        );
        // Refusing changed nothing.
        let db = redb::Database::open(&path).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let meta = txn
            .open_table(redb::TableDefinition::<&str, u64>::new("meta"))
            .unwrap();
        assert_eq!(meta.get("format").unwrap().unwrap().value(), 1);
    }

    #[test]
    fn a_row_that_does_not_decode_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.redb");
        drop(RedbStore::open(&path).unwrap());
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut jobs = txn
                    .open_table(redb::TableDefinition::<u64, &[u8]>::new("jobs"))
                    .unwrap();
                jobs.insert(7, [0xffu8, 0xff, 0xff].as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let err = RedbStore::open(&path).unwrap().load().unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "{}: stored job j7 does not decode",
                path.display()
            )),
            "{err}"
        );
    }
}
