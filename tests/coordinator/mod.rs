//! The coordinator state machine driven directly: no sockets, no clock, exact counts.

use picluster_core::coordinator::{Coordinator, CoordinatorConfig, Inbound, Overflow, Transmit};
use picluster_core::identity::{PeerIdentity, Role};
use picluster_core::ids::{ConnId, JobId, LeaseId, RequestId, WorkerId};
use picluster_core::job::{JobKind, SearchMode};
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::kernel::SearchKernel;
use picluster_core::wire::*;
use picluster_suite::fixtures::{easy_target, vectors};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod audits;
mod creeping;
mod leases;
mod limits;

struct Harness {
    core: Coordinator,
    now: Instant,
}

const CLIENT: ConnId = ConnId(100);

impl Harness {
    fn new(config: CoordinatorConfig) -> Harness {
        let now = Instant::now();
        let mut h = Harness {
            core: Coordinator::new(config, now),
            now,
        };
        h.core
            .handle_connected(h.now, CLIENT, PeerIdentity::new(Role::Admin, "admin"));
        // A client of minor 3: refusals come as the text of minor 3 (a client of
        // minor 4 gets them typed: `typed_refusals_for_clients_of_minor_4`).
        h.client(ClientToCoord::Hello(ClientHello {
            minor: picluster_core::wire::MINOR_CLIENT_REPORTS,
            client_version: "t".into(),
        }));
        h.drain();
        h
    }

    fn small_chunks() -> Harness {
        Harness::new(CoordinatorConfig {
            min_chunk: 1 << 12,
            max_chunk: 1 << 12,
            ..CoordinatorConfig::default()
        })
    }

    fn drain(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.core.poll_transmit(self.now)).collect()
    }

    fn client(&mut self, m: ClientToCoord) {
        self.core
            .handle_inbound(self.now, CLIENT, Inbound::Client(m));
    }

    fn worker_says(&mut self, conn: ConnId, m: WorkerToCoord) {
        self.core.handle_inbound(self.now, conn, Inbound::Worker(m));
    }

    fn progress(&mut self, conn: ConnId, lease: LeaseId, position: u64) {
        self.worker_says(conn, WorkerToCoord::Progress(Progress { lease, position }));
    }

    fn release(&mut self, conn: ConnId, lease: LeaseId, position: u64) {
        self.worker_says(conn, WorkerToCoord::Released(Released { lease, position }));
    }

    fn found(&mut self, conn: ConnId, lease: LeaseId, indices: Vec<u64>) {
        self.worker_says(conn, WorkerToCoord::Found(Found { lease, indices }));
    }

    fn add_worker(&mut self, conn: ConnId, name: &str, bench_hps: u64) {
        self.core
            .handle_connected(self.now, conn, PeerIdentity::new(Role::Worker, name));
        self.worker_says(
            conn,
            WorkerToCoord::Hello(WorkerHello {
                minor: 0,
                agent_version: "t".into(),
                threads: 1,
                arch: "x86_64".into(),
                kernel_impl: "test".into(),
                bench_hps,
                kernels: vec![],
            }),
        );
    }

    fn submit(&mut self, job: &Sha256dJob, mode: SearchMode) -> JobId {
        self.client(ClientToCoord::Submit(Submit {
            request: RequestId(1),
            work: WorkSpec::from(&JobKind::Sha256d(*job)),
            mode,
            priority: 0,
        }));
        self.client(ClientToCoord::Watch(JobRequest {
            request: RequestId(2),
            job: JobId(1),
        }));
        JobId(1)
    }
}

fn assigns(out: &[Transmit]) -> Vec<(ConnId, Assign)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Assign(a)) => Some((*c, a.clone())),
            _ => None,
        })
        .collect()
}

fn finished(out: &[Transmit]) -> Option<JobReport> {
    out.iter().find_map(|t| match t {
        Transmit::ToClient(CLIENT, CoordToClient::Finished(r)) => Some(r.clone()),
        _ => None,
    })
}

fn stops(out: &[Transmit]) -> Vec<(ConnId, LeaseId)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Stop(Stop { lease })) => Some((*c, *lease)),
            _ => None,
        })
        .collect()
}

fn closes(out: &[Transmit]) -> Vec<(ConnId, CloseCode)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::Close(c, reason) => Some((*c, reason.code())),
            _ => None,
        })
        .collect()
}

fn genesis_job(nonces: std::ops::Range<u64>) -> Sha256dJob {
    Sha256dJob::new(vectors()[0].header, Some(easy_target()), nonces, 0).unwrap()
}

/// Simulates honest workers: every held lease is scanned with the real kernel and
/// reported (solutions, then completion), one lease per worker per round.
fn run_to_completion(h: &mut Harness, job: &Sha256dJob) -> (JobReport, Vec<(ConnId, Assign)>) {
    let kernel = job.kernel();
    let mut held: BTreeMap<ConnId, Vec<Assign>> = BTreeMap::new();
    let mut all = Vec::new();
    for _round in 0..10_000 {
        let out = h.drain();
        if let Some(report) = finished(&out) {
            return (report, all);
        }
        for (conn, a) in assigns(&out) {
            held.entry(conn).or_default().push(a.clone());
            all.push((conn, a));
        }
        h.now += Duration::from_millis(10);
        let conns: Vec<ConnId> = held.keys().copied().collect();
        for conn in conns {
            let Some(a) = held
                .get_mut(&conn)
                .and_then(|v| (!v.is_empty()).then(|| v.remove(0)))
            else {
                continue;
            };
            let mut hits = Vec::new();
            kernel.scan(a.start..a.end, &mut hits);
            if !hits.is_empty() {
                h.found(conn, a.lease, hits);
            }
            h.progress(conn, a.lease, a.end);
        }
    }
    panic!("job did not finish");
}

#[test]
fn job_split_over_three_workers_completes_with_every_index_counted_once() {
    let mut h = Harness::small_chunks();
    for (i, name) in ["pi-1", "pi-2", "pi-3"].iter().enumerate() {
        h.add_worker(ConnId(i as u64 + 1), name, 1_000_000);
    }
    let job = genesis_job(1_000_000..1_000_000 + (1 << 16));
    h.submit(&job, SearchMode::All);
    let (report, assigned) = run_to_completion(&mut h, &job);

    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.keyspace, 1 << 16);
    assert_eq!(report.hashes, 1 << 16);
    // 16 chunks of 4096, spread over all three workers.
    assert_eq!(assigned.len(), 16);
    let mut ranges: Vec<(u64, u64)> = assigned.iter().map(|(_, a)| (a.start, a.end)).collect();
    ranges.sort();
    let mut expect = 0;
    for (start, end) in ranges {
        assert_eq!(
            start, expect,
            "ranges must tile the keyspace without gaps or overlap"
        );
        expect = end;
    }
    assert_eq!(expect, 1 << 16);
    let per_worker: u64 = report.contributions.iter().map(|c| c.hashes).sum();
    assert_eq!(per_worker, 1 << 16);
    assert_eq!(report.contributions.len(), 3);
    // Solutions equal the kernel's own scan of the whole keyspace, nonce by nonce
    // checked by an independent reference.
    let reference = picluster_suite::fixtures::reference_scan(
        &job.header,
        &job.target,
        1_000_000..1_000_000 + (1 << 16),
    );
    let found: Vec<u32> = report
        .solutions
        .iter()
        .map(|s| s.nonce().unwrap())
        .collect();
    assert_eq!(found, reference);
    assert!(
        found.len() > 100,
        "an easy target yields about 256 solutions"
    );
}

#[test]
fn a_new_worker_calibrates_on_small_chunks_then_gets_2_s_chunks_at_its_measured_rate() {
    let mut h = Harness::new(CoordinatorConfig::default());
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    let job = genesis_job(0..1 << 32);
    h.submit(&job, SearchMode::First);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 2, "current chunk plus one prefetched");
    // Not measured yet: 0.5 s at the benchmarked 1 MH/s.
    assert_eq!(a[0].1.end - a[0].1.start, 500_000);
    assert_eq!(a[1].1.start, a[0].1.end);
    // It turns out to do 800,000 a second.
    h.now += Duration::from_millis(625);
    h.progress(ConnId(1), a[0].1.lease, a[0].1.end);
    let b = assigns(&h.drain());
    assert_eq!(b.len(), 1);
    // 2 s at the measured 800,000 a second.
    assert_eq!(b[0].1.end - b[0].1.start, 1_600_000);
}

#[test]
fn a_remainder_of_at_most_1_2_chunks_goes_whole() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    // 4096 + 800 indices: at most 1.2 chunks, so one lease.
    let job = genesis_job(0..4096 + 800);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].1.start, a[0].1.end), (0, 4896));
}

#[test]
fn silent_worker_loses_its_leases_from_the_last_reported_position() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..8192);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 2);
    let first = a[0].1.lease;
    h.progress(ConnId(1), first, 1000);
    h.drain();
    // The watcher's progress push comes first; the lease deadline 5 s after the
    // worker was last heard.
    assert_eq!(
        h.core.poll_timeout(),
        Some(h.now + Duration::from_millis(250))
    );
    h.now += Duration::from_millis(4999);
    h.core.handle_timeout(h.now);
    assert!(stops(&h.drain()).is_empty());
    assert_eq!(
        h.core.poll_timeout(),
        Some(h.now + Duration::from_millis(1))
    );
    h.now += Duration::from_millis(1);
    h.core.handle_timeout(h.now);
    let out = h.drain();
    assert_eq!(
        stops(&out),
        vec![(ConnId(1), a[0].1.lease), (ConnId(1), a[1].1.lease)]
    );
    assert_eq!(h.core.stats().expired_leases, 2);
    assert!(assigns(&out).is_empty(), "a silent worker gets no new work");
    // A newcomer gets exactly the unfinished parts, first one first.
    h.add_worker(ConnId(2), "pi-2", 1);
    let b = assigns(&h.drain());
    assert_eq!(
        b.iter()
            .map(|(c, a)| (*c, a.start, a.end))
            .collect::<Vec<_>>(),
        vec![(ConnId(2), 1000, 4096), (ConnId(2), 4096, 8192)]
    );
    // The silent worker's late report is stale and changes nothing.
    h.progress(ConnId(1), first, 4096);
    assert_eq!(h.core.stats().stale_reports, 1);
    let jobs = h.core.jobs(h.now);
    assert_eq!(jobs[0].progress.hashes, 1000);
    // Heard from again, it may take work again.
    h.submit(&genesis_job(0..4096), SearchMode::All);
    let c = assigns(&h.drain());
    assert_eq!(
        c.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![ConnId(1)]
    );
}

#[test]
fn disconnected_worker_work_returns_to_the_queue() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..4096);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.progress(ConnId(1), a[0].1.lease, 2048);
    h.core.handle_disconnected(h.now, ConnId(1));
    assert_eq!(h.core.stats().lost_leases, 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let (report, assigned) = run_to_completion(&mut h, &job);
    assert_eq!((assigned[0].1.start, assigned[0].1.end), (2048, 4096));
    assert_eq!(report.hashes, 4096);
    assert_eq!(
        report
            .contributions
            .iter()
            .map(|c| (c.worker.as_str(), c.hashes))
            .collect::<Vec<_>>(),
        vec![("pi-1", 2048), ("pi-2", 2048)]
    );
}

