//! Shares across a coordinator restart: a lease adopted from the previous run keeps
//! the share target it was given, so the shares and claims on it are still judged,
//! and the shares verified in it up to its last row, so one sent again is a repeat.

use super::*;

#[test]
fn a_lease_adopted_after_a_restart_keeps_its_share_target() {
    // One lease of 2^18 indices: a few shares at a calibration target.
    let mut d = Durable::new(CoordinatorConfig {
        min_chunk: 1 << 18,
        max_chunk: 1 << 18,
        ..Durable::config()
    });
    let w = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w, WorkerToCoord::Holding(Holding { leases: vec![] }));
    let mut out = d.sync();
    let job = genesis(0..1 << 18);
    out.extend(d.submit(&job));
    out.extend(d.sync());
    assert!(out
        .iter()
        .any(|t| matches!(t, Transmit::ToWorker(c, CoordToWorker::ShareTarget(_)) if *c == w)));
    let (_, a) = assigns(&out).remove(0);
    // Its row, with the lease's target, is written at the next checkpoint.
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
    let bits = *d.store.share_bits[&JobId(1)]
        .get(&a.lease.0)
        .expect("the lease's target is durable");
    d.crash();
    assert_eq!(d.core.stats().shares, 0);

    // pi-1 comes back holding the lease; a share it finds there is verified at the
    // lease's target (before, the adopted lease had none and its shares were ignored).
    let w1 = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(
        w1,
        WorkerToCoord::Holding(Holding {
            leases: vec![HeldLease {
                lease: a.lease,
                job: JobId(1),
                work: a.work.digest(),
                start: a.start,
                position: a.start + 1000,
                end: a.end,
                found: vec![],
            }],
        }),
    );
    d.sync();
    // Shares of the header at the lease's target (a job without a target of its
    // own, so that its solutions are not among them).
    let plain = Sha256dJob::new(job.header, None, 0..1 << 18, 0).unwrap();
    let sharing = plain.kernel().with_shares(u32::from(bits)).unwrap();
    let mut hits = Vec::new();
    sharing.scan(a.start + 1000..a.end, &mut hits);
    let share = *hits.first().expect("a share in the lease at its target");
    d.worker_says(
        w1,
        WorkerToCoord::Shares(Found {
            lease: a.lease,
            indices: vec![share],
        }),
    );
    let out = d.sync();
    assert!(
        !out.iter().any(|t| matches!(t, Transmit::Close(..))),
        "{out:?}"
    );
    assert_eq!(d.core.stats().shares, 1);
    assert_eq!(d.store.share_bits[&JobId(1)].get(&a.lease.0), Some(&bits));
}

#[test]
fn a_share_verified_before_a_restart_is_a_repeat_when_sent_again_after_it() {
    let mut d = Durable::new(CoordinatorConfig {
        min_chunk: 1 << 18,
        max_chunk: 1 << 18,
        ..Durable::config()
    });
    let w = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(w, WorkerToCoord::Holding(Holding { leases: vec![] }));
    let mut out = d.sync();
    let job = genesis(0..1 << 18);
    out.extend(d.submit(&job));
    out.extend(d.sync());
    let bits = out
        .iter()
        .find_map(|t| match t {
            Transmit::ToWorker(c, CoordToWorker::ShareTarget(s)) if *c == w => Some(s.bits),
            _ => None,
        })
        .expect("a share target");
    let (_, a) = assigns(&out).remove(0);
    let plain = Sha256dJob::new(job.header, None, 0..1 << 18, 0).unwrap();
    let sharing = plain.kernel().with_shares(u32::from(bits)).unwrap();
    let mut hits = Vec::new();
    sharing.scan(a.start + 1000..a.end, &mut hits);
    let share = *hits.first().expect("a share in the lease at its target");
    // The share is verified, the worker reports a position below it, and the row
    // (with the lease's shares) is written at the checkpoint.
    d.worker_says(
        w,
        WorkerToCoord::Shares(Found {
            lease: a.lease,
            indices: vec![share],
        }),
    );
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
    assert_eq!(d.core.stats().shares, 1);
    assert_eq!(
        d.store.lease_shares[&JobId(1)][&a.lease.0],
        [share].into_iter().collect()
    );
    d.crash();

    // Back after the restart with the lease, it sends the same share again: a
    // repeat, as it would have been without the restart.
    let w1 = d.add_worker_speaking("pi-1", PROTOCOL_MINOR);
    d.worker_says(
        w1,
        WorkerToCoord::Holding(Holding {
            leases: vec![HeldLease {
                lease: a.lease,
                job: JobId(1),
                work: a.work.digest(),
                start: a.start,
                position: a.start + 1000,
                end: a.end,
                found: vec![],
            }],
        }),
    );
    d.sync();
    d.worker_says(
        w1,
        WorkerToCoord::Shares(Found {
            lease: a.lease,
            indices: vec![share],
        }),
    );
    let out = d.sync();
    let closed: Vec<String> = out
        .iter()
        .filter_map(|t| match t {
            Transmit::Close(c, reason) if *c == w1 => Some(reason.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(closed.len(), 1, "{out:?}");
    assert!(
        closed[0].starts_with(&format!(
            "index {share} reported as a share of lease {} a second time",
            a.lease
        )),
        "{}",
        closed[0]
    );
    assert_eq!(d.core.stats().shares, 0);
}
