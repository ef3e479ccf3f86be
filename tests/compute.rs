//! The worker's compute engine on a real rayon pool, against the reference scan.

use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_suite::fixtures::{easy_target, reference_scan, vectors};
use picluster_worker::compute::{Compute, ComputeEvent, TaskId, Work, BLOCK};
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

fn engine(threads: usize) -> (Compute, mpsc::Receiver<ComputeEvent>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let compute = Compute::start(threads, move |e| {
        let _ = tx.lock().unwrap().send(e);
    })
    .unwrap();
    (compute, rx)
}

/// Collects events of `task` until it finishes.
fn until_finished(rx: &mpsc::Receiver<ComputeEvent>, task: TaskId) -> (Vec<u64>, Vec<u64>, u64) {
    let (mut found, mut progress) = (Vec::new(), Vec::new());
    loop {
        match rx
            .recv_timeout(Duration::from_secs(30))
            .expect("engine answers")
        {
            ComputeEvent::Found { task: t, indices } if t == task => found.extend(indices),
            ComputeEvent::Progress {
                task: t, position, ..
            } if t == task => {
                // Every solution below a reported position was reported before it.
                progress.push(position)
            }
            ComputeEvent::Finished {
                task: t, position, ..
            } if t == task => return (found, progress, position),
            _ => {}
        }
    }
}

#[test]
fn engine_finds_exactly_the_reference_solutions_on_two_threads() {
    let v = &vectors()[1];
    let nonces = u64::from(v.nonce) - 300_000..u64::from(v.nonce) + 100_000;
    let job = Sha256dJob::new(v.header, Some(easy_target()), nonces.clone(), 0).unwrap();
    let (compute, rx) = engine(2);
    compute.run(
        TaskId(1),
        Work::Search(Arc::new(job.kernel())),
        0..job.keyspace(),
        Duration::from_millis(1),
    );
    let (mut found, progress, position) = until_finished(&rx, TaskId(1));
    found.sort();
    let reference: Vec<u64> = reference_scan(&v.header, &job.target, nonces.clone())
        .into_iter()
        .map(|n| u64::from(n) - nonces.start)
        .collect();
    assert_eq!(found, reference);
    assert!(
        found.contains(&300_000),
        "the block's own nonce meets an easy target"
    );
    assert_eq!(position, job.keyspace());
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress only moves forward"
    );
    assert!(progress
        .iter()
        .all(|p| p % BLOCK == 0 && *p < job.keyspace()));
}

#[test]
fn a_stopped_task_reports_its_contiguous_prefix_and_queued_tasks_run_after() {
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, 0..1 << 32, 0).unwrap();
    let (compute, rx) = engine(2);
    let kernel = Work::Search(Arc::new(job.kernel()));
    compute.run(
        TaskId(1),
        kernel.clone(),
        0..1 << 32,
        Duration::from_millis(5),
    );
    compute.run(
        TaskId(2),
        kernel.clone(),
        0..BLOCK * 2,
        Duration::from_millis(5),
    );
    compute.run(TaskId(3), kernel, 0..BLOCK, Duration::from_millis(5));
    compute.stop(TaskId(3)); // stopped while queued: never runs
    std::thread::sleep(Duration::from_millis(50));
    compute.stop(TaskId(1));
    let (_, _, stopped_at) = until_finished(&rx, TaskId(1));
    assert!(stopped_at > 0 && stopped_at < 1 << 32);
    assert_eq!(stopped_at % BLOCK, 0, "the prefix is made of whole blocks");
    let (_, _, second) = until_finished(&rx, TaskId(2));
    assert_eq!(second, BLOCK * 2);
    let (_, _, third) = until_finished(&rx, TaskId(3));
    assert_eq!(third, 0);
}

#[test]
fn benchmark_measures_a_positive_rate() {
    let (compute, _rx) = engine(1);
    let rate = compute.benchmark(Duration::from_millis(50));
    assert!(rate > 10_000, "rate {rate} H/s");
}

#[test]
fn a_trimmed_task_ends_at_the_trim_or_at_its_claimed_blocks() {
    let v = &vectors()[0];
    let job = Sha256dJob::new(v.header, None, 0..1 << 32, 0).unwrap();
    let (compute, rx) = engine(2);
    let kernel = Work::Search(Arc::new(job.kernel()));
    // A queued task trims exactly.
    compute.run(
        TaskId(1),
        kernel.clone(),
        0..1 << 32,
        Duration::from_millis(5),
    );
    compute.run(
        TaskId(2),
        kernel.clone(),
        0..BLOCK * 10,
        Duration::from_millis(5),
    );
    let mut trimmed = BTreeMap::new();
    trimmed.insert(TaskId(2), compute.trim(TaskId(2), BLOCK * 3 + 5).unwrap());
    // A running task ends at the end of what its threads have claimed, or later.
    std::thread::sleep(Duration::from_millis(30));
    trimmed.insert(TaskId(1), compute.trim(TaskId(1), 1).unwrap());
    let mut finished = BTreeMap::new();
    while finished.len() < 2 {
        if let ComputeEvent::Finished { task, position, .. } =
            rx.recv_timeout(Duration::from_secs(30)).unwrap()
        {
            finished.insert(task, position);
        }
    }
    assert_eq!(trimmed[&TaskId(2)], BLOCK * 3 + 5);
    assert_eq!(finished[&TaskId(2)], BLOCK * 3 + 5);
    let end = trimmed[&TaskId(1)];
    assert!(end > 1 && end % BLOCK == 0 && end < 1 << 32, "{end}");
    assert_eq!(finished[&TaskId(1)], end, "every claimed block is searched");
    // Trimming a finished task reports nothing.
    assert_eq!(compute.trim(TaskId(1), 0), None);
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
}
