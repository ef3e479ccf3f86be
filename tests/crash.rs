//! The coordinator as a real process, killed with SIGKILL again and again in the
//! middle of a job with heavy progress traffic, and restarted on the same cluster
//! directory: the job completes exactly, the `picluster submit` that was waiting all
//! along exits 0 with the right answer, and the workers, never restarted, are back.
//!
//! The coordinator, the workers and the `picluster submit` are this test binary again
//! (ignored tests that do their part when their environment variable is set).

use crate::processes::spawn_worker;
use picluster_client::cli::run_from;
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_suite::fixtures::vectors;
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

#[test]
#[ignore = "the body of a coordinator process for the test in this module"]
fn coordinator_process() {
    let Ok(dir) = std::env::var("PICLUSTER_TEST_CLUSTER") else {
        return;
    };
    // The coordinator's log, appended to by every run.
    if let Ok(log) = std::env::var("PICLUSTER_TEST_LOG") {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        tracing_subscriber::fmt()
            .with_env_filter("picluster_core=info")
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .init();
    }
    let config = CoordinatorConfig {
        // Many small chunks: heavy progress traffic, many records.
        max_chunk: 1 << 18,
        checkpoint_interval: Duration::from_millis(200),
        ..CoordinatorConfig::default()
    };
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(picluster_core::service::serve_cluster(
            Path::new(&dir),
            config,
            std::future::pending(),
        ))
        .unwrap();
}