#[test]
fn released_lease_is_requeued_and_leaving_worker_is_closed_normally() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..8192);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.release(ConnId(1), a[0].1.lease, 100);
    h.release(ConnId(1), a[1].1.lease, 4096);
    h.worker_says(ConnId(1), WorkerToCoord::Leaving);
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::Normal)]);
    assert!(
        assigns(&out).is_empty(),
        "a leaving worker gets nothing new"
    );
    assert_eq!(h.core.jobs(h.now)[0].progress.hashes, 100);
    h.add_worker(ConnId(2), "pi-2", 1);
    let b = assigns(&h.drain());
    assert_eq!((b[0].1.start, b[0].1.end), (100, 4096));
    assert_eq!((b[1].1.start, b[1].1.end), (4096, 8192));
}

#[test]
fn first_verified_solution_completes_the_job_and_stops_every_lease() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let job = genesis_job(0..1 << 16);
    h.submit(&job, SearchMode::First);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 4);
    let mut hits = Vec::new();
    job.kernel().scan(a[1].1.start..a[1].1.end, &mut hits);
    assert!(!hits.is_empty());
    h.found(a[1].0, a[1].1.lease, vec![hits[0]]);
    let out = h.drain();
    let report = finished(&out).expect("job finished");
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.solutions.len(), 1);
    assert_eq!(report.solutions[0].index, hits[0]);
    let mut stopped: Vec<LeaseId> = stops(&out).into_iter().map(|(_, l)| l).collect();
    stopped.sort();
    assert_eq!(stopped, a.iter().map(|(_, a)| a.lease).collect::<Vec<_>>());
    assert!(assigns(&out).is_empty());
}

#[test]
fn a_false_solution_quarantines_the_worker_and_what_it_committed_is_searched_again() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "liar", 1);
    h.add_worker(ConnId(2), "honest", 1);
    // Difficulty-1 target: no solution in this window.
    let job = Sha256dJob::new(vectors()[0].header, None, 0..16384, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let liar: Vec<Assign> = a
        .iter()
        .filter(|(c, _)| *c == ConnId(1))
        .map(|(_, a)| a.clone())
        .collect();
    // It "searches" its first chunk (without hashing: nobody can tell yet)...
    h.progress(ConnId(1), liar[0].lease, liar[0].end);
    h.drain();
    assert_eq!(h.core.report(JobId(1), h.now).unwrap().hashes, 4096);
    // ...then claims a solution that is not one.
    h.found(ConnId(1), liar[1].lease, vec![liar[1].start]);
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::BadResult)]);
    assert!(out.iter().any(|t| matches!(
        t,
        Transmit::Close(ConnId(1), reason) if reason.to_string() == format!(
            "index {} claimed in lease {} is not a solution: worker liar is quarantined until an admin checks it and releases it (`picluster release liar`)",
            liar[1].start, liar[1].lease
        )
    )), "{out:?}");
    assert_eq!(h.core.stats().violations, 1);
    // What it committed is uncommitted: to be searched again.
    assert_eq!(h.core.report(JobId(1), h.now).unwrap().hashes, 0);
    let status = h.core.status(h.now);
    let states: Vec<(&str, WorkerState)> = status
        .workers
        .iter()
        .map(|w| (w.name.as_str(), w.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("honest", WorkerState::Busy),
            ("liar", WorkerState::Quarantined)
        ]
    );
    // It is refused when it comes back, before it says anything.
    h.core
        .handle_connected(h.now, ConnId(3), PeerIdentity::new(Role::Worker, "liar"));
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(3), CloseCode::BadResult)]);
    // The honest worker searches everything, the liar's first chunk included.
    let held: Vec<Assign> = a
        .into_iter()
        .chain(assigns(&out))
        .filter(|(c, _)| *c == ConnId(2))
        .map(|(_, a)| a)
        .collect();
    for x in &held {
        h.progress(ConnId(2), x.lease, x.end);
    }
    let (report, _) = run_to_completion(&mut h, &job);
    assert_eq!(report.solutions, vec![]);
    assert_eq!(report.hashes, 16384);
    assert_eq!(report.contributions.len(), 1);
    assert_eq!(report.contributions[0].worker, "honest");
    // An admin releases it; it may connect again.
    h.client(ClientToCoord::Release(WorkerRequest {
        request: RequestId(8),
        worker: "liar".into(),
    }));
    h.client(ClientToCoord::Release(WorkerRequest {
        request: RequestId(9),
        worker: "liar".into(),
    }));
    let out = h.drain();
    let replies: Vec<CoordToClient> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::ToClient(_, m) => Some(m.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies,
        vec![
            CoordToClient::ReleasedWorker(RequestId(8), "liar".into()),
            CoordToClient::Refused(RequestId(9), Refusal::NotQuarantined("liar".into())),
        ]
    );
    h.add_worker(ConnId(4), "liar", 1);
    assert!(closes(&h.drain()).is_empty());
}

#[test]
fn protocol_violations_close_only_the_offender() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let job = genesis_job(0..1 << 16);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let (c1, l1) = (a[0].0, a[0].1.clone());
    // Beyond the lease end.
    h.progress(c1, l1.lease, l1.end + 1);
    assert_eq!(closes(&h.drain()), vec![(c1, CloseCode::Protocol)]);
    // Someone else's lease.
    let other = a.iter().find(|(c, _)| *c != c1).unwrap().1.lease;
    h.add_worker(ConnId(3), "pi-3", 1);
    h.drain();
    h.progress(ConnId(3), other, 0);
    assert_eq!(closes(&h.drain()), vec![(ConnId(3), CloseCode::Protocol)]);
    // A message before the hello.
    h.core
        .handle_connected(h.now, ConnId(4), PeerIdentity::new(Role::Worker, "pi-4"));
    h.worker_says(ConnId(4), WorkerToCoord::Leaving);
    assert_eq!(closes(&h.drain()), vec![(ConnId(4), CloseCode::Protocol)]);
    // A worker certificate speaking the client protocol.
    h.core.handle_inbound(
        h.now,
        ConnId(2),
        Inbound::Client(ClientToCoord::Status(RequestId(1))),
    );
    assert_eq!(
        closes(&h.drain()),
        vec![(ConnId(2), CloseCode::Unauthorized)]
    );
    assert_eq!(h.core.stats().violations, 4);
    // The client is still served.
    h.client(ClientToCoord::Status(RequestId(9)));
    let out = h.drain();
    assert!(
        matches!(&out[..], [Transmit::ToClient(CLIENT, CoordToClient::Status(RequestId(9), s))] if s.workers.is_empty())
    );
}

#[test]
fn a_second_connection_of_a_working_worker_is_refused_not_the_live_one_evicted() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..4096);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.now += Duration::from_millis(250);
    h.progress(ConnId(1), a[0].1.lease, 100);
    // A copy of pi-1's credential connects and says nothing: nothing happens.
    h.core
        .handle_connected(h.now, ConnId(2), PeerIdentity::new(Role::Worker, "pi-1"));
    assert!(h.drain().is_empty());
    // Its hello is refused, naming the clash; pi-1 keeps its lease.
    h.add_worker(ConnId(3), "pi-1", 1);
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(3), CloseCode::NameInUse)]);
    assert!(out.iter().any(|t| matches!(
        t,
        Transmit::Close(ConnId(3), reason) if reason.to_string().starts_with("worker pi-1 is already connected and working")
    )));
    h.progress(ConnId(1), a[0].1.lease, 200);
    assert!(closes(&h.drain()).is_empty(), "pi-1 is still the one");
    // Bytes that are not a frame, or anything but a hello, close the waiting copy.
    h.core
        .handle_bad_frame(h.now, ConnId(2), FrameError::TrailingBytes(3));
    assert_eq!(closes(&h.drain()), vec![(ConnId(2), CloseCode::BadFrame)]);
}

#[test]
fn a_reconnecting_worker_name_replaces_its_silent_ghost() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..4096);
    h.submit(&job, SearchMode::All);
    h.drain();
    // pi-1 lost its network: nothing heard for more than two progress intervals.
    h.now += Duration::from_millis(600);
    h.add_worker(ConnId(2), "pi-1", 1);
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::Replaced)]);
    let a = assigns(&out);
    assert_eq!(a.len(), 1);
    assert_eq!((a[0].0, a[0].1.start, a[0].1.end), (ConnId(2), 0, 4096));
}

#[test]
fn cancel_stops_leases_and_reports_cancelled() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..1 << 16);
    let id = h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.client(ClientToCoord::Cancel(JobRequest {
        request: RequestId(5),
        job: id,
    }));
    let out = h.drain();
    assert_eq!(stops(&out).len(), a.len());
    assert_eq!(finished(&out).unwrap().state, JobState::Cancelled);
    assert!(out.iter().any(|t| matches!(t,
        Transmit::ToClient(CLIENT, CoordToClient::Cancelled(RequestId(5), s)) if s.progress.state == JobState::Cancelled)));
    assert!(assigns(&out).is_empty());
    // Cancelling again keeps the state; an unknown job is refused.
    h.client(ClientToCoord::Cancel(JobRequest {
        request: RequestId(6),
        job: JobId(42),
    }));
    assert_eq!(
        h.drain(),
        vec![Transmit::ToClient(
            CLIENT,
            CoordToClient::Refused(RequestId(6), Refusal::UnknownJob(JobId(42)))
        )]
    );
}

#[test]
fn invalid_submissions_are_refused_with_the_reason() {
    let mut h = Harness::small_chunks();
    let WorkSpec::Sha256d(good) = WorkSpec::from(&JobKind::Sha256d(genesis_job(0..10))) else {
        unreachable!()
    };
    let short = Sha256dWork {
        header: vec![0; 3],
        ..good.clone()
    };
    let empty = Sha256dWork {
        nonce_start: 0,
        nonce_end: 0,
        ..good
    };
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(3),
        work: WorkSpec::Sha256d(short),
        mode: SearchMode::First,
        priority: 0,
    }));
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(4),
        work: WorkSpec::Sha256d(empty),
        mode: SearchMode::First,
        priority: 0,
    }));
    assert_eq!(
        h.drain(),
        vec![
            Transmit::ToClient(CLIENT, CoordToClient::Refused(RequestId(3), Refusal::InvalidJob("header is 3 bytes, expected 80".into()))),
            Transmit::ToClient(CLIENT, CoordToClient::Refused(RequestId(4), Refusal::InvalidJob("nonce range 0..0 is invalid: it must be non-empty and within 0..4294967296".into()))),
        ]
    );
    assert!(h.core.jobs(h.now).is_empty());
}

#[test]
fn watchers_get_progress_every_interval_while_a_job_runs() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..1 << 16);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.progress(ConnId(1), a[0].1.lease, 1234);
    h.drain();
    h.now += Duration::from_millis(250);
    h.core.handle_timeout(h.now);
    let out = h.drain();
    assert!(
        matches!(&out[..], [Transmit::ToClient(CLIENT, CoordToClient::Progress(p))] if p.hashes == 1234 && p.state == JobState::Running)
    );
    // Nothing new: no push.
    h.now += Duration::from_millis(250);
    h.core.handle_timeout(h.now);
    assert_eq!(h.drain(), vec![]);
}

