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

/// A preimage job whose every target is found ends at once: what its lease searched
/// up to the last of them counts (it reported `searched 0` before).
#[test]
fn a_preimage_job_that_finds_every_target_counts_what_was_searched() {
    use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
    let mut h = Harness::small_chunks();
    h.add_worker(ConnId(1), "pi-1", 1);
    let targets = [
        picluster_client::sha256(b"ab"),
        picluster_client::sha256(b"zz"),
    ];
    let job = PreimageJob::new(
        Mask::parse("?l?l", &[None; 4]).unwrap(),
        PreimageHash::Sha256,
        &targets,
        None,
    )
    .unwrap();
    let kind = JobKind::Preimage(job);
    let mut hits = Vec::new();
    kind.search_kernel().unwrap().scan(0..676, &mut hits);
    assert_eq!(hits.len(), 2);
    h.client(ClientToCoord::Submit(Submit {
        request: RequestId(1),
        work: WorkSpec::from(&kind),
        mode: SearchMode::All,
        priority: 0,
    }));
    h.client(ClientToCoord::Watch(JobRequest {
        request: RequestId(2),
        job: JobId(1),
    }));
    let a = assigns(&h.drain());
    assert_eq!((a.len(), a[0].1.start, a[0].1.end), (1, 0, 676));
    h.found(ConnId(1), a[0].1.lease, hits.clone());
    let report = finished(&h.drain()).expect("every target found: the job ends");
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.solutions.len(), 2);
    assert_eq!(report.hashes, hits[1] + 1);
}

/// An easy target's solutions are logged one line each for the first ten, then as
/// counts: hundreds of lines are not one per solution.
#[test]
fn solutions_past_the_first_ten_are_logged_as_counts() {
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let lines = Lines::default();
    let sink = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let job = genesis_job(0..1 << 16);
    let mut hits = Vec::new();
    job.kernel().scan(0..1 << 16, &mut hits);
    assert!(hits.len() > 100, "{}", hits.len());
    {
        let _logging = tracing_subscriber::util::SubscriberInitExt::set_default(subscriber);
        let mut h = Harness::new(CoordinatorConfig {
            min_chunk: 1 << 16,
            max_chunk: 1 << 16,
            ..CoordinatorConfig::default()
        });
        h.add_worker(ConnId(1), "pi-1", 1);
        h.submit(&job, SearchMode::All);
        let a = assigns(&h.drain());
        h.found(ConnId(1), a[0].1.lease, hits.clone());
        h.progress(ConnId(1), a[0].1.lease, a[0].1.end);
        assert!(finished(&h.drain()).is_some());
    }
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("solution found").count(), 10, "{text}");
    let counted = format!("found={} in_all={}", hits.len() - 10, hits.len());
    assert!(text.contains(&counted), "{counted} in {text}");
    assert!(
        text.contains(&format!("found_this_run={}", hits.len())),
        "{text}"
    );
}
