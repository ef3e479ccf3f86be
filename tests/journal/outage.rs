//! A coordinator that comes back after a long outage: the chunks its workers
//! computed through it are held for them for the adoption window (a worker that
//! holds chunks reconnects every 2 s at most), not only for a lease timeout; after
//! the lease timeout, a worker with nothing else to do gets them instead.

use super::*;

/// A one-chunk job whose chunk pi-1 holds at 1,000 when the coordinator crashes:
/// the harness after the restart, and pi-1's lease.
fn crashed_with_a_held_chunk() -> (Durable, Assign) {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w, WorkerToCoord::Holding(Holding { leases: vec![] }));
    let mut out = d.sync();
    out.extend(d.submit(&genesis(0..1 << 12)));
    out.extend(d.sync());
    let (_, a) = assigns(&out).remove(0);
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
    d.crash();
    (d, a)
}

fn held(a: &Assign, position: u64) -> Holding {
    Holding {
        leases: vec![HeldLease {
            lease: a.lease,
            job: JobId(1),
            work: a.work.digest(),
            start: a.start,
            position,
            end: a.end,
            found: vec![],
        }],
    }
}

#[test]
fn a_worker_back_20_s_after_the_restart_still_adopts_the_chunk_it_computed() {
    let (mut d, a) = crashed_with_a_held_chunk();
    // The coordinator is back; pi-1 returns 20 s later (it used to be given up
    // after 5 s, and the chunk searched again).
    for _ in 0..20 {
        d.now += Duration::from_secs(1);
        d.core.handle_timeout(d.now);
        d.sync();
    }
    let w = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w, WorkerToCoord::Holding(held(&a, a.end)));
    let out = d.sync();
    assert!(stops_of(&out).is_empty(), "{out:?}");
    assert_eq!(d.core.stats().adopted_leases, 1);
    let report = d.core.report(JobId(1), d.now).unwrap();
    assert_eq!(
        (report.state, report.hashes),
        (JobState::Completed, 1 << 12)
    );
}

#[test]
fn after_a_lease_timeout_an_idle_worker_takes_the_chunks_still_held() {
    let (mut d, a) = crashed_with_a_held_chunk();
    // pi-2 is back at once with nothing to do: the chunk is held for pi-1 for a
    // lease timeout, then it is pi-2's.
    let w2 = d.add_worker_speaking("pi-2", PROTOCOL_MINOR);
    d.worker_says(w2, WorkerToCoord::Holding(Holding { leases: vec![] }));
    assert!(assigns(&d.sync()).is_empty());
    d.now += Duration::from_secs(4);
    d.core.handle_timeout(d.now);
    assert!(assigns(&d.sync()).is_empty(), "held for pi-1 within 5 s");
    d.now += Duration::from_secs(2);
    d.core.handle_timeout(d.now);
    let given = assigns(&d.sync());
    assert_eq!(given.len(), 1, "{given:?}");
    assert_eq!(given[0].0, w2);
    // From where the last row left it.
    assert_eq!((given[0].1.start, given[0].1.end), (a.start + 1000, a.end));
    // pi-1, back now and still on its chunk, is told to stop: it is pi-2's.
    let w1 = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w1, WorkerToCoord::Holding(held(&a, a.start + 2000)));
    let out = d.sync();
    assert_eq!(stops_of(&out), vec![(w1, a.lease)]);
    assert_eq!(d.core.stats().adopted_leases, 0);
}

fn stops_of(out: &[Transmit]) -> Vec<(ConnId, LeaseId)> {
    out.iter()
        .filter_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::Stop(Stop { lease })) => Some((*c, *lease)),
            _ => None,
        })
        .collect()
}

/// Solutions beyond the 10,000 kept are counted in a report's `others`, and a
/// restart rebuilds the count from the store (which keeps every solution).
#[test]
fn the_count_of_solutions_beyond_the_kept_ones_survives_a_restart() {
    let mut d = Durable::new(Durable::config());
    let w = d.add_worker("pi-1");
    let everything = picluster_core::kernel::sha256d::Target([0xff; 32]);
    let job = Sha256dJob::new(vectors()[0].header, Some(everything), 0..4 << 12, 0).unwrap();
    let mut out = d.submit(&job);
    out.extend(d.sync());
    let mut held = assigns(&out);
    // Three chunks of 4,096, every index a solution: 12,288 found.
    for _ in 0..3 {
        let (_, a) = held.remove(0);
        d.worker_says(
            w,
            WorkerToCoord::Found(Found {
                lease: a.lease,
                indices: (a.start..a.end).collect(),
            }),
        );
        d.worker_says(
            w,
            WorkerToCoord::Progress(Progress {
                lease: a.lease,
                position: a.end,
            }),
        );
        held.extend(assigns(&d.sync()));
    }
    let before = d.core.report(JobId(1), d.now).unwrap();
    assert_eq!(before.others, 3 * 4096 - MAX_SOLUTIONS as u64);
    d.now += Duration::from_secs(1);
    d.core.handle_timeout(d.now);
    d.sync();
    d.crash();
    let after = d.core.report(JobId(1), d.now).unwrap();
    assert!(after.truncated);
    assert_eq!(after.solutions.len(), MAX_SOLUTIONS);
    assert_eq!(after.others, before.others);
}