#[test]
fn a_job_keeps_its_lowest_solutions_up_to_the_cap_and_says_it_truncated() {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 13,
        max_chunk: 1 << 13,
        ..CoordinatorConfig::default()
    });
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    // Every hash meets a target of all ones.
    let everything = picluster_core::kernel::sha256d::Target([0xff; 32]);
    let job = Sha256dJob::new(vectors()[0].header, Some(everything), 0..3 * 8192, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let (report, _) = run_to_completion(&mut h, &job);
    assert_eq!(report.hashes, 3 * 8192);
    assert!(report.truncated);
    assert_eq!(report.solutions.len(), MAX_SOLUTIONS);
    let indices: Vec<u64> = report.solutions.iter().map(|s| s.index).collect();
    assert_eq!(indices, (0..MAX_SOLUTIONS as u64).collect::<Vec<_>>());
    // The rest are counted (the JSON said `others: 0`).
    assert_eq!(report.others, 3 * 8192 - MAX_SOLUTIONS as u64);
    // The report fits in one frame.
    assert!(encode_frame(&CoordToClient::Finished(report)).is_ok());
}

#[test]
fn solutions_beyond_the_cap_are_counted_once_however_often_they_are_reported() {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 14,
        max_chunk: 1 << 14,
        ..CoordinatorConfig::default()
    });
    h.add_worker(ConnId(1), "pi-1", 1);
    let everything = picluster_core::kernel::sha256d::Target([0xff; 32]);
    let job = Sha256dJob::new(vectors()[0].header, Some(everything), 0..1 << 14, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain()).remove(0).1;
    let all: Vec<u64> = (a.start..a.end).collect();
    // Reported in two overlapping batches, the second repeating the last 2,000.
    h.found(ConnId(1), a.lease, all[..12_000].to_vec());
    h.found(ConnId(1), a.lease, all[10_000..].to_vec());
    h.progress(ConnId(1), a.lease, a.end);
    let report = finished(&h.drain()).expect("the job ends");
    assert_eq!(report.solutions.len(), MAX_SOLUTIONS);
    assert_eq!(report.others, (1 << 14) - MAX_SOLUTIONS as u64);
}

#[test]
fn a_small_job_is_shared_in_proportion_to_speed() {
    let mut h = Harness::new(CoordinatorConfig::default());
    h.add_worker(ConnId(1), "pi-4", 1_000_000);
    h.add_worker(ConnId(2), "laptop", 3_000_000);
    // 2^20 indices: less than one (calibration) chunk of either worker.
    let job = genesis_job(0..1 << 20);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let sizes: Vec<(ConnId, u64)> = a.iter().map(|(c, a)| (*c, a.end - a.start)).collect();
    assert_eq!(sizes, vec![(ConnId(1), 1 << 18), (ConnId(2), 3 << 18)]);
}

#[test]
fn the_lease_clock_starts_when_an_idle_worker_is_given_work() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.drain();
    // Idle and silent for far longer than the lease timeout: nothing is owed.
    h.now += Duration::from_secs(60);
    h.core.handle_timeout(h.now);
    h.submit(&genesis_job(0..8192), SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 2);
    h.now += Duration::from_millis(4999);
    h.core.handle_timeout(h.now);
    assert!(
        stops(&h.drain()).is_empty(),
        "no lease expires before 5 s of silence"
    );
    h.now += Duration::from_millis(1);
    h.core.handle_timeout(h.now);
    assert_eq!(stops(&h.drain()).len(), 2);
}

#[test]
fn a_worker_that_acknowledges_a_stop_for_an_expired_lease_gets_work_again() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let job = genesis_job(0..8192);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    h.now += Duration::from_secs(5);
    h.core.handle_timeout(h.now);
    assert_eq!(stops(&h.drain()).len(), 2);
    // Its network came back: it acknowledges the stops.
    for (_, x) in &a {
        h.release(ConnId(1), x.lease, x.start + 100);
    }
    assert_eq!(
        h.core.stats().stale_reports,
        0,
        "an acknowledgement is not a stale report"
    );
    let b = assigns(&h.drain());
    assert_eq!(
        b.iter()
            .map(|(c, a)| (*c, a.start, a.end))
            .collect::<Vec<_>>(),
        vec![(ConnId(1), 0, 4096), (ConnId(1), 4096, 8192)],
        "the expired ranges, whole: acknowledgements of taken-back leases commit nothing"
    );
}

#[test]
fn an_idle_worker_steals_the_back_of_the_lease_that_ends_last() {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1000,
        min_steal: 100,
        // Full chunks from the start: this test is about stealing.
        calibration_time: Duration::from_secs(2),
        ..CoordinatorConfig::default()
    });
    // Within the factor a benchmark is believed over its peers' (8).
    h.add_worker(ConnId(1), "pi-3", 4_000);
    h.add_worker(ConnId(2), "laptop", 30_000);
    // 2 s of the slow worker's work and 2 of the fast one's: 68,000 in all.
    let job = genesis_job(0..68_000);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let slow: Vec<&Assign> = a
        .iter()
        .filter(|(c, _)| *c == ConnId(1))
        .map(|(_, a)| a)
        .collect();
    let fast: Vec<&Assign> = a
        .iter()
        .filter(|(c, _)| *c == ConnId(2))
        .map(|(_, a)| a)
        .collect();
    assert_eq!(slow.iter().map(|a| a.end - a.start).sum::<u64>(), 8_000);
    // The fast worker finishes everything it holds at t = 1 s.
    h.now += Duration::from_secs(1);
    for x in &fast {
        h.progress(ConnId(2), x.lease, x.end);
    }
    let out = h.drain();
    // The slow worker's lease ends 2 s from the start; it has done 4,000 of 8,000 by
    // now (extrapolated from its rate, as it has not reported yet).
    let trims: Vec<(ConnId, Trim)> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Trim(x)) => Some((*c, *x)),
            _ => None,
        })
        .collect();
    assert_eq!(trims.len(), 1, "{out:?}");
    let (owner, trim) = trims[0];
    assert_eq!(owner, ConnId(1));
    assert_eq!(trim.lease, slow.last().unwrap().lease);
    // 4,000 left; the laptop measured itself at 60,000/s (60,000 in 1 s), so the
    // thief takes 4,000 * 60,000 / 64,000 = 3,750 and both end together.
    assert_eq!(trim.end, 8_000 - 3_750);
    assert!(
        assigns(&out).is_empty(),
        "nothing is handed out before the owner acknowledges"
    );
    // The owner had already passed the requested end a little: the split uses its word.
    let acknowledged = trim.end + 10;
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Trimmed(Trimmed {
            lease: trim.lease,
            end: acknowledged,
        }),
    );
    let b = assigns(&h.drain());
    assert_eq!(b.len(), 1);
    assert_eq!(
        (b[0].0, b[0].1.start, b[0].1.end),
        (ConnId(2), acknowledged, slow.last().unwrap().end)
    );
    assert_eq!(h.core.stats().steals, 1);
    // A trim nobody asked for, or below the requested end, breaks the protocol.
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Trimmed(Trimmed {
            lease: trim.lease,
            end: acknowledged,
        }),
    );
    assert_eq!(closes(&h.drain()), vec![(ConnId(1), CloseCode::Protocol)]);
}

fn submit_as(h: &mut Harness, client: ConnId, job: &Sha256dJob, priority: i32) {
    h.core.handle_inbound(
        h.now,
        client,
        Inbound::Client(ClientToCoord::Submit(Submit {
            request: RequestId(1),
            work: WorkSpec::from(&JobKind::Sha256d(*job)),
            mode: SearchMode::All,
            priority,
        })),
    );
}

fn add_client(h: &mut Harness, conn: ConnId, name: &str) {
    add_client_at(h, conn, name, picluster_core::wire::MINOR_CLIENT_REPORTS);
}

/// A client that says hello speaking protocol `minor`.
fn add_client_at(h: &mut Harness, conn: ConnId, name: &str, minor: u16) {
    add_client_as(h, conn, Role::Client, name, minor);
}

/// A client of `role` (client or admin) that says hello speaking protocol `minor`.
fn add_client_as(h: &mut Harness, conn: ConnId, role: Role, name: &str, minor: u16) {
    h.core
        .handle_connected(h.now, conn, PeerIdentity::new(role, name));
    h.core.handle_inbound(
        h.now,
        conn,
        Inbound::Client(ClientToCoord::Hello(ClientHello {
            minor,
            client_version: "t".into(),
        })),
    );
    h.drain();
}

#[test]
fn higher_priority_jobs_get_the_next_chunks() {
    let mut h = Harness::small_chunks();
    submit_as(&mut h, CLIENT, &genesis_job(0..1 << 16), 0);
    submit_as(&mut h, CLIENT, &genesis_job(0..1 << 16), 5);
    h.drain();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 4);
    assert!(a.iter().all(|(_, x)| x.job == JobId(2)), "{a:?}");
    let jobs = h.core.jobs(h.now);
    assert_eq!((jobs[0].priority, jobs[0].client.as_str()), (0, "admin"));
    assert_eq!(
        (jobs[1].priority, jobs[1].progress.state),
        (5, JobState::Running)
    );
}

#[test]
fn clients_of_equal_priority_share_the_cluster_fairly() {
    let mut h = Harness::small_chunks();
    let bob = ConnId(200);
    add_client(&mut h, bob, "bob");
    // The admin submits two jobs first; bob one, later. FIFO would give bob nothing.
    submit_as(&mut h, CLIENT, &genesis_job(0..1 << 16), 0);
    submit_as(&mut h, CLIENT, &genesis_job(0..1 << 16), 0);
    submit_as(&mut h, bob, &genesis_job(0..1 << 16), 0);
    h.drain();
    for i in 1..=4 {
        h.add_worker(ConnId(i), &format!("pi-{i}"), 1);
    }
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 8);
    let bobs = a.iter().filter(|(_, x)| x.job == JobId(3)).count();
    assert_eq!(bobs, 4, "half of the chunks for each client: {a:?}");
    // The admin's share goes to its oldest job first.
    assert!(a
        .iter()
        .filter(|(_, x)| x.job != JobId(3))
        .all(|(_, x)| x.job == JobId(1)));
}

#[test]
fn a_drained_worker_finishes_its_chunk_and_takes_no_more_until_undrained() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let job = genesis_job(0..1 << 16);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let mine: Vec<Assign> = a
        .iter()
        .filter(|(c, _)| *c == ConnId(1))
        .map(|(_, x)| x.clone())
        .collect();
    assert_eq!(mine.len(), 2);
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(7),
        worker: "pi-1".into(),
        drain: true,
        reason: None,
    }));
    let out = h.drain();
    // Its queued chunk goes back; the one it is on stays.
    assert_eq!(stops(&out), vec![(ConnId(1), mine[1].lease)]);
    assert!(out.iter().any(|t| matches!(t,
        Transmit::ToClient(CLIENT, CoordToClient::Drained(RequestId(7), w)) if w.state == WorkerState::Draining && w.leases == 1)));
    h.progress(ConnId(1), mine[0].lease, mine[0].end);
    let out = h.drain();
    assert!(
        assigns(&out).iter().all(|(c, _)| *c != ConnId(1)),
        "no new work for a drained worker"
    );
    // The mark survives a reconnection.
    h.core.handle_disconnected(h.now, ConnId(1));
    h.add_worker(ConnId(3), "pi-1", 1);
    assert!(assigns(&h.drain()).iter().all(|(c, _)| *c != ConnId(3)));
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(8),
        worker: "pi-1".into(),
        drain: false,
        reason: None,
    }));
    let out = h.drain();
    assert_eq!(
        assigns(&out)
            .iter()
            .filter(|(c, _)| *c == ConnId(3))
            .count(),
        2
    );
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(9),
        worker: "pi-9".into(),
        drain: true,
        reason: None,
    }));
    assert_eq!(
        h.drain(),
        vec![Transmit::ToClient(
            CLIENT,
            CoordToClient::Refused(RequestId(9), Refusal::UnknownWorker("pi-9".into()))
        )]
    );
}

