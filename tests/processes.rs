//! Workers as real processes: SIGKILL one in the middle of an exhaustive job.
//!
//! The worker processes are this test binary again, running the ignored
//! `worker_process` test, which runs a worker when `PICLUSTER_TEST_BUNDLE` is set (and
//! does nothing otherwise): cargo only promises integration tests the binaries of
//! their own package.

use picluster_client::{JobKind, JobSpec, LocalCluster, LocalClusterOptions, SearchMode};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::identity::Role;
use picluster_core::kernel::sha256d::Sha256dJob;
use picluster_core::trust::Bundle;
use picluster_core::wire::WorkerState;
use picluster_suite::fixtures::vectors;
use picluster_worker::WorkerOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

#[test]
#[ignore = "the body of a worker process for the tests in this module"]
fn worker_process() {
    let Ok(path) = std::env::var("PICLUSTER_TEST_BUNDLE") else {
        return;
    };
    let bundle = Bundle::load(Path::new(&path)).unwrap();
    let options = WorkerOptions {
        threads: 1,
        benchmark: Duration::from_millis(20),
        min_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        ..WorkerOptions::default()
    };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(picluster_worker::run(
            bundle,
            options,
            std::future::pending(),
        ))
        .unwrap();
}

/// Kills its process when dropped, so a failing test leaves no workers behind.
pub(crate) struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn spawn_worker(bundle: &Path) -> WorkerProcess {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "processes::worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("PICLUSTER_TEST_BUNDLE", bundle)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    WorkerProcess(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_process_loses_nothing_and_a_restarted_one_gets_work() {
    let cluster = LocalCluster::start_with(LocalClusterOptions {
        workers: 0,
        worker: WorkerOptions::default(),
        coordinator: CoordinatorConfig {
            lease_timeout: Duration::from_secs(1),
            max_chunk: 1 << 18,
            ..CoordinatorConfig::default()
        },
    })
    .await
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut bundles = Vec::new();
    let mut processes = Vec::new();
    for name in ["proc-a", "proc-b", "proc-c"] {
        let path = tmp.path().join(format!("{name}.bundle"));
        cluster
            .bundle(Role::Worker, name)
            .unwrap()
            .save(&path)
            .unwrap();
        processes.push(spawn_worker(&path));
        bundles.push(path);
    }
    cluster
        .wait_for_workers(3, Duration::from_secs(30))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();

    let v = &vectors()[0];
    let start = u64::from(v.nonce) - (1 << 23);
    let job = Sha256dJob::new(v.header, None, start..start + (1 << 24), 0).unwrap();
    let id = client
        .submit(&JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    // Kill proc-b as soon as it has searched something.
    loop {
        let status = client.status().await.unwrap();
        if status
            .workers
            .iter()
            .any(|w| w.name == "proc-b" && w.hashes > 0)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    processes[1].0.kill().unwrap();
    let report = client.wait(id).await.unwrap();
    assert_eq!(report.hashes, 1 << 24, "every nonce searched once");
    assert_eq!(
        report
            .solutions
            .iter()
            .map(|s| s.nonce().unwrap())
            .collect::<Vec<_>>(),
        vec![v.nonce]
    );
    // Until QUIC's idle timeout, the dead process is listed, as unresponsive.
    let state = |s: &picluster_client::ClusterStatus| {
        s.workers
            .iter()
            .find(|w| w.name == "proc-b")
            .map(|w| w.state)
    };
    assert_eq!(
        state(&client.status().await.unwrap()),
        Some(WorkerState::Unresponsive)
    );

    // Restarted with the same bundle, it replaces its ghost and gets work.
    processes[1] = spawn_worker(&bundles[1]);
    for _ in 0..600 {
        if state(&client.status().await.unwrap()) == Some(WorkerState::Idle) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let again = client
        .run(&JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    assert_eq!(again.hashes, 1 << 24);
    let names: Vec<&str> = again
        .contributions
        .iter()
        .map(|c| c.worker.as_str())
        .collect();
    assert_eq!(names, vec!["proc-a", "proc-b", "proc-c"]);
    client.close();
    drop(processes);
    cluster.shutdown().await;
}
