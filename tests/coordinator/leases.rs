//! A lease's end, however it is reported.

use super::*;

/// A worker stopping just as its lease finished reports `Released` at the lease's
/// end: the lease is done, and so is its job if it was the last (the job stayed
/// `running` at 100 % before).
#[test]
fn a_lease_released_at_its_end_completes_its_job() {
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    h.submit(&genesis_job(0..1 << 12), SearchMode::All);
    let a = assigns(&h.drain());
    assert_eq!(a.len(), 1);
    h.release(ConnId(1), a[0].1.lease, a[0].1.end);
    let report = finished(&h.drain()).expect("the job ends");
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.hashes, 1 << 12);
    assert_eq!(h.core.status(h.now).workers[0].leases, 0);
}
