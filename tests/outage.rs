//! A coordinator away for 15 s, longer than QUIC's 10 s idle timeout, with the real
//! `picluster-worker` and `picluster` binaries, the submit on a terminal: the bar
//! says the coordinator is silent and then that it is reconnecting; the workers,
//! which kept the chunks they computed, are back within moments of the restart and
//! have them adopted; the submit that waited all along prints the right answer.

use crate::binaries::real_binary;
use crate::crash::{cli, one_coordinator_process_at_a_time, spawn_self_with, Process};
use picluster_core::hex;
use picluster_suite::fixtures::vectors;
use serde_json::Value;
use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The outage the issue measured: past the idle timeout, under the adoption window.
const OUTAGE: Duration = Duration::from_secs(15);

#[test]
fn a_15_s_outage_keeps_the_work_in_flight_and_the_terminal_says_what_happens() {
    let _alone = one_coordinator_process_at_a_time();
    let picluster = real_binary("picluster");
    let picluster = picluster.as_path();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.to_str().unwrap();
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    cli(&["init", d, "--listen", &format!("127.0.0.1:{port}")]);
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
    let mut workers = Vec::new();
    for name in ["w1", "w2"] {
        let bundle = tmp.path().join(format!("{name}.bundle"));
        let b = bundle.to_str().unwrap();
        cli(&["add-worker", name, "--cluster", d, "--out", b]);
        // The real daemon, with its own reconnection policy.
        workers.push(Process(
            Command::new(real_binary("picluster-worker"))
                .args(["--bundle", b, "--threads", "1", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    wait_until(Duration::from_secs(60), "both workers connect", || {
        connected_workers(picluster, d) == 2
    });

    // The submit runs on a pseudo-terminal (`script`), so it draws its progress bar.
    let v = &vectors()[0];
    let start = u64::from(v.nonce) - (1 << 28);
    let end = start + (1 << 29);
    let submit_line = format!(
        "{} submit sha256d --cluster {d} --header {} --nonce-range {start}..{end} --all",
        picluster.display(),
        hex::encode(&v.header.0),
    );
    let mut submit = Process(
        Command::new("script")
            .args(["-qfec", &submit_line, "/dev/null"])
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let terminal = Arc::new(Mutex::new(String::new()));
    let mut pipe = submit.0.stdout.take().unwrap();
    let sink = terminal.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let shown = |what: &str| terminal.lock().unwrap().contains(what);

    // The job runs for a while, then the coordinator dies.
    let submitted = Instant::now();
    wait_until(Duration::from_secs(60), "the job makes progress", || {
        job_hashes(picluster, d).is_some_and(|h| h > 0)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let before = job_hashes(picluster, d).unwrap();
    let rate = before as f64 / submitted.elapsed().as_secs_f64();
    assert!(before < 1 << 29, "the job ended before the outage");
    running.0.kill().unwrap(); // SIGKILL
    running.0.wait().unwrap();
    let killed = Instant::now();

    // The bar says so before the connection is known lost, then that it reconnects.
    wait_until(
        Duration::from_secs(8),
        "the bar tells of the silence",
        || shown("no word from the coordinator for"),
    );
    eprintln!(
        "the bar said the coordinator was silent {:?} after the kill",
        killed.elapsed()
    );
    wait_until(OUTAGE, "the bar says it is reconnecting", || {
        shown("coordinator unreachable, reconnecting")
    });
    eprintln!(
        "the bar said it was reconnecting {:?} after the kill",
        killed.elapsed()
    );
    std::thread::sleep(OUTAGE.saturating_sub(killed.elapsed()));

    let _back = coordinator();
    let restarted = Instant::now();
    // Workers holding chunks try every 2 s at most (their backoff would otherwise be
    // at 8-16 s by now), and are adopted with what they computed.
    wait_until(Duration::from_secs(30), "both workers are back", || {
        connected_workers(picluster, d) == 2
    });
    let back_after = restarted.elapsed();
    eprintln!("both workers were back {back_after:?} after the restart");
    assert!(back_after < Duration::from_secs(8), "{back_after:?}");

    let status = wait_exit(&mut submit, Duration::from_secs(300));
    let job_time = submitted.elapsed();
    let shown_text = terminal.lock().unwrap().clone();
    assert!(status.success(), "{status}: {shown_text}");
    assert!(
        shown_text.contains(&format!("nonce {}", v.nonce))
            || shown_text.contains(&v.nonce.to_string()),
        "{shown_text}"
    );
    let report = cli(&["show", "j1", "--cluster", d, "--json"]);
    let report: Value = serde_json::from_str(report.lines().last().unwrap()).unwrap();
    assert_eq!(report["state"], "completed", "{report}");
    assert_eq!(report["hashes"], 1u64 << 29);
    assert_eq!(
        crate::crash::solution_nonces(&report),
        vec![u64::from(v.nonce)]
    );

    let log = std::fs::read_to_string(&log).unwrap();
    let adopted = crate::crash::adopted_in_log(&log);
    assert!(adopted >= 1, "{log}");
    // What the outage cost the job beyond its own length: the job's time less the
    // time its keyspace takes at the rate seen before the kill (a measurement, not
    // an assertion: it depends on the machine's load).
    let ideal = (1u64 << 29) as f64 / rate;
    eprintln!(
        "job {:.1} s with a {} s outage, {adopted} leases adopted; at the rate before the kill it needed {ideal:.1} s: the outage cost {:.1} s",
        job_time.as_secs_f64(),
        OUTAGE.as_secs(),
        job_time.as_secs_f64() - ideal,
    );
    drop(workers);
}

fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_exit(process: &mut Process, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = process.0.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "the submit did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Workers that `picluster status` shows connected (0 while it cannot say).
fn connected_workers(picluster: &std::path::Path, d: &str) -> usize {
    let Ok(out) = Command::new(picluster)
        .args(["status", "--cluster", d, "--json"])
        .stderr(Stdio::null())
        .output()
    else {
        return 0;
    };
    let out = String::from_utf8_lossy(&out.stdout);
    let Ok(status) = serde_json::from_str::<Value>(out.lines().last().unwrap_or_default()) else {
        return 0;
    };
    status["workers"].as_array().map_or(0, |w| {
        w.iter()
            .filter(|w| w["state"] == "idle" || w["state"] == "busy")
            .count()
    })
}

/// Job j1's committed indices (`None` while the coordinator cannot say).
fn job_hashes(picluster: &std::path::Path, d: &str) -> Option<u64> {
    let out = Command::new(picluster)
        .args(["jobs", "--all", "--cluster", d, "--json"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let jobs: Value = serde_json::from_slice(&out.stdout).ok()?;
    jobs["jobs"][0]["hashes"].as_u64()
}