#[test]
fn workers_with_chunks_shorter_than_a_progress_interval_prefetch_deeper() {
    let mut h = Harness::new(CoordinatorConfig {
        max_chunk: 1000,
        ..CoordinatorConfig::default()
    });
    // 1,000 indices at 1 MH/s: a millisecond per chunk, far below 250 ms.
    h.add_worker(ConnId(1), "fast", 1_000_000);
    // 1,000 indices at 1,000 H/s: a second per chunk.
    h.add_worker(ConnId(2), "slow", 1_000);
    h.submit(&genesis_job(0..1 << 20), SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.iter().filter(|(c, _)| *c == ConnId(1)).count(), 16);
    assert_eq!(a.iter().filter(|(c, _)| *c == ConnId(2)).count(), 2);
}

#[test]
fn custom_jobs_go_to_workers_with_the_kernel_and_commit_only_with_their_output() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "plain", 1_000_000);
    h.core
        .handle_connected(h.now, ConnId(2), PeerIdentity::new(Role::Worker, "custom"));
    h.worker_says(
        ConnId(2),
        WorkerToCoord::Hello(WorkerHello {
            minor: 0,
            agent_version: "t".into(),
            threads: 2,
            arch: "x86_64".into(),
            kernel_impl: "test".into(),
            bench_hps: 1_000_000,
            kernels: vec!["k/1".into()],
        }),
    );
    h.drain();
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(1),
        work: WorkSpec::Custom(CustomWork {
            kernel: "k/1".into(),
            params: vec![1],
            keyspace: 100,
            block: 10,
        }),
        mode: SearchMode::All,
        priority: 0,
    }));
    h.client(ClientToCoord::Watch(JobRequest {
        request: RequestId(2),
        job: JobId(1),
    }));
    let out = h.drain();
    let a = assigns(&out);
    // Only the worker with the kernel; calibration: one block per thread.
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(a.iter().all(|(c, _)| *c == ConnId(2)));
    assert_eq!((a[0].1.start, a[0].1.end), (0, 20));
    assert_eq!((a[1].1.start, a[1].1.end), (20, 40));

    // Output commits and is passed to the watcher.
    h.worker_says(
        ConnId(2),
        WorkerToCoord::Output(Output {
            lease: a[0].1.lease,
            position: 10,
            data: vec![7],
        }),
    );
    let out = h.drain();
    assert!(out.contains(&Transmit::ToClient(
        CLIENT,
        CoordToClient::Outputs(
            JobId(1),
            vec![ChunkOutput {
                start: 0,
                end: 10,
                data: vec![7]
            }]
        )
    )));
    // A late watcher gets every output so far.
    h.client(ClientToCoord::Watch(JobRequest {
        request: RequestId(3),
        job: JobId(1),
    }));
    let out = h.drain();
    assert!(matches!(
        &out[..],
        [
            Transmit::ToClient(_, CoordToClient::Watching(RequestId(3), p)),
            Transmit::ToClient(_, CoordToClient::Outputs(JobId(1), o)),
        ] if p.hashes == 10 && o.len() == 1
    ));

    // Progress that would commit indices without their output breaks the protocol.
    h.progress(ConnId(2), a[0].1.lease, 20);
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(2), CloseCode::Protocol)]);
    // Its leases went back from position 10: nobody else can run them yet.
    assert!(assigns(&out).is_empty());
    let jobs = h.core.jobs(h.now);
    assert_eq!(jobs[0].progress.hashes, 10);
    assert_eq!(jobs[0].kind, "custom:k/1");

    // A worker that cannot run the job fails it, with its reason.
    h.core.handle_connected(
        h.now,
        ConnId(3),
        PeerIdentity::new(Role::Worker, "custom-2"),
    );
    h.worker_says(
        ConnId(3),
        WorkerToCoord::Hello(WorkerHello {
            minor: 0,
            agent_version: "t".into(),
            threads: 1,
            arch: "x86_64".into(),
            kernel_impl: "test".into(),
            bench_hps: 1_000_000,
            kernels: vec!["k/1".into()],
        }),
    );
    let out = h.drain();
    let a = assigns(&out);
    assert_eq!(a[0].1.start, 10);
    h.worker_says(
        ConnId(3),
        WorkerToCoord::Rejected(Rejected {
            lease: a[0].1.lease,
            reason: "params do not decode".into(),
        }),
    );
    let out = h.drain();
    let report = finished(&out).unwrap();
    assert_eq!(report.state, JobState::Failed);
    assert_eq!(
        report.error.as_deref(),
        Some("worker custom-2 cannot run it: params do not decode")
    );
    assert_eq!(
        report.failure,
        Some(JobFailure::Rejected {
            worker: "custom-2".into(),
            reason: "params do not decode".into()
        })
    );
    assert!(
        closes(&out).is_empty(),
        "rejecting a job is not a violation"
    );
}

#[test]
fn output_for_a_built_in_job_breaks_the_protocol() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    h.submit(&genesis_job(0..1 << 14), SearchMode::All);
    let a = assigns(&h.drain());
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Output(Output {
            lease: a[0].1.lease,
            position: a[0].1.start + 1,
            data: vec![],
        }),
    );
    assert_eq!(closes(&h.drain()), vec![(ConnId(1), CloseCode::Protocol)]);
}

fn cancel(h: &mut Harness, job: JobId) -> Vec<Transmit> {
    h.client(ClientToCoord::Cancel(JobRequest {
        request: RequestId(9),
        job,
    }));
    h.drain()
}

fn submit_only(h: &mut Harness, job: &Sha256dJob) {
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(1),
        work: WorkSpec::from(&JobKind::Sha256d(*job)),
        mode: SearchMode::All,
        priority: 0,
    }));
}

#[test]
fn finished_jobs_are_kept_by_count_then_dropped() {
    let mut h = Harness::new(CoordinatorConfig {
        keep_finished: 2,
        ..CoordinatorConfig::default()
    });
    for _ in 0..4 {
        submit_only(&mut h, &genesis_job(0..10));
    }
    h.drain();
    for id in 1..=3 {
        cancel(&mut h, JobId(id));
    }
    // Two finished jobs are kept, the oldest went; the live one stays.
    let ids: Vec<JobId> = h.core.jobs(h.now).iter().map(|j| j.progress.job).collect();
    assert_eq!(ids, vec![JobId(2), JobId(3), JobId(4)]);
    assert_eq!(h.core.report(JobId(1), h.now), None);
    h.client(ClientToCoord::Watch(JobRequest {
        request: RequestId(5),
        job: JobId(1),
    }));
    assert_eq!(
        h.drain(),
        vec![Transmit::ToClient(
            CLIENT,
            CoordToClient::Refused(RequestId(5), Refusal::UnknownJob(JobId(1)))
        )]
    );
    // A kept finished job still answers a late watcher with its report.
    h.client(ClientToCoord::Watch(JobRequest {
        request: RequestId(6),
        job: JobId(3),
    }));
    let out = h.drain();
    assert_eq!(out.len(), 2);
    assert_eq!(finished(&out).unwrap().state, JobState::Cancelled);
}

#[test]
fn finished_jobs_are_dropped_when_their_retention_time_passes() {
    let keep = Duration::from_secs(60);
    // The only other timer: when the admin's session is looked at for idleness.
    let idle = Duration::from_secs(10 * 365 * 86_400);
    let mut h = Harness::new(CoordinatorConfig {
        keep_finished_for: keep,
        client_idle_timeout: idle,
        ..CoordinatorConfig::default()
    });
    let sweep = Some(h.now + idle);
    submit_only(&mut h, &genesis_job(0..10));
    submit_only(&mut h, &genesis_job(0..10));
    h.drain();
    assert_eq!(
        h.core.poll_timeout(),
        sweep,
        "nothing finished, nothing to drop"
    );
    let ended = h.now;
    cancel(&mut h, JobId(1));
    assert_eq!(h.core.poll_timeout(), Some(ended + keep));
    h.now += keep - Duration::from_millis(1);
    h.core.handle_timeout(h.now);
    assert_eq!(h.core.jobs(h.now).len(), 2);
    h.now += Duration::from_millis(1);
    h.core.handle_timeout(h.now);
    let ids: Vec<JobId> = h.core.jobs(h.now).iter().map(|j| j.progress.job).collect();
    assert_eq!(ids, vec![JobId(2)]);
    assert_eq!(h.core.poll_timeout(), sweep);
}

#[test]
fn a_finished_job_gets_no_more_scheduling_or_pushes() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    let job = h.submit(&genesis_job(0..1 << 14), SearchMode::All);
    // Chunks shorter than a progress interval: the worker prefetches all four.
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 4);
    let out = cancel(&mut h, job);
    assert_eq!(stops(&out).len(), 4);
    assert_eq!(finished(&out).unwrap().state, JobState::Cancelled);
    // Late progress on a cancelled job's lease is stale, and nothing is pushed.
    h.progress(ConnId(1), a[0].1.lease, a[0].1.start + 1);
    h.now += Duration::from_secs(1);
    h.core.handle_timeout(h.now);
    assert!(h.drain().is_empty());
    assert_eq!(h.core.stats().stale_reports, 1);
}

#[test]
fn a_peer_with_the_coordinators_certificate_is_refused() {
    let mut h = Harness::small_chunks();
    h.core.handle_connected(
        h.now,
        ConnId(7),
        PeerIdentity::new(Role::Coordinator, "coordinator"),
    );
    assert_eq!(
        closes(&h.drain()),
        vec![(ConnId(7), CloseCode::Unauthorized)]
    );
    // Whatever it sends afterwards is ignored.
    h.worker_says(ConnId(7), WorkerToCoord::Leaving);
    assert!(h.drain().is_empty());
    assert_eq!(h.core.stats().violations, 1);
}

#[test]
fn an_admin_certificate_is_served_as_a_client() {
    let mut h = Harness::small_chunks();
    h.core
        .handle_connected(h.now, ConnId(8), PeerIdentity::new(Role::Admin, "root"));
    h.core.handle_inbound(
        h.now,
        ConnId(8),
        Inbound::Client(ClientToCoord::Hello(ClientHello {
            minor: picluster_core::wire::PROTOCOL_MINOR,
            client_version: "t".into(),
        })),
    );
    h.core.handle_inbound(
        h.now,
        ConnId(8),
        Inbound::Client(ClientToCoord::ListJobs(RequestId(4))),
    );
    assert_eq!(
        h.drain(),
        vec![
            Transmit::ToClient(
                ConnId(8),
                CoordToClient::Welcome(ClientWelcome {
                    minor: picluster_core::wire::PROTOCOL_MINOR
                })
            ),
            Transmit::ToClient(ConnId(8), CoordToClient::Jobs(RequestId(4), vec![])),
        ]
    );
}

