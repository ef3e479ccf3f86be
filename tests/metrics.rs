//! Metrics as Prometheus sees them: a real Prometheus server (Debian's `prometheus`,
//! which `.ci/run` installs) scrapes a coordinator and two workers, all real binaries,
//! every second on loopback while they run an exhaustive job; the test asks
//! Prometheus' HTTP API for the series and checks their values against the job.

use crate::binaries::real_binary;
use crate::cli::free_udp_port;
use crate::crash::one_coordinator_process_at_a_time;
use picluster_core::trust::ClusterDir;
use picluster_suite::fixtures::vectors;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when dropped (the test may fail halfway).
pub(crate) struct Killed(pub(crate) Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A TCP port free now, below Linux's ephemeral range (32768 on), so that no other
/// test's `bind(0)` or outgoing connection takes it before the program binds it.
pub(crate) fn free_tcp_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 1000) as u16 * 10;
    loop {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 2_500;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0, so the server closes): status and body.
pub(crate) fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// Prometheus' answer to an instant query, if it answers 200.
fn ask(prometheus: u16, promql: &str) -> Option<serde_json::Value> {
    let encoded: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"_-.".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, body) = http_get(prometheus, &format!("/api/v1/query?query={encoded}"))?;
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// The value of a PromQL query that yields one sample, if it yields one.
fn query(prometheus: u16, promql: &str) -> Option<f64> {
    let doc = ask(prometheus, promql)?;
    let result = doc["data"]["result"].as_array()?;
    if result.len() != 1 {
        return None;
    }
    result[0]["value"][1].as_str()?.parse().ok()
}

/// How many series `promql` yields, if Prometheus answers.
fn series(prometheus: u16, promql: &str) -> Option<usize> {
    let doc = ask(prometheus, promql)?;
    Some(doc["data"]["result"].as_array()?.len())
}

