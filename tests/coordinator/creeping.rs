//! A creeping worker: one that claims many threads, hashes for a moment and then
//! advances its lease by an index per report, answering every trim by keeping the
//! whole lease. Its claimed threads are bounded by the rate it shows, so keeping
//! everything is believed only for what it could have begun, and the lease goes to
//! a worker that works.

use super::*;

/// Drives a creeper (`ConnId(1)`, 1,024 threads claimed) and an honest worker
/// (`ConnId(2)`) through a job, 250 ms a step, for at most `seconds`; what each
/// was sent, and the report if the job ended.
fn run_with_a_creeper(seconds: u64) -> (Harness, Vec<Transmit>, Option<JobReport>) {
    let mut h = Harness::new(CoordinatorConfig {
        min_chunk: 1 << 16,
        ..CoordinatorConfig::default()
    });
    h.core
        .handle_connected(h.now, ConnId(1), PeerIdentity::new(Role::Worker, "creeper"));
    h.worker_says(
        ConnId(1),
        WorkerToCoord::Hello(WorkerHello {
            minor: 0,
            agent_version: "t".into(),
            threads: 1024,
            arch: "x86_64".into(),
            kernel_impl: "test".into(),
            bench_hps: 1_000_000,
            kernels: vec![],
        }),
    );
    h.add_worker(ConnId(2), "honest", 1_000_000);
    let job = genesis_job(0..1 << 23);
    h.submit(&job, SearchMode::All);
    // Each worker's leases, in the order it got them, with its position on each.
    let mut held: BTreeMap<ConnId, Vec<(LeaseId, u64, u64)>> = BTreeMap::new();
    let mut all = Vec::new();
    for step in 0..seconds * 4 {
        let out = h.drain();
        for t in &out {
            match t {
                Transmit::ToWorker(c, CoordToWorker::Assign(a)) => {
                    held.entry(*c).or_default().push((a.lease, a.start, a.end));
                }
                Transmit::ToWorker(c, CoordToWorker::Stop(Stop { lease })) => {
                    held.entry(*c).or_default().retain(|(l, ..)| l != lease);
                }
                Transmit::ToWorker(c, CoordToWorker::Trim(trim)) => {
                    let leases = held.entry(*c).or_default();
                    let Some(l) = leases.iter_mut().find(|(l, ..)| *l == trim.lease) else {
                        continue;
                    };
                    // The creeper keeps everything; the honest worker gives up what
                    // it has not begun.
                    let end = if *c == ConnId(1) {
                        l.2
                    } else {
                        trim.end.max(l.1)
                    };
                    l.2 = end;
                    let lease = trim.lease;
                    h.worker_says(*c, WorkerToCoord::Trimmed(Trimmed { lease, end }));
                }
                _ => {}
            }
        }
        if let Some(report) = finished(&out) {
            all.extend(out);
            return (h, all, Some(report));
        }
        all.extend(out);
        h.now += Duration::from_millis(250);
        // The creeper hashes honestly for its first second, then creeps.
        let creeper_step = if step < 4 { 250_000 } else { 1 };
        for (conn, per_step) in [(ConnId(1), creeper_step), (ConnId(2), 250_000)] {
            let Some(&(lease, position, end)) = held.get(&conn).and_then(|l| l.first()) else {
                continue;
            };
            let next = (position + per_step).min(end);
            h.progress(conn, lease, next);
            if let Some(leases) = held.get_mut(&conn) {
                if next == end {
                    leases.remove(0);
                } else {
                    leases[0].1 = next;
                }
            }
        }
        if h.core.poll_timeout().is_some_and(|t| t <= h.now) {
            h.core.handle_timeout(h.now);
        }
    }
    (h, all, None)
}

#[test]
fn a_creeping_worker_keeping_its_lease_through_trims_loses_it_to_a_worker_that_works() {
    let (h, out, report) = run_with_a_creeper(120);
    let report = report.expect("the job ends while the creeper creeps");
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.hashes, 1 << 23);
    // The creeper was stopped on a lease it would not give up, and the honest worker
    // searched nearly everything.
    let trims_to_creeper = out
        .iter()
        .filter(|t| matches!(t, Transmit::ToWorker(ConnId(1), CoordToWorker::Trim(_))))
        .count();
    assert!(trims_to_creeper >= 1, "{trims_to_creeper}");
    assert!(stops(&out).iter().any(|(c, _)| *c == ConnId(1)), "{out:?}");
    assert!(h.core.stats().unhonoured_trims >= 1);
    let honest = report
        .contributions
        .iter()
        .find(|c| c.worker == "honest")
        .map_or(0, |c| c.hashes);
    assert!(honest > (1 << 23) * 3 / 4, "{:?}", report.contributions);
    // It took about as long as the honest worker alone needs (8.4 M at 1 MH/s): the
    // creeper held nothing hostage.
    assert!(report.elapsed_ms < 15_000, "{}", report.elapsed_ms);
}