#[test]
fn a_backlogged_worker_is_cut_off_and_its_leases_return_to_the_queue() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    h.add_worker(ConnId(2), "pi-2", 1_000_000);
    h.submit(&genesis_job(0..1 << 14), SearchMode::All);
    let first = assigns(&h.drain());
    assert_eq!(first.len(), 4);
    h.core.handle_backlogged(h.now, ConnId(1));
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::Normal)]);
    let Transmit::Close(_, reason) = &out[0] else {
        panic!("the close comes first: {out:?}")
    };
    assert_eq!(
        reason.to_string(),
        "too far behind: the peer does not read what it is sent"
    );
    assert_eq!(h.core.stats().backlogged, 1);
    // pi-1's ranges went back to the queue, and pi-2 finishes the job alone.
    let job = genesis_job(0..1 << 14);
    let kernel = job.kernel();
    // Its own leases, and pi-1's ranges given to it at once.
    let mut held: Vec<Assign> = first
        .iter()
        .filter(|(c, _)| *c == ConnId(2))
        .map(|(_, a)| a.clone())
        .collect();
    held.extend(assigns(&out).into_iter().map(|(c, a)| {
        assert_eq!(c, ConnId(2));
        a
    }));
    for a in &held {
        let mut hits = Vec::new();
        kernel.scan(a.start..a.end, &mut hits);
        h.found(ConnId(2), a.lease, hits);
        h.progress(ConnId(2), a.lease, a.end);
    }
    let (report, assigned) = run_to_completion(&mut h, &job);
    assert_eq!(report.hashes, 1 << 14);
    assert_eq!(report.contributions.len(), 1);
    assert!(assigned.iter().all(|(c, _)| *c == ConnId(2)));
}

#[test]
fn progress_pushes_may_be_skipped_when_a_peer_is_full_but_nothing_else() {
    let progress = JobProgress {
        job: JobId(1),
        state: JobState::Running,
        hashes: 1,
        keyspace: 2,
        elapsed_ms: 3,
        solutions: 0,
        workers: 1,
    };
    assert_eq!(
        Transmit::ToClient(CLIENT, CoordToClient::Progress(progress)).overflow(),
        Overflow::Skip
    );
    for t in [
        Transmit::ToClient(CLIENT, CoordToClient::Jobs(RequestId(1), vec![])),
        Transmit::ToClient(CLIENT, CoordToClient::Outputs(JobId(1), vec![])),
        Transmit::ToWorker(ConnId(1), CoordToWorker::Stop(Stop { lease: LeaseId(1) })),
    ] {
        assert_eq!(t.overflow(), Overflow::CutOff, "{t:?}");
    }
}

#[test]
fn an_unsendable_reply_closes_only_that_peer() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    h.drain();
    h.core
        .handle_unsendable(h.now, CLIENT, FrameError::TooLarge(2 << 20));
    assert_eq!(closes(&h.drain()), vec![(CLIENT, CloseCode::Protocol)]);
    assert_eq!(h.core.status(h.now).workers.len(), 1);
}

/// How a simulated worker treats its leases.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conduct {
    /// Searches at its rate, reports every 250 ms, honours trims and stops.
    Honest,
    /// Claims an absurd benchmark, reports progress that never moves, answers every
    /// trim with the lease's old end.
    Hoarding,
}

/// Seconds (simulated) until a job of `keyspace` indices (no solutions) completes on
/// workers of the given conduct and rate, in steps of 50 ms.
fn makespan_with(workers: &[(Conduct, f64)], keyspace: u64) -> f64 {
    let mut h = Harness::new(CoordinatorConfig::default());
    let mut target = [0u8; 32];
    target[31] = 1;
    let job = Sha256dJob::new(
        vectors()[0].header,
        Some(picluster_core::kernel::sha256d::Target(target)),
        0..keyspace,
        0,
    )
    .unwrap();
    // Per worker: its leases in order, as (lease, start, position, end).
    let mut held: Vec<std::collections::VecDeque<(LeaseId, u64, f64, u64)>> =
        vec![Default::default(); workers.len()];
    for (i, (conduct, rate)) in workers.iter().enumerate() {
        let bench = match conduct {
            Conduct::Honest => *rate as u64,
            Conduct::Hoarding => u64::MAX - 1,
        };
        h.add_worker(ConnId(i as u64 + 1), &format!("w{i}"), bench);
    }
    h.submit(&job, SearchMode::All);
    let start = h.now;
    let step = Duration::from_millis(50);
    for tick in 0..20_000u64 {
        let out = h.drain();
        if let Some(report) = finished(&out) {
            assert_eq!(report.hashes, keyspace, "{:?}", report.state);
            return (h.now - start).as_secs_f64();
        }
        for t in out {
            let Transmit::ToWorker(conn, m) = t else {
                continue;
            };
            let i = conn.0 as usize - 1;
            let conduct = workers[i].0;
            match m {
                CoordToWorker::Assign(a) => {
                    held[i].push_back((a.lease, a.start, a.start as f64, a.end));
                }
                CoordToWorker::Trim(trim) => {
                    let Some(l) = held[i].iter_mut().find(|l| l.0 == trim.lease) else {
                        continue;
                    };
                    let end = match conduct {
                        Conduct::Honest => trim.end.max(l.2.ceil() as u64).min(l.3),
                        Conduct::Hoarding => l.3,
                    };
                    l.3 = end;
                    h.worker_says(
                        conn,
                        WorkerToCoord::Trimmed(Trimmed {
                            lease: trim.lease,
                            end,
                        }),
                    );
                }
                CoordToWorker::Stop(stop) => {
                    if let Some(k) = held[i].iter().position(|l| l.0 == stop.lease) {
                        let (lease, _, position, _) = held[i].remove(k).unwrap();
                        h.release(conn, lease, position as u64);
                    }
                }
                CoordToWorker::Welcome(_)
                | CoordToWorker::Renewed(_)
                | CoordToWorker::RenewRefused(_)
                | CoordToWorker::ShareTarget(_) => {}
            }
        }
        h.now += step;
        let report = tick % 5 == 4;
        for (i, (conduct, rate)) in workers.iter().enumerate() {
            let conn = ConnId(i as u64 + 1);
            let Some(front) = held[i].front_mut() else {
                continue;
            };
            match conduct {
                Conduct::Honest => {
                    front.2 = (front.2 + rate * step.as_secs_f64()).min(front.3 as f64);
                    if front.2 as u64 >= front.3 {
                        let (lease, _, _, end) = held[i].pop_front().unwrap();
                        h.progress(conn, lease, end);
                    } else if report {
                        let (lease, _, position, _) = *front;
                        h.progress(conn, lease, position as u64);
                    }
                }
                Conduct::Hoarding if report => {
                    let (lease, start, _, _) = *front;
                    h.progress(conn, lease, start);
                }
                Conduct::Hoarding => {}
            }
        }
        if h.core.poll_timeout().is_some_and(|t| t <= h.now) {
            h.core.handle_timeout(h.now);
        }
    }
    panic!("the job did not finish in 1,000 s");
}

#[test]
fn a_hoarding_worker_cannot_hold_a_job_hostage() {
    // Two honest Pis alone: 40 M indices at 1 M/s each, about 20 s.
    let honest = makespan_with(
        &[(Conduct::Honest, 1e6), (Conduct::Honest, 1e6)],
        40_000_000,
    );
    assert!((19.0..23.0).contains(&honest), "{honest}");
    // With a worker that claims u64::MAX H/s, never moves and refuses to give up
    // what it holds: it gets nearly the whole job at first (its claim sizes its first
    // share), loses it when it does not honour the first steal, and is then measured
    // at what it really does.
    let hoarded = makespan_with(
        &[
            (Conduct::Honest, 1e6),
            (Conduct::Hoarding, 0.0),
            (Conduct::Honest, 1e6),
        ],
        40_000_000,
    );
    eprintln!("honest {honest:.2} s, with a hoarder {hoarded:.2} s");
    assert!(hoarded < 2.0 * honest, "{hoarded} s against {honest} s");
}

#[test]
fn a_worker_that_reports_without_progressing_loses_its_leases_after_the_lease_timeout() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1_000_000);
    h.submit(&genesis_job(0..1 << 16), SearchMode::All);
    let a = assigns(&h.drain());
    let lease = a[0].1.lease;
    // It keeps talking (so it is not silent) without moving.
    for _ in 0..20 {
        h.now += Duration::from_millis(250);
        h.progress(ConnId(1), lease, a[0].1.start);
        if h.core.poll_timeout().is_some_and(|t| t <= h.now) {
            h.core.handle_timeout(h.now);
        }
    }
    let out = h.drain();
    let stopped: Vec<LeaseId> = stops(&out).into_iter().map(|(_, l)| l).collect();
    assert!(stopped.contains(&lease), "{out:?}");
    assert_eq!(h.core.stats().expired_leases, a.len() as u64);
}

/// A slow worker (ConnId 1) and a fast one (ConnId 2); the fast one finishes its
/// chunks at once, and the coordinator asks the slow one to give up part of its lease:
/// the harness, the trim and the slow worker's lease.
fn a_trim_of_the_slow_workers_lease() -> (Harness, Trim, Assign) {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1000,
        min_steal: 100,
        calibration_time: Duration::from_secs(2),
        ..CoordinatorConfig::default()
    });
    // Within the factor a benchmark is believed over its peers' (8).
    h.add_worker(ConnId(1), "slow", 400_000);
    h.add_worker(ConnId(2), "fast", 3_000_000);
    h.submit(&genesis_job(0..6_800_000), SearchMode::All);
    let a = assigns(&h.drain());
    h.now += Duration::from_millis(500);
    for (c, x) in a.iter().filter(|(c, _)| *c == ConnId(2)) {
        h.progress(*c, x.lease, x.end);
    }
    let out = h.drain();
    let trim = out
        .iter()
        .find_map(|t| match t {
            Transmit::ToWorker(ConnId(1), CoordToWorker::Trim(x)) => Some(*x),
            _ => None,
        })
        .expect("a trim");
    let owned = a
        .iter()
        .find(|(_, x)| x.lease == trim.lease)
        .map(|(_, x)| x.clone())
        .unwrap();
    (h, trim, owned)
}

#[test]
fn a_trim_not_answered_within_the_lease_timeout_takes_the_lease_back() {
    let (mut h, trim, owned) = a_trim_of_the_slow_workers_lease();
    // The slow worker keeps reporting (slow) progress but never answers the trim.
    let mut out = Vec::new();
    for k in 1..=24 {
        h.now += Duration::from_millis(250);
        h.progress(ConnId(1), trim.lease, owned.start + k * 1_000);
        if h.core.poll_timeout().is_some_and(|t| t <= h.now) {
            h.core.handle_timeout(h.now);
        }
        out.extend(h.drain());
    }
    assert!(stops(&out).contains(&(ConnId(1), trim.lease)), "{out:?}");
    assert_eq!(h.core.stats().unhonoured_trims, 1);
    // The rest is handed out again, from where the owner had got to.
    let mut taken: Vec<(u64, u64)> = assigns(&out)
        .iter()
        .map(|(_, x)| (x.start, x.end))
        .collect();
    taken.sort();
    assert_eq!(taken.first().map(|r| r.0), Some(owned.start + 20 * 1_000));
    assert!(taken.windows(2).all(|w| w[0].1 == w[1].0), "{taken:?}");
    assert_eq!(taken.last().map(|r| r.1), Some(owned.end));
}

#[test]
fn a_trim_answered_without_giving_anything_up_takes_the_lease_back() {
    let (mut h, trim, owned) = a_trim_of_the_slow_workers_lease();
    // One thread cannot have begun all of the ~150,000 indices left: refused.
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Trimmed(Trimmed {
            lease: trim.lease,
            end: owned.end,
        }),
    );
    let out = h.drain();
    assert!(stops(&out).contains(&(ConnId(1), trim.lease)), "{out:?}");
    assert_eq!(h.core.stats().unhonoured_trims, 1);
    assert!(closes(&out).is_empty(), "not a protocol violation: {out:?}");
}