#[test]
#[ignore = "the body of a picluster command process for the test in this module"]
fn cli_process() {
    let Ok(args) = std::env::var("PICLUSTER_TEST_CLI") else {
        return;
    };
    let mut argv = vec!["picluster".to_string()];
    argv.extend(args.split('\u{1f}').map(str::to_string));
    let code = match run_from(argv, &mut std::io::stdout()) {
        Ok(code) if code == ExitCode::SUCCESS => 0,
        Ok(_) => 3,
        Err(e) => {
            eprintln!("picluster: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// Kills its process when dropped.
pub(crate) struct Process(pub(crate) Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_self(test: &str, var: &str, value: &str, output: fn() -> Stdio) -> Process {
    spawn_self_with(test, &[(var, value)], output)
}

pub(crate) fn spawn_self_with(test: &str, envs: &[(&str, &str)], output: fn() -> Stdio) -> Process {
    Process(
        Command::new(std::env::current_exe().unwrap())
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .envs(envs.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(output())
            .stderr(output())
            .spawn()
            .unwrap(),
    )
}

/// Tests that run a coordinator process on a port chosen by binding and releasing it
/// take turns: another test's clients, binding ephemeral ports by the hundred, could
/// otherwise take that port before the coordinator binds it.
pub(crate) fn one_coordinator_process_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A cluster directory in `tmp` listening on a free loopback port, and two worker
/// processes (`w1`, `w2`) with bundles from `picluster add-worker`, dialling it.
pub(crate) fn cluster_with_two_worker_processes(
    tmp: &Path,
) -> (
    std::path::PathBuf,
    u16,
    Vec<crate::processes::WorkerProcess>,
) {
    let dir = tmp.join("cluster");
    let d = dir.to_str().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cli(&["init", d, "--listen", &format!("127.0.0.1:{port}")]);
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let bundle = tmp.join(format!("{name}.bundle"));
        cli(&[
            "add-worker",
            name,
            "--cluster",
            d,
            "--out",
            bundle.to_str().unwrap(),
        ]);
        workers.push(spawn_worker(&bundle));
    }
    (dir, port, workers)
}

pub(crate) fn cli(args: &[&str]) -> String {
    let mut out = Vec::new();
    let mut argv = vec!["picluster"];
    argv.extend_from_slice(args);
    assert_eq!(
        run_from(argv, &mut out).unwrap(),
        ExitCode::SUCCESS,
        "{args:?}"
    );
    String::from_utf8(out).unwrap()
}

/// Job j1's state and committed indices, as `picluster jobs` reports them (`None`
/// while it cannot say).
fn job_progress(dir: &str) -> Option<(String, u64)> {
    let mut out = Vec::new();
    let argv = ["picluster", "jobs", "--all", "--cluster", dir, "--json"];
    run_from(argv, &mut out).ok()?;
    let jobs: Value = serde_json::from_slice(&out).ok()?;
    let job = &jobs["jobs"][0];
    Some((job["state"].as_str()?.to_string(), job["hashes"].as_u64()?))
}

#[test]
fn the_coordinator_killed_20_times_loses_nothing_and_the_waiting_submit_gets_its_answer() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _port, workers) = cluster_with_two_worker_processes(tmp.path());
    let d = dir.to_str().unwrap();
    let log = tmp.path().join("coordinator.log");
    let coordinator = || {
        spawn_self_with(
            "crash::coordinator_process",
            &[
                ("PICLUSTER_TEST_CLUSTER", d),
                ("PICLUSTER_TEST_LOG", log.to_str().unwrap()),
            ],
            Stdio::null,
        )
    };
    let mut running = coordinator();
    // The submit starts once the coordinator answers: a client that finds its port
    // closed fails at once rather than waiting for it.
    let started = Instant::now();
    while run_from(["picluster", "jobs", "--cluster", d], &mut Vec::new()).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no coordinator"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = &vectors()[0];
    let start = u64::from(v.nonce) - (1 << 28);
    let end = start + (1 << 29);
    let args = [
        "submit",
        "sha256d",
        "--cluster",
        d,
        "--header",
        &hex::encode(&v.header.0),
        "--nonce-range",
        &format!("{start}..{end}"),
        "--all",
        "--json",
    ]
    .join("\u{1f}");
    let mut submit = spawn_self(
        "crash::cli_process",
        "PICLUSTER_TEST_CLI",
        &args,
        Stdio::piped,
    );
    // Seeded: the kill times replay.
    let mut rng = picluster_suite::sim::Rng(0x6b69_6c6c);
    // Each kill comes at a random moment after the restarted coordinator has its
    // workers back and has committed new work: leases in flight, reports on the wire.
    let mut kills_mid_job = 0;
    for _ in 0..20 {
        let started = Instant::now();
        let at_restart = loop {
            if let Some((_, hashes)) = job_progress(d) {
                break hashes;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no coordinator"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        loop {
            let (state, hashes) = job_progress(d).unwrap_or_default();
            if state == "running" && hashes > at_restart {
                break;
            }
            assert!(
                state != "completed",
                "the job completed before the 20 kills"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no progress: {state}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        if job_progress(d).is_some_and(|(state, _)| state == "running") {
            kills_mid_job += 1;
        }
        running.0.kill().unwrap(); // SIGKILL
        running.0.wait().unwrap();
        running = coordinator();
    }
    assert_eq!(kills_mid_job, 20);
    // The submit waited through all of it.
    let started = Instant::now();
    let status = loop {
        if let Some(status) = submit.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "picluster submit did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut out = String::new();
    std::io::Read::read_to_string(submit.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(submit.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.success(),
        "picluster submit exited with {status}: {out} {err}"
    );
    // It noticed the coordinator going away, and said so in one line each time it
    // lost a connection (kills while it is reconnecting are not seen by it).
    let reconnects = err
        .lines()
        .filter(|l| l.contains("reconnecting to follow j1"))
        .count();
    eprintln!("picluster submit reconnected {reconnects} times");
    assert!((1..=20).contains(&reconnects), "{reconnects}: {err}");
    // The test harness prints its own "test ... " before the command's output.
    let last = out.lines().last().unwrap_or_default();
    let report: Value = serde_json::from_str(&last[last.find('{').unwrap_or(0)..])
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["state"], "completed", "{report}");
    assert_eq!(report["hashes"], 1u64 << 29);
    assert_eq!(report["keyspace"], 1u64 << 29);
    assert_eq!(solution_nonces(&report), vec![u64::from(v.nonce)]);
    // Workers carried their leases through the kills, and restarted coordinators
    // adopted them rather than searching them again.
    let log = std::fs::read_to_string(&log).unwrap();
    let adopted = adopted_in_log(&log);
    eprintln!("{adopted} leases adopted over 20 restarts");
    assert!(adopted > 0, "{log}");
    // Both workers, never restarted, are connected again.
    let started = Instant::now();
    loop {
        let status: Value = serde_json::from_str(
            cli(&["status", "--cluster", d, "--json"])
                .lines()
                .last()
                .unwrap(),
        )
        .unwrap();
        let names: Vec<&str> = status["workers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|w| w["state"] != "unresponsive")
            .map(|w| w["name"].as_str().unwrap())
            .collect();
        if names == ["w1", "w2"] {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(workers);
}

/// `picluster status --watch` through a coordinator's kill -9 and restart: it says
/// the coordinator is unreachable and goes on, and shows the restarted one (it used
/// to exit at the first failed request).
#[test]
fn status_watch_says_the_coordinator_is_away_and_carries_on_when_it_is_back() {
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _port, _workers) = cluster_with_two_worker_processes(tmp.path());
    let d = dir.to_str().unwrap();
    let start = || {
        spawn_self_with(
            "crash::coordinator_process",
            &[("PICLUSTER_TEST_CLUSTER", d)],
            Stdio::null,
        )
    };
    let coordinator = start();
    let status = |out: &str| out.lines().filter(|l| l.starts_with('{')).count();
    // Wait for the coordinator to answer.
    let waiting = Instant::now();
    while !crate::crash::cli_status_ok(d) {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "no coordinator"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut watch = Command::new(crate::binaries::real_binary("picluster"))
        .args([
            "status",
            "--watch",
            "--interval",
            "0.2",
            "--json",
            "--cluster",
            d,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watch.stdout.take().unwrap();
    let stderr = watch.stderr.take().unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let errors = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    for (pipe, sink) in [
        (
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            lines.clone(),
        ),
        (Box::new(stderr), errors.clone()),
    ] {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
    }
    let wait_for = |what: &dyn Fn() -> bool, why: &str| {
        let waiting = Instant::now();
        while !what() {
            assert!(waiting.elapsed() < Duration::from_secs(40), "{why}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(
        &|| status(&lines.lock().unwrap()) >= 2,
        "the watch shows status",
    );
    drop(coordinator); // kill -9
    wait_for(
        &|| errors.lock().unwrap().contains("coordinator unreachable"),
        "the watch says the coordinator is away",
    );
    assert!(watch.try_wait().unwrap().is_none(), "the watch goes on");
    let before = status(&lines.lock().unwrap());
    let _back = start();
    wait_for(
        &|| status(&lines.lock().unwrap()) > before + 1,
        "the watch shows the restarted coordinator",
    );
    let _ = watch.kill();
    let _ = watch.wait();
}

/// Whether `picluster status` answers on cluster `d`.
pub(crate) fn cli_status_ok(d: &str) -> bool {
    Command::new(crate::binaries::real_binary("picluster"))
        .args(["status", "--cluster", d])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Leases a coordinator's log says it adopted from workers back after a lost
/// connection, summed over every restart.
pub(crate) fn adopted_in_log(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("worker back with the leases"))
        .filter_map(|l| {
            l.split("adopted=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The nonces of a SHA-256d report's solutions, as JSON gives them.
pub(crate) fn solution_nonces(report: &Value) -> Vec<u64> {
    report["solutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["nonce"].as_u64().unwrap())
        .collect()
}
