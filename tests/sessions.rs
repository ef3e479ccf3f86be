//! Verification over a whole session, with real processes: a coordinator and two
//! honest workers on loopback run one job for a minute, and shares keep arriving at
//! the pace vardiff aims at (one per 5 s per worker) until the end: the target never
//! runs away from the workers' rate, and no honest worker is flagged. (A worker
//! turning lazy at any moment is caught within one window: the seeded simulations in
//! `picluster-core/src/coordinator/shares.rs`.)

use crate::binaries::real_binary;
use crate::cli::free_udp_port;
use crate::crash::one_coordinator_process_at_a_time;
use crate::metrics::{free_tcp_port, http_get, Killed};
use picluster_core::trust::ClusterDir;
use picluster_suite::fixtures::vectors;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value of an unlabelled series in the coordinator's metrics.
fn metric(port: u16, name: &str) -> Option<f64> {
    let (status, body) = http_get(port, "/metrics")?;
    if status != 200 {
        return None;
    }
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
#[ignore = "run alone by .ci/run (`cargo test --test tests sessions:: -- --ignored`): it measures a pace, which tests running at the same time would disturb"]
fn honest_workers_keep_sending_shares_at_the_aimed_pace_until_the_end_of_a_long_job() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let cluster = ClusterDir::init(
        &dir,
        format!("127.0.0.1:{}", free_udp_port()).parse().unwrap(),
        &[],
    )
    .unwrap();
    let port = free_tcp_port();
    let _coordinator = Killed(
        Command::new(real_binary("picluster"))
            .args(["-q", "coordinator", "--cluster", dir.to_str().unwrap()])
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut workers = Vec::new();
    for name in ["pi-1", "pi-2"] {
        let bundle = tmp.path().join(format!("{name}.bundle"));
        cluster.worker_bundle(name).unwrap().save(&bundle).unwrap();
        workers.push(Killed(
            Command::new(real_binary("picluster-worker"))
                .args(["-q", "--bundle", bundle.to_str().unwrap(), "--threads", "1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let admin = cluster.admin_bundle().unwrap();
    let client = runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(
                Instant::now() < deadline,
                "a coordinator with two workers within 30 s"
            );
            if let Ok(client) = picluster_client::Client::connect(&admin).await {
                if client.status().await.unwrap().workers.len() == 2 {
                    break client;
                }
                client.close();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    // A job far longer than the test (nonces and rolled versions): it runs the whole
    // minute.
    let v = &vectors()[0];
    let job = picluster_client::Sha256dJob::new(v.header, None, 0..1 << 32, 0x1fff_e000).unwrap();
    let id = runtime
        .block_on(client.submit(&picluster_client::JobSpec {
            kind: picluster_client::JobKind::Sha256d(job),
            mode: picluster_client::SearchMode::All,
        }))
        .unwrap();
    // 20 s to calibrate and settle (vardiff retargets after 16 shares or 10 s), then
    // two 20 s intervals: each expects 8 shares (2 workers, one per 5 s each).
    std::thread::sleep(Duration::from_secs(20));
    let shares = || metric(port, "picluster_shares_verified_total").expect("the metric");
    let mut counts = Vec::new();
    let mut last = shares();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_secs(20));
        let now = shares();
        counts.push(now - last);
        last = now;
    }
    println!("shares verified per 20 s after calibration: {counts:?} (about 8 aimed)");
    // Poisson(8): P(X = 0) = 3.4e-4 for each interval. A target that ran away (the
    // old vardiff) gives 0; one stuck too easy gives thousands. The upper bound is
    // loose: the workers' rate swings between retargets (with other tests running at
    // once, CI saw 34).
    for (i, n) in counts.iter().enumerate() {
        assert!(
            (1.0..200.0).contains(n),
            "interval {i}: {n} shares, expected about 8 ({counts:?})"
        );
    }
    assert_eq!(metric(port, "picluster_violations_total"), Some(0.0));
    let status = runtime.block_on(client.status()).unwrap();
    assert!(
        status
            .workers
            .iter()
            .all(|w| w.state == picluster_core::wire::WorkerState::Busy),
        "{:?}",
        status.workers
    );
    runtime.block_on(client.cancel(id)).unwrap();
    client.close();
}