#[test]
fn clients_manage_their_own_jobs_and_only_an_admin_manages_the_cluster() {
    let mut h = Harness::small_chunks();
    add_client(&mut h, ConnId(201), "alice");
    add_client(&mut h, ConnId(202), "bob");
    h.add_worker(ConnId(1), "pi-1", 1);
    submit_as(&mut h, ConnId(201), &genesis_job(0..1 << 16), 0);
    h.drain();
    let ask = |h: &mut Harness, conn: ConnId, m: ClientToCoord| -> CoordToClient {
        h.core.handle_inbound(h.now, conn, Inbound::Client(m));
        let out = h.drain();
        let replies: Vec<CoordToClient> = out
            .into_iter()
            .filter_map(|t| match t {
                Transmit::ToClient(c, m) if c == conn => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 1, "{replies:?}");
        replies.into_iter().next().unwrap()
    };
    let job = |request| JobRequest {
        request: RequestId(request),
        job: JobId(1),
    };
    let not_permitted = |request, text: &str| {
        CoordToClient::Refused(RequestId(request), Refusal::NotPermitted(text.into()))
    };
    // Bob may not touch Alice's job, nor see it.
    assert_eq!(
        ask(&mut h, ConnId(202), ClientToCoord::Watch(job(1))),
        not_permitted(1, "job j1 belongs to another client: client bob may not watch it (an admin credential may)")
    );
    assert_eq!(
        ask(&mut h, ConnId(202), ClientToCoord::Cancel(job(2))),
        not_permitted(2, "job j1 belongs to another client: client bob may not cancel it (an admin credential may)")
    );
    assert_eq!(
        ask(&mut h, ConnId(202), ClientToCoord::Forget(job(3))),
        not_permitted(3, "job j1 belongs to another client: client bob may not forget it (an admin credential may)")
    );
    assert_eq!(
        ask(&mut h, ConnId(202), ClientToCoord::ListJobs(RequestId(4))),
        CoordToClient::Jobs(RequestId(4), vec![])
    );
    let CoordToClient::Status(_, status) =
        ask(&mut h, ConnId(202), ClientToCoord::Status(RequestId(5)))
    else {
        panic!()
    };
    assert_eq!((status.workers.len(), status.jobs.len()), (1, 0));
    // Nor manage the cluster.
    assert_eq!(
        ask(
            &mut h,
            ConnId(202),
            ClientToCoord::Drain(Drain {
                request: RequestId(6),
                worker: "pi-1".into(),
                drain: true,
                reason: None,
            })
        ),
        not_permitted(
            6,
            "client bob may not drain or undrain workers: that takes an admin credential"
        )
    );
    assert_eq!(
        ask(&mut h, ConnId(202), ClientToCoord::Prune(RequestId(7))),
        not_permitted(
            7,
            "client bob may not remove every finished job: that takes an admin credential"
        )
    );
    assert_eq!(
        ask(
            &mut h,
            ConnId(202),
            ClientToCoord::Release(WorkerRequest {
                request: RequestId(8),
                worker: "pi-1".into()
            })
        ),
        not_permitted(
            8,
            "client bob may not release quarantined workers: that takes an admin credential"
        )
    );
    // A job that does not exist is still unknown, not forbidden.
    assert_eq!(
        ask(
            &mut h,
            ConnId(202),
            ClientToCoord::Cancel(JobRequest {
                request: RequestId(9),
                job: JobId(9)
            })
        ),
        CoordToClient::Refused(RequestId(9), Refusal::UnknownJob(JobId(9)))
    );
    // Alice sees and cancels her own; the admin sees everyone's.
    let CoordToClient::Jobs(_, listed) =
        ask(&mut h, ConnId(201), ClientToCoord::ListJobs(RequestId(10)))
    else {
        panic!()
    };
    assert_eq!(listed.len(), 1);
    let CoordToClient::Jobs(_, listed) =
        ask(&mut h, CLIENT, ClientToCoord::ListJobs(RequestId(11)))
    else {
        panic!()
    };
    assert_eq!(listed.len(), 1);
    assert!(matches!(
        ask(&mut h, ConnId(201), ClientToCoord::Cancel(job(12))),
        CoordToClient::Cancelled(RequestId(12), _)
    ));
}

#[test]
fn shares_are_verified_and_a_false_share_quarantines_the_worker() {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 18,
        max_chunk: 1 << 18,
        ..CoordinatorConfig::default()
    });
    h.core
        .handle_connected(h.now, ConnId(1), PeerIdentity::new(Role::Worker, "sharer"));
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Hello(WorkerHello {
            minor: PROTOCOL_MINOR,
            agent_version: "t".into(),
            threads: 1,
            arch: "x86_64".into(),
            kernel_impl: "test".into(),
            bench_hps: 1,
            kernels: vec![],
        }),
    );
    let out = h.drain();
    assert!(out.contains(&Transmit::ToWorker(
        ConnId(1),
        CoordToWorker::ShareTarget(ShareTarget { bits: 16 })
    )));
    let job = Sha256dJob::new(vectors()[0].header, None, 0..1 << 18, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 1);
    let lease = &a[0].1;
    // The shares of the lease, as the worker's share-reporting scan finds them, and
    // checked against the sha2 crate.
    let kernel = job.kernel();
    let sharing = kernel.with_shares(16).unwrap();
    let mut hits = Vec::new();
    sharing.scan(lease.start..lease.end, &mut hits);
    let shares: Vec<u64> = hits
        .iter()
        .copied()
        .filter(|&i| {
            let (version, nonce) = job.locate(i);
            let hash = picluster_core::kernel::sha256d::display_order(
                &job.header.with(version, nonce).hash(),
            );
            hash[0] == 0 && hash[1] == 0
        })
        .collect();
    assert_eq!(
        shares, hits,
        "at 16 bits every hit of a difficulty-1 job is a share"
    );
    // It commits a first part, then sends the shares above it: they vouch for it.
    let p1 = lease.start + (1 << 14);
    let p2 = lease.end - 1000;
    let above: Vec<u64> = shares.iter().copied().filter(|&i| i >= p1).collect();
    assert!(!above.is_empty());
    h.progress(ConnId(1), lease.lease, p1);
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: above.clone(),
        }),
    );
    assert!(closes(&h.drain()).is_empty());
    assert_eq!(h.core.stats().shares, above.len() as u64);
    // More work, not vouched for by any share yet, then a "share" that is not one.
    h.progress(ConnId(1), lease.lease, p2);
    assert_eq!(
        h.core.report(JobId(1), h.now).unwrap().hashes,
        p2 - lease.start
    );
    let not_share = (p2..lease.end).find(|i| !shares.contains(i)).unwrap();
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![not_share],
        }),
    );
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::BadResult)]);
    assert!(out.iter().any(|t| matches!(
        t,
        Transmit::Close(ConnId(1), reason) if reason.to_string().starts_with(&format!(
            "index {not_share} reported as a share in lease {} does not meet the share target: worker sharer is quarantined",
            lease.lease
        ))
    )), "{out:?}");
    // What its shares vouched for stays committed; what came after is searched again.
    assert_eq!(
        h.core.report(JobId(1), h.now).unwrap().hashes,
        p1 - lease.start
    );
}

#[test]
fn a_claimed_benchmark_counts_for_at_most_eight_times_the_peers_until_measured() {
    let mut h = Harness::new(CoordinatorConfig::default());
    h.add_worker(ConnId(1), "honest", 10_000_000);
    h.add_worker(ConnId(2), "boaster", u64::MAX);
    let job = genesis_job(0..1 << 32);
    h.submit(&job, SearchMode::All);
    let a = assigns(&h.drain());
    let held = |conn: ConnId| -> u64 {
        a.iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, x)| x.end - x.start)
            .sum()
    };
    // Calibration chunks (0.5 s) at the honest benchmark, and at eight times it for
    // the boaster: not the 2^32 a believed claim of u64::MAX H/s would take.
    let per_lease = |conn: ConnId| -> Vec<u64> {
        a.iter()
            .filter(|(c, _)| *c == conn)
            .map(|(_, x)| x.end - x.start)
            .collect()
    };
    assert_eq!(per_lease(ConnId(1)), vec![5_000_000, 5_000_000]);
    assert_eq!(per_lease(ConnId(2)), vec![40_000_000, 40_000_000]);
    assert_eq!(held(ConnId(2)), 80_000_000);
    // Alone, a worker's claim is all there is to go by.
    let mut alone = Harness::new(CoordinatorConfig::default());
    alone.add_worker(ConnId(1), "only", 1_000_000_000);
    alone.submit(&job, SearchMode::All);
    let sizes: Vec<u64> = assigns(&alone.drain())
        .iter()
        .map(|(_, x)| x.end - x.start)
        .collect();
    assert_eq!(sizes, vec![500_000_000, 500_000_000]);
}

#[test]
fn a_first_mode_report_counts_the_work_up_to_its_solution_names_the_finder_and_counts_the_others() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.add_worker(ConnId(2), "pi-2", 1);
    let job = genesis_job(0..1 << 16);
    h.submit(&job, SearchMode::First);
    let a = assigns(&h.drain());
    // pi-2 searched its first chunk to the end; then pi-1 found two solutions in the
    // middle of its second chunk, after reporting half of it.
    let (c0, first) = &a[0];
    let (c1, second) = a
        .iter()
        .find(|(c, l)| c != c0 && l.start > first.start)
        .expect("a chunk of the other worker");
    h.progress(*c1, second.lease, second.start + 1000);
    let mut hits = Vec::new();
    job.kernel()
        .scan(second.start + 1000..second.end, &mut hits);
    assert!(hits.len() >= 2, "easy target: several hits in a chunk");
    let claimed = vec![hits[1], hits[0]];
    h.found(*c1, second.lease, claimed.clone());
    let report = finished(&h.drain()).expect("job finished");
    assert_eq!(report.state, JobState::Completed);
    // The lowest of what was found, and how many others.
    assert_eq!(report.solutions.len(), 1);
    assert_eq!(report.solutions[0].index, hits[0]);
    assert_eq!(report.others, 1);
    let finder = if *c1 == ConnId(1) { "pi-1" } else { "pi-2" };
    assert_eq!(report.finder(&report.solutions[0]), Some(finder));
    // Searched: the finder's chunk up to its highest claimed solution, and nothing
    // of the other worker's chunk, whose progress was never reported.
    assert_eq!(report.hashes, hits[1] + 1 - second.start);
    assert_eq!(report.contributions.len(), 1);
    assert_eq!(report.contributions[0].worker, finder);
    assert_eq!(report.contributions[0].hashes, report.hashes);
    assert_eq!(report.contributions[0].chunks, 2);
    assert_eq!(report.kind, "sha256d");
    assert!(report.times.started_ms.is_some() && report.times.ended_ms.is_some());
    // The detail agrees, and lists both solutions found.
    let detail = h.core.detail(JobId(1), h.now).unwrap();
    assert_eq!(detail.solutions.len(), 2);
    assert_eq!(detail.found_by.len(), 2);
    let named: Vec<&str> = detail
        .found_by
        .iter()
        .map(|i| detail.workers[*i as usize].worker.as_str())
        .collect();
    assert_eq!(named, vec![finder, finder]);
    let w = detail.workers.iter().find(|w| w.worker == finder).unwrap();
    assert_eq!((w.hashes, w.chunks, w.solutions), (report.hashes, 2, 2));
    // In all mode every solution is listed and none counted as "others".
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let (report, _) = {
        h.submit(&job, SearchMode::All);
        run_to_completion(&mut h, &job)
    };
    let mut all = Vec::new();
    job.kernel().scan(0..1 << 16, &mut all);
    assert_eq!(report.solutions.len(), all.len());
    assert_eq!(report.others, 0);
    assert_eq!(report.found_by.len(), all.len());
    assert!(report
        .solutions
        .iter()
        .all(|s| report.finder(s) == Some("pi-1")));
}