/// Waits until `promql` yields `expected` (Prometheus scrapes every second).
fn eventually(prometheus: u16, promql: &str, expected: f64) {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(30) {
        last = query(prometheus, promql);
        if last == Some(expected) {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("{promql}: expected {expected}, Prometheus says {last:?}");
}

#[test]
fn prometheus_scrapes_the_coordinator_and_both_workers() {
    let Ok(prometheus_bin) = which("prometheus") else {
        eprintln!(
            "SKIPPED: no `prometheus` on PATH (Debian: apt-get install prometheus); .ci/run installs it"
        );
        return;
    };
    let _alone = one_coordinator_process_at_a_time();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let cluster = ClusterDir::init(
        &dir,
        format!("127.0.0.1:{}", free_udp_port()).parse().unwrap(),
        &[],
    )
    .unwrap();
    let (coordinator_port, worker_ports) = (free_tcp_port(), [free_tcp_port(), free_tcp_port()]);
    let _coordinator = Killed(
        Command::new(real_binary("picluster"))
            .args(["-q", "coordinator", "--cluster", dir.to_str().unwrap()])
            .args(["--metrics", &format!("127.0.0.1:{coordinator_port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // A thermal zone the workers read (this machine may have none).
    let zone = tmp.path().join("thermal").join("thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
    std::fs::write(zone.join("temp"), "52000\n").unwrap();
    let mut workers = Vec::new();
    for (i, port) in worker_ports.iter().enumerate() {
        let name = format!("pi-{}", i + 1);
        let bundle = tmp.path().join(format!("{name}.bundle"));
        cluster.worker_bundle(&name).unwrap().save(&bundle).unwrap();
        workers.push(Killed(
            Command::new(real_binary("picluster-worker"))
                .args(["-q", "--bundle", bundle.to_str().unwrap(), "--threads", "1"])
                .args(["--metrics", &format!("127.0.0.1:{port}")])
                .args(["--max-temp", "85", "--thermal-dir"])
                .arg(tmp.path().join("thermal"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        ));
    }
    let prometheus_port = free_tcp_port();
    let config = tmp.path().join("prometheus.yml");
    let targets = |ports: &[u16]| {
        ports
            .iter()
            .map(|p| format!("'127.0.0.1:{p}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: picluster-coordinator\n    static_configs:\n      - targets: [{}]\n  - job_name: picluster-worker\n    static_configs:\n      - targets: [{}]\n",
            targets(&[coordinator_port]),
            targets(&worker_ports)
        ),
    )
    .unwrap();
    let _prometheus = Killed(
        Command::new(prometheus_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Every target is up, and both workers are connected.
    eventually(prometheus_port, "sum(up)", 3.0);
    eventually(prometheus_port, "sum(picluster_worker_up)", 2.0);
    // An exhaustive job over 2^22 nonces around block 1's.
    let v = &vectors()[1];
    let start = u64::from(v.nonce) - (1 << 21);
    let keyspace = 1u64 << 22;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let report = runtime.block_on(async {
        let client = picluster_client::Client::connect(&cluster.admin_bundle().unwrap())
            .await
            .unwrap();
        let job =
            picluster_client::Sha256dJob::new(v.header, None, start..start + keyspace, 0).unwrap();
        let report = client
            .run(&picluster_client::JobSpec {
                kind: picluster_client::JobKind::Sha256d(job),
                mode: picluster_client::SearchMode::All,
            })
            .await
            .unwrap();
        client.shutdown().await;
        report
    });
    assert_eq!(report.hashes, keyspace);
    assert_eq!(report.solutions.len(), 1);
    // The coordinator's series agree with the job's report.
    eventually(
        prometheus_port,
        "sum(picluster_worker_indices_total)",
        keyspace as f64,
    );
    eventually(
        prometheus_port,
        "count(picluster_worker_indices_total)",
        2.0,
    );
    eventually(
        prometheus_port,
        "sum(picluster_worker_solutions_total)",
        1.0,
    );
    eventually(prometheus_port, "picluster_jobs{state=\"completed\"}", 1.0);
    eventually(prometheus_port, "picluster_jobs{state=\"running\"}", 0.0);
    eventually(prometheus_port, "picluster_jobs_submitted_total", 1.0);
    eventually(
        prometheus_port,
        "picluster_connections{role=\"worker\"}",
        2.0,
    );
    let chunks = query(prometheus_port, "sum(picluster_worker_chunks_total)").unwrap();
    assert!(chunks >= 2.0, "chunks {chunks}");
    let busy = query(prometheus_port, "picluster_event_loop_busy_seconds_total").unwrap();
    assert!(busy > 0.0, "event loop time {busy}");
    eventually(
        prometheus_port,
        "picluster_journal_commits_total > bool 0",
        1.0,
    );
    // The workers' own: what each computed adds up to the job (nothing else ran but
    // their start-up benchmark, which they do not count), their threads, a rate.
    eventually(
        prometheus_port,
        "sum(picluster_worker_computed_indices_total)",
        keyspace as f64,
    );
    eventually(prometheus_port, "sum(picluster_worker_active_threads)", 2.0);
    let rate = query(
        prometheus_port,
        "min(picluster_worker_benchmark_hashes_per_second)",
    )
    .unwrap();
    assert!(rate > 0.0, "benchmark {rate}");
    eventually(prometheus_port, "sum(picluster_worker_connected)", 2.0);
    eventually(
        prometheus_port,
        "max(picluster_worker_cpu_temperature_celsius)",
        52.0,
    );
    // Every query of the Grafana dashboard has data in this Prometheus.
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/picluster.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let started = Instant::now();
            while series(prometheus_port, expr).unwrap_or(0) == 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "panel {:?}: no data for {expr}",
                    panel["title"]
                );
                std::thread::sleep(Duration::from_millis(250));
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 17);
    drop(workers);
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(program))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

/// Heat: a worker whose thermal zone (a directory the test writes) reads above
/// `--max-temp` runs fewer threads, one step per reading, and tells the coordinator,
/// whose status then shows its threads and a rate scaled to them; cooled down, it
/// comes back. Its metrics show the temperature and the threads running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_worker_runs_fewer_threads_and_the_coordinator_follows() {
    let tmp = tempfile::tempdir().unwrap();
    let zone = tmp.path().join("thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
    let temp = |milli: u32| std::fs::write(zone.join("temp"), format!("{milli}\n")).unwrap();
    temp(45_000);
    let mut cluster = picluster_client::LocalCluster::start(0, 1).await.unwrap();
    let metrics_port = free_tcp_port();
    cluster
        .add_worker_with(
            "hot",
            picluster_worker::WorkerOptions {
                threads: 2,
                benchmark: Duration::from_millis(50),
                metrics: Some(format!("127.0.0.1:{metrics_port}").parse().unwrap()),
                max_temp: Some(70.0),
                thermal_dir: tmp.path().to_path_buf(),
                thermal_interval: Duration::from_millis(50),
                ..picluster_worker::WorkerOptions::default()
            },
        )
        .unwrap();
    cluster
        .wait_for_workers(1, Duration::from_secs(20))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let worker = || async { client.status().await.unwrap().workers[0].clone() };
    let full = worker().await;
    assert_eq!(full.threads, 2);
    let scrape = |name: &str| {
        let (_, body) = http_get(metrics_port, "/metrics").unwrap();
        body.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        scrape("picluster_worker_cpu_temperature_celsius"),
        Some(45.0)
    );
    assert_eq!(
        scrape("picluster_worker_max_temperature_celsius"),
        Some(70.0)
    );
    assert_eq!(scrape("picluster_worker_active_threads"), Some(2.0));

    // Hot: one thread, and the coordinator sizes its chunks for one.
    temp(81_500);
    let started = Instant::now();
    let hot = loop {
        let w = worker().await;
        if w.threads == 1 {
            break w;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still {w:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        hot.rate_hps,
        full.rate_hps / 2,
        "the rate follows the threads"
    );
    // The worker reports its temperature; status shows it.
    let started = Instant::now();
    while worker().await.millicelsius != Some(81_500) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no temperature"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape("picluster_worker_active_threads"), Some(1.0));
    assert_eq!(
        scrape("picluster_worker_cpu_temperature_celsius"),
        Some(81.5)
    );
    // Within the 5 °C band below the limit: it holds.
    temp(67_000);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(worker().await.threads, 1);
    // Cool: both threads again.
    temp(50_000);
    let started = Instant::now();
    while worker().await.threads != 2 {
        assert!(started.elapsed() < Duration::from_secs(10), "not back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scrape("picluster_worker_active_threads"), Some(2.0));
    // A job still runs to the exact answer meanwhile.
    let v = &vectors()[0];
    let start = u64::from(v.nonce) - 1000;
    let job =
        picluster_client::Sha256dJob::new(v.header, None, start..start + (1 << 18), 0).unwrap();
    temp(90_000);
    let report = client
        .run(&picluster_client::JobSpec {
            kind: picluster_client::JobKind::Sha256d(job),
            mode: picluster_client::SearchMode::All,
        })
        .await
        .unwrap();
    assert_eq!(report.hashes, 1 << 18);
    assert_eq!(report.solutions.len(), 1);
    client.shutdown().await;
    cluster.shutdown().await;
}

/// The metrics endpoint holds at most its 64 connections, and a request's header left
/// half-sent for 10 s closes its connection: 2,000 partial requests once took the
/// coordinator from 14 to 223 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_scrapes_are_closed_and_hold_at_most_their_slots() {
    use picluster_core::runtime::{bind_metrics, serve_metrics, MAX_METRICS_CONNECTIONS};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = bind_metrics("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_metrics(listener, || async {
        Some("up 1\n".to_string())
    }));
    let mut partial = Vec::new();
    for _ in 0..MAX_METRICS_CONNECTIONS {
        let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        partial.push(s);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // One more is closed at once: it reads the end of the stream, not an answer.
    let mut extra = tokio::net::TcpStream::connect(address).await.unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), extra.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "{read:?} {}",
        String::from_utf8_lossy(&answer)
    );
    // The half-sent ones are closed within the header timeout (10 s)...
    let started = Instant::now();
    for mut s in partial {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut rest))
            .await
            .expect("closed within 15 s");
        assert!(!String::from_utf8_lossy(&rest).contains("up 1"), "{read:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    // ...and a whole scrape is answered.
    let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.0 200") && answer.ends_with("up 1\n"),
        "{answer}"
    );
    server.abort();
}

/// A hashcash job over the default range has a keyspace of 2^64 - 1: the progress
/// gauges read it as that (it read -1 through an i64), and two such jobs add up
/// without overflowing.
#[test]
fn a_default_range_hashcash_job_reads_as_its_size_in_the_metrics() {
    use picluster_core::coordinator::{Coordinator, CoordinatorConfig, Inbound};
    use picluster_core::identity::{PeerIdentity, Role};
    use picluster_core::ids::{ConnId, RequestId};
    use picluster_core::job::{JobKind, SearchMode};
    use picluster_core::kernel::hashcash::HashcashJob;
    use picluster_core::service::{encode_coordinator, DriverMetrics};
    use picluster_core::wire::{ClientHello, ClientToCoord, Submit, WorkSpec, PROTOCOL_MINOR};
    let now = Instant::now();
    let mut core = Coordinator::new(CoordinatorConfig::default(), now);
    core.handle_connected(now, ConnId(1), PeerIdentity::new(Role::Admin, "admin"));
    let say = |core: &mut Coordinator, m| core.handle_inbound(now, ConnId(1), Inbound::Client(m));
    say(
        &mut core,
        ClientToCoord::Hello(ClientHello {
            minor: PROTOCOL_MINOR,
            client_version: "t".into(),
        }),
    );
    let gauge = |core: &Coordinator| -> f64 {
        let text = encode_coordinator(&core.metrics(now), &DriverMetrics::default());
        text.lines()
            .find_map(|l| l.strip_prefix("picluster_live_job_indices{kind=\"hashcash\"} "))
            .expect("the series")
            .parse()
            .unwrap()
    };
    for n in 1..=2u32 {
        let job = HashcashJob::new(b"x", 20, 0..u64::MAX).unwrap();
        say(
            &mut core,
            ClientToCoord::Submit(Submit {
                request: RequestId(n),
                work: WorkSpec::from(&JobKind::Hashcash(job)),
                mode: SearchMode::First,
                priority: 0,
            }),
        );
        assert_eq!(gauge(&core), f64::from(n) * u64::MAX as f64);
    }
}