#[test]
fn a_queued_job_says_what_it_waits_for() {
    let mut h = Harness::small_chunks();
    let waiting = |h: &Harness| {
        h.core
            .jobs(h.now)
            .into_iter()
            .map(|j| j.waiting)
            .collect::<Vec<_>>()
    };
    let job = genesis_job(0..1 << 14);
    h.submit(&job, SearchMode::All);
    h.drain();
    assert_eq!(waiting(&h), vec![Some("no workers connected".to_string())]);
    // A custom job waits for a worker with its kernel.
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(5),
        work: WorkSpec::Custom(CustomWork {
            kernel: "histogram".into(),
            params: vec![],
            keyspace: 100,
            block: 10,
        }),
        mode: SearchMode::All,
        priority: 9,
    }));
    h.add_worker(ConnId(1), "pi-1", 1);
    h.drain();
    let now = waiting(&h);
    assert_eq!(now[0], None, "j1 runs on pi-1");
    assert_eq!(
        now[1].as_deref(),
        Some("no connected worker has kernel \"histogram\"")
    );
    // A drained worker runs nothing new.
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(6),
        work: WorkSpec::from(&JobKind::Sha256d(job)),
        mode: SearchMode::All,
        priority: -1,
    }));
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(7),
        worker: "pi-1".into(),
        drain: true,
        reason: Some("  dusting  ".into()),
    }));
    h.drain();
    assert_eq!(
        waiting(&h)[2].as_deref(),
        Some("every worker that can run it is drained or unresponsive")
    );
    let status = h.core.status(h.now);
    assert_eq!(status.workers[0].state, WorkerState::Draining);
    assert_eq!(status.workers[0].drain_reason.as_deref(), Some("dusting"));
    assert_eq!(status.workers[0].jobs, vec![JobId(1)]);
}

#[test]
fn a_worker_away_may_be_drained_and_takes_no_work_when_it_comes_back() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.core.handle_disconnected(h.now, ConnId(1));
    h.drain();
    // Unknown names are refused: a typo must not mark a worker that never was.
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(3),
        worker: "pi-9".into(),
        drain: true,
        reason: None,
    }));
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(4),
        worker: "pi-1".into(),
        drain: true,
        reason: Some("new SD card".into()),
    }));
    let out = h.drain();
    let replies: Vec<&CoordToClient> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::ToClient(CLIENT, m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(
        replies[0],
        &CoordToClient::Refused(RequestId(3), Refusal::UnknownWorker("pi-9".into()))
    );
    let CoordToClient::Drained(RequestId(4), status) = replies[1] else {
        panic!("{replies:?}")
    };
    assert_eq!(status.state, WorkerState::Drained);
    assert_eq!(status.worker, WorkerId(0), "not connected");
    assert_eq!(status.drain_reason.as_deref(), Some("new SD card"));
    let listed = h.core.status(h.now).workers;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].state, WorkerState::Drained);
    // Back: no work until undrained.
    h.add_worker(ConnId(2), "pi-1", 1);
    let job = genesis_job(0..1 << 14);
    h.submit(&job, SearchMode::All);
    assert!(assigns(&h.drain()).is_empty());
    assert_eq!(h.core.status(h.now).workers[0].state, WorkerState::Drained);
    h.client(ClientToCoord::Drain(Drain {
        request: RequestId(8),
        worker: "pi-1".into(),
        drain: false,
        reason: None,
    }));
    let out = h.drain();
    assert!(!assigns(&out).is_empty());
    assert_eq!(h.core.status(h.now).workers[0].drain_reason, None);
}

#[test]
fn a_client_of_an_older_client_protocol_is_told_to_upgrade() {
    let mut h = Harness::small_chunks();
    h.core
        .handle_connected(h.now, ConnId(9), PeerIdentity::new(Role::Client, "old"));
    h.core.handle_inbound(
        h.now,
        ConnId(9),
        Inbound::Client(ClientToCoord::Hello(ClientHello {
            minor: 2,
            client_version: "0.0.9".into(),
        })),
    );
    let out = h.drain();
    let [Transmit::Close(ConnId(9), reason)] = &out[..] else {
        panic!("{out:?}")
    };
    assert_eq!(reason.code(), CloseCode::Protocol);
    assert_eq!(
        reason.to_string(),
        format!("this coordinator speaks client protocol minor {PROTOCOL_MINOR} and the client 2: upgrade the picluster client (or program) to this coordinator's version")
    );
}

#[test]
fn typed_refusals_for_clients_of_minor_4_and_the_same_text_for_older_ones() {
    let mut h = Harness::small_chunks();
    add_client(&mut h, ConnId(201), "alice");
    add_client_at(&mut h, ConnId(202), "bob", MINOR_TYPED_REFUSALS);
    add_client_at(&mut h, ConnId(203), "carol", MINOR_CLIENT_REPORTS);
    submit_as(&mut h, ConnId(201), &genesis_job(0..1 << 16), 0);
    h.drain();
    let ask = |h: &mut Harness, conn: ConnId, m: ClientToCoord| -> Refusal {
        h.core.handle_inbound(h.now, conn, Inbound::Client(m));
        match &h.drain()[..] {
            [Transmit::ToClient(c, CoordToClient::Refused(_, why))] if *c == conn => why.clone(),
            other => panic!("expected one refusal, got {other:?}"),
        }
    };
    let cancel = |request| {
        ClientToCoord::Cancel(JobRequest {
            request: RequestId(request),
            job: JobId(1),
        })
    };
    // Another client's job: the action, and what it takes.
    let typed = ask(&mut h, ConnId(202), cancel(1));
    let expected = NotPermitted {
        client: "bob".into(),
        action: Action::Cancel(JobId(1)),
        needs: Needs::OwnerOrAdmin,
    };
    assert_eq!(typed, Refusal::Forbidden(expected));
    assert_eq!(
        typed.to_string(),
        "not permitted: job j1 belongs to another client: client bob may not cancel it (an admin credential may)"
    );
    // A client of minor 3 gets the same words as text.
    let text = ask(&mut h, ConnId(203), cancel(2));
    assert_eq!(
        text,
        Refusal::NotPermitted(
            "job j1 belongs to another client: client carol may not cancel it (an admin credential may)"
                .into()
        )
    );
    // An admin's action.
    let prune = ask(&mut h, ConnId(202), ClientToCoord::Prune(RequestId(3)));
    assert_eq!(
        prune,
        Refusal::Forbidden(NotPermitted {
            client: "bob".into(),
            action: Action::PruneJobs,
            needs: Needs::Admin,
        })
    );
    assert_eq!(
        prune.clone().for_minor(MINOR_CLIENT_REPORTS),
        Refusal::NotPermitted(
            "client bob may not remove every finished job: that takes an admin credential".into()
        )
    );
    // An invalid job: the spec error's kind and words.
    let short = Sha256dWork {
        header: vec![0; 3],
        ..match WorkSpec::from(&JobKind::Sha256d(genesis_job(0..10))) {
            WorkSpec::Sha256d(w) => w,
            _ => unreachable!(),
        }
    };
    let submit = |request| {
        ClientToCoord::Submit(Submit {
            request: RequestId(request),
            work: WorkSpec::Sha256d(short.clone()),
            mode: SearchMode::First,
            priority: 0,
        })
    };
    assert_eq!(
        ask(&mut h, ConnId(202), submit(4)),
        Refusal::BadJob(InvalidJob {
            kind: JobErrorKind::Sha256d,
            reason: "header is 3 bytes, expected 80".into(),
        })
    );
    assert_eq!(
        ask(&mut h, ConnId(203), submit(5)),
        Refusal::InvalidJob("header is 3 bytes, expected 80".into())
    );
    // A token request out of bounds, from an admin of minor 4; and its own revocation.
    add_client_as(
        &mut h,
        ConnId(204),
        Role::Admin,
        "root",
        MINOR_TYPED_REFUSALS,
    );
    let token = ClientToCoord::CreateToken(CreateToken {
        request: RequestId(6),
        id: "0a0b0c0d0e0f".into(),
        secret_sha256: [0; 32],
        role: Role::Worker,
        ttl_s: 0,
        uses: 1,
        replace: false,
    });
    let refused = ask(&mut h, ConnId(204), token);
    assert_eq!(
        refused,
        Refusal::BadToken(TokenRequestError::Lifetime {
            ttl_s: 0,
            max_s: 86_400
        })
    );
    assert_eq!(
        refused.to_string(),
        "invalid token request: lifetime 0 s is outside 1 s ..= 86400 s (24 h)"
    );
    let own = ClientToCoord::Revoke(WorkerRequest {
        request: RequestId(7),
        worker: "root".into(),
    });
    assert_eq!(
        ask(&mut h, ConnId(204), own),
        Refusal::Forbidden(NotPermitted {
            client: "root".into(),
            action: Action::RevokeOwn("root".into()),
            needs: Needs::AnotherCredential,
        })
    );
}

#[test]
fn a_refused_certificate_request_is_typed_for_joiners_of_minor_4() {
    let mut h = Harness::new(CoordinatorConfig::default());
    for (conn, minor) in [(ConnId(301), MINOR_TYPED_REFUSALS), (ConnId(302), 3)] {
        h.core.handle_joining(h.now, conn);
        h.core.handle_inbound(
            h.now,
            conn,
            Inbound::Join(
                JoinRequest {
                    minor,
                    token: "0a0b0c0d0e0f".into(),
                    secret: [1; 16],
                    name: "pi-9".into(),
                    role: Role::Worker,
                    csr: vec![],
                },
                Err(CsrError::BadSignature),
            ),
        );
    }
    assert_eq!(
        h.drain(),
        vec![
            Transmit::ToJoiner(
                ConnId(301),
                CoordToJoin::Refused(JoinRefusal::BadCsr(CsrError::BadSignature))
            ),
            Transmit::ToJoiner(
                ConnId(302),
                CoordToJoin::Refused(JoinRefusal::BadRequest(
                    "its signature does not verify".into()
                ))
            ),
        ]
    );
}

/// A one-thread worker's hello at protocol `minor`.
fn hello_at(minor: u16) -> WorkerToCoord {
    WorkerToCoord::Hello(WorkerHello {
        minor,
        agent_version: "t".into(),
        threads: 1,
        arch: "x86_64".into(),
        kernel_impl: "test".into(),
        bench_hps: 1,
        kernels: vec![],
    })
}

/// A worker on `conn` speaking the current minor (shares included), greeted.
fn add_sharer(h: &mut Harness, conn: ConnId, name: &str) -> Vec<Transmit> {
    h.core
        .handle_connected(h.now, conn, PeerIdentity::new(Role::Worker, name));
    h.worker_says(conn, hello_at(PROTOCOL_MINOR));
    h.drain()
}

/// A worker `name` with the one lease of a `keyspace`-index job (chunks of 2^18),
/// and the lease's shares at the initial target.
fn one_shared_lease(name: &str, keyspace: u64) -> (Harness, Assign, Vec<u64>) {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 18,
        max_chunk: 1 << 18,
        ..CoordinatorConfig::default()
    });
    add_sharer(&mut h, ConnId(1), name);
    let job = Sha256dJob::new(vectors()[0].header, None, 0..keyspace, 0).unwrap();
    h.submit(&job, SearchMode::All);
    let lease = assigns(&h.drain())[0].1.clone();
    let shares = shares_of(&job, lease.start..lease.end, 16);
    (h, lease, shares)
}

/// The shares at `bits` of `range` of `job`, as an honest worker's scan finds them.
fn shares_of(job: &Sha256dJob, range: std::ops::Range<u64>, bits: u32) -> Vec<u64> {
    let sharing = job.kernel().with_shares(bits).unwrap();
    let mut hits = Vec::new();
    sharing.scan(range, &mut hits);
    hits
}

#[test]
fn a_share_sent_twice_quarantines_its_worker() {
    let (mut h, lease, shares) = one_shared_lease("replayer", 1 << 18);
    let one = *shares.first().expect("a share in 2^18 indices at 16 bits");
    // Shares come before the progress past them (the scan reports what it finds).
    let say = |h: &mut Harness, indices: Vec<u64>| {
        h.worker_says(
            ConnId(1),
            WorkerToCoord::Shares(Found {
                lease: lease.lease,
                indices,
            }),
        );
        h.drain()
    };
    assert!(closes(&say(&mut h, vec![one])).is_empty());
    assert_eq!(h.core.stats().shares, 1);
    // The same share again, in the next report: counted once, and a violation.
    let out = say(&mut h, vec![one]);
    assert_eq!(closes(&out), vec![(ConnId(1), CloseCode::BadResult)]);
    assert_eq!(h.core.stats().shares, 1);
    assert!(out.iter().any(|t| matches!(
        t,
        Transmit::Close(ConnId(1), reason) if reason.to_string().starts_with(&format!(
            "index {one} reported as a share of lease {} a second time: worker replayer is quarantined",
            lease.lease
        ))
    )), "{out:?}");
    // Its whole session's claims are searched again; the metric counts the rejection.
    assert_eq!(h.core.report(JobId(1), h.now).unwrap().hashes, 0);
    let metrics = h.core.metrics(h.now);
    let totals = metrics
        .workers
        .iter()
        .find(|w| w.name == "replayer")
        .unwrap();
    assert_eq!(totals.totals.rejected, 1);
    // Twice in one report is the same violation.
    let (mut h2, lease, _) = one_shared_lease("replayer", 1 << 18);
    h2.worker_says(
        ConnId(1),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![one, one],
        }),
    );
    assert_eq!(closes(&h2.drain()), vec![(ConnId(1), CloseCode::BadResult)]);
}

#[test]
fn a_reconnected_worker_keeps_its_share_account_and_its_adopted_lease_is_judged() {
    let (mut h, lease, shares) = one_shared_lease("churner", 1 << 20);
    let (first, second) = (shares[0], shares[1]);
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![first, second],
        }),
    );
    h.progress(ConnId(1), lease.lease, first + 1);
    h.drain();
    assert_eq!(h.core.stats().shares, 2);
    // The connection drops; another worker may not take the lease over.
    h.core.handle_disconnected(h.now, ConnId(1));
    h.drain();
    let held = |lease: &Assign, position| HeldLease {
        lease: lease.lease,
        job: JobId(1),
        work: lease.work.digest(),
        start: lease.start,
        position,
        end: lease.end,
        found: vec![],
    };
    // Its hello and its claim arrive in one batch, before the scheduler hands the
    // queued range out (as the agent sends them).
    let rejoin = |h: &mut Harness, conn: ConnId, name: &str, lease: &Assign| {
        h.core
            .handle_connected(h.now, conn, PeerIdentity::new(Role::Worker, name));
        for message in [
            hello_at(PROTOCOL_MINOR),
            WorkerToCoord::Holding(Holding {
                leases: vec![held(lease, first + 1)],
            }),
        ] {
            h.core.handle_inbound(h.now, conn, Inbound::Worker(message));
        }
        h.drain()
    };
    let out = rejoin(&mut h, ConnId(2), "thief", &lease);
    assert!(stops(&out).contains(&(ConnId(2), lease.lease)), "{out:?}");
    assert_eq!(h.core.stats().adopted_leases, 0);
    h.core.handle_disconnected(h.now, ConnId(2));
    h.drain();
    // The worker is back: its account carries on, and the lease it kept is adopted
    // at the target it was given, so the shares it reports there count and a share
    // sent before is still a repeat.
    rejoin(&mut h, ConnId(3), "churner", &lease);
    assert_eq!(h.core.stats().adopted_leases, 1);
    h.worker_says(
        ConnId(3),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![shares[2]],
        }),
    );
    assert!(closes(&h.drain()).is_empty());
    assert_eq!(
        h.core.stats().shares,
        3,
        "a share on an adopted lease counts"
    );
    // A share it sent before the connection dropped is still a repeat.
    h.worker_says(
        ConnId(3),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![second],
        }),
    );
    let out = h.drain();
    assert_eq!(closes(&out), vec![(ConnId(3), CloseCode::BadResult)]);
    assert!(
        out.iter().any(|t| matches!(
            t,
            Transmit::Close(ConnId(3), reason) if reason.to_string().contains("a second time")
        )),
        "{out:?}"
    );
}

#[test]
fn a_certificate_is_renewed_only_in_the_last_third_of_its_life() {
    const DAY: u64 = 86_400_000;
    let mut h = Harness::new(CoordinatorConfig::default());
    let now_ms = 1_765_000_000_000;
    h.core.handle_wall_clock(h.now, now_ms);
    let identity = |name: &str, issued_days_ago: u64| PeerIdentity {
        role: Role::Worker,
        name: name.into(),
        issued_ms: now_ms - issued_days_ago * DAY,
        not_before_ms: now_ms - issued_days_ago * DAY,
        expires_ms: now_ms - issued_days_ago * DAY + 90 * DAY,
    };
    let renew = |h: &mut Harness, conn: ConnId| {
        h.worker_says(conn, WorkerToCoord::Renew(Renew { csr: vec![1] }));
        h.drain()
    };
    // Ten days into ninety: not due (at minor 4 typed, at minor 3 as text).
    for (conn, minor) in [(ConnId(1), PROTOCOL_MINOR), (ConnId(2), 3)] {
        h.core
            .handle_connected(h.now, conn, identity(&format!("fresh-{}", conn.0), 10));
        h.worker_says(conn, hello_at(minor));
        h.drain();
    }
    let due_ms = now_ms - 10 * DAY + 60 * DAY;
    assert_eq!(
        renew(&mut h, ConnId(1)),
        vec![Transmit::ToWorker(
            ConnId(1),
            CoordToWorker::RenewRefused(JoinRefusal::NotDue { due_ms })
        )]
    );
    assert_eq!(
        renew(&mut h, ConnId(2)),
        vec![Transmit::ToWorker(
            ConnId(2),
            CoordToWorker::RenewRefused(JoinRefusal::BadRequest(format!(
                "this certificate is not due for renewal before {due_ms} (Unix ms): certificates are renewed in the last third of their life"
            )))
        )]
    );
    // Seventy days in: renewed, once per connection.
    h.core
        .handle_connected(h.now, ConnId(3), identity("old", 70));
    h.worker_says(ConnId(3), hello_at(PROTOCOL_MINOR));
    h.drain();
    let out = renew(&mut h, ConnId(3));
    assert!(
        matches!(&out[..], [Transmit::Issue(ConnId(3), issue)] if issue.renewal && issue.name == "old"),
        "{out:?}"
    );
    assert!(matches!(
        &renew(&mut h, ConnId(3))[..],
        [Transmit::ToWorker(
            ConnId(3),
            CoordToWorker::RenewRefused(JoinRefusal::BadRequest(_))
        )]
    ));
}

#[test]
fn a_lease_whose_worker_kept_everything_is_not_asked_again_at_once() {
    let (mut h, trim, owned) = a_trim_of_the_slow_workers_lease();
    // Near its end, the slow worker answers keeping everything: believable (its
    // thread has begun the blocks left), so the lease stays whole...
    let position = owned.end - 100_000;
    h.progress(ConnId(1), trim.lease, position);
    h.drain();
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Trimmed(Trimmed {
            lease: trim.lease,
            end: owned.end,
        }),
    );
    let trims_of = |out: &[Transmit]| {
        out.iter()
            .filter(|t| {
                matches!(t, Transmit::ToWorker(ConnId(1), CoordToWorker::Trim(x)) if x.lease == trim.lease)
            })
            .count()
    };
    let out = h.drain();
    assert!(stops(&out).is_empty(), "{out:?}");
    assert_eq!(trims_of(&out), 0, "asked again at once: {out:?}");
    // ...and it is not asked again before a progress interval has passed, however
    // often it reports (before: a new trim at once, every time).
    for k in 1..=4 {
        h.now += Duration::from_millis(50);
        h.progress(ConnId(1), trim.lease, position + k * 10);
        assert_eq!(trims_of(&h.drain()), 0, "report {k}");
    }
    h.now += h.core.config().progress_interval;
    h.progress(ConnId(1), trim.lease, position + 100);
    assert_eq!(trims_of(&h.drain()), 1);
}

#[test]
fn a_client_sees_only_its_own_certificates_and_an_admin_all() {
    let mut h = Harness::new(CoordinatorConfig::default());
    add_client(&mut h, ConnId(201), "alice");
    h.add_worker(ConnId(1), "pi-1", 1);
    h.core.handle_inbound(
        h.now,
        CLIENT,
        Inbound::Client(ClientToCoord::Revoke(WorkerRequest {
            request: RequestId(5),
            worker: "pi-9".into(),
        })),
    );
    h.drain();
    let credentials = |h: &mut Harness, conn: ConnId| {
        h.core.handle_inbound(
            h.now,
            conn,
            Inbound::Client(ClientToCoord::Credentials(RequestId(6))),
        );
        match &h.drain()[..] {
            [Transmit::ToClient(_, CoordToClient::Credentials(_, report))] => report.clone(),
            other => panic!("{other:?}"),
        }
    };
    let mine = credentials(&mut h, ConnId(201));
    let names: Vec<&str> = mine.connected.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["alice"]);
    assert!(mine.revoked.is_empty());
    let all = credentials(&mut h, CLIENT);
    let names: Vec<&str> = all.connected.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["admin", "alice", "pi-1"]);
    assert_eq!(all.revoked.len(), 1);
}

#[test]
fn a_quarantined_worker_counts_in_the_workers_by_state_metric() {
    let (mut h, lease, shares) = one_shared_lease("liar", 1 << 18);
    let not_share = (lease.start..lease.end)
        .find(|i| !shares.contains(i))
        .unwrap();
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Shares(Found {
            lease: lease.lease,
            indices: vec![not_share],
        }),
    );
    assert_eq!(closes(&h.drain()), vec![(ConnId(1), CloseCode::BadResult)]);
    h.core.handle_disconnected(h.now, ConnId(1));
    h.drain();
    let snapshot = h.core.metrics(h.now);
    let liar = snapshot.workers.iter().find(|w| w.name == "liar").unwrap();
    assert!(!liar.connected);
    assert_eq!(liar.state, Some(WorkerState::Quarantined));
    let text = picluster_core::service::encode_coordinator(
        &snapshot,
        &picluster_core::service::DriverMetrics::default(),
    );
    assert!(
        text.lines()
            .any(|l| l == "picluster_workers{state=\"quarantined\"} 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "picluster_worker_up{worker=\"liar\"} 0"),
        "{text}"
    );
}
