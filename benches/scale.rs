//! Scale: one coordinator process with 1,000 connected workers, simulated by this
//! process over one QUIC endpoint (each a real connection with its own certificate).
//! Each simulated worker "computes" at 1 MH/s (a Pi core), reports progress every
//! 250 ms, takes chunks, and answers trims and stops, as the real agent does. The
//! coordinator's CPU (from /proc) and memory are measured over 10 s of steady state.
//!
//! The coordinator journals to its job store as a real one does
//! (`PICLUSTER_BENCH_JOURNAL=off`: jobs in memory only, for comparison;
//! `PICLUSTER_BENCH_ETCD=URLS`: to etcd at those client URLs, as the leader of
//! coordinators sharing it; `benches/etcd3.sh` starts three members on loopback).
//!
//! `cargo bench --bench scale` (PICLUSTER_SCALE_WORKERS to change the 1,000).
//! Prints its figures and a final JSON line. The coordinator is this binary again,
//! started with `--coordinator DIR`.

use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::ids::LeaseId;
use picluster_core::net::{self, FrameReader, FrameWriter};
use picluster_core::trust::ClusterDir;
use picluster_core::wire::{
    CoordToWorker, Progress, Released, Trimmed, WorkerHello, WorkerToCoord, PROTOCOL_MINOR,
};
use std::collections::VecDeque;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RATE: u64 = 1_000_000;

/// A protocol-speaking worker that does no work but reports as if it did.
async fn simulated_worker(
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    address: std::net::SocketAddr,
) -> Result<(), picluster_core::net::NetError> {
    // Like the real daemon, retry a connection lost in the crowd of 1,000 handshakes.
    let mut attempt = 0;
    let connection = loop {
        match endpoint
            .connect_with(config.clone(), address, "127.0.0.1")?
            .await
        {
            Ok(c) => break c,
            Err(e) if attempt >= 20 => return Err(e.into()),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let (send, recv) = connection.open_bi().await?;
    let (mut writer, mut reader) = (FrameWriter::new(send), FrameReader::new(recv));
    writer
        .send(&WorkerToCoord::Hello(WorkerHello {
            minor: PROTOCOL_MINOR,
            agent_version: "sim".into(),
            threads: 1,
            arch: "sim".into(),
            kernel_impl: "sim".into(),
            bench_hps: RATE,
            kernels: vec![],
        }))
        .await?;
    let _welcome: CoordToWorker = reader.next().await?;
    let (tx, mut inbound) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(m) = reader.next::<CoordToWorker>().await {
            if tx.send(m).is_err() {
                return;
            }
        }
    });
    let mut leases: VecDeque<(LeaseId, u64, u64)> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        let mut out = Vec::new();
        tokio::select! {
            m = inbound.recv() => match m {
                Some(CoordToWorker::Assign(a)) => leases.push_back((a.lease, a.start, a.end)),
                Some(CoordToWorker::Stop(s)) => {
                    if let Some(i) = leases.iter().position(|l| l.0 == s.lease) {
                        let (lease, position, _) = leases.remove(i).expect("present");
                        out.push(WorkerToCoord::Released(Released { lease, position }));
                    }
                }
                Some(CoordToWorker::Trim(t)) => {
                    if let Some(l) = leases.iter_mut().find(|l| l.0 == t.lease) {
                        l.2 = t.end.max(l.1).min(l.2);
                        out.push(WorkerToCoord::Trimmed(Trimmed { lease: l.0, end: l.2 }));
                    }
                }
                Some(
                    CoordToWorker::Renewed(_)
                    | CoordToWorker::RenewRefused(_)
                    | CoordToWorker::ShareTarget(_),
                ) => {}
                Some(CoordToWorker::Welcome(_)) | None => return Ok(()),
            },
            _ = tick.tick() => {
                if let Some(l) = leases.front_mut() {
                    l.1 = (l.1 + RATE / 4).min(l.2);
                    out.push(WorkerToCoord::Progress(Progress { lease: l.0, position: l.1 }));
                    if l.1 == l.2 {
                        leases.pop_front();
                    }
                }
            }
        }
        for m in out {
            writer.send(&m).await?;
        }
    }
}

/// User plus system CPU seconds of a process, from /proc.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / ticks_per_second
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("memory field")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--coordinator") {
        if std::env::var("RUST_LOG").is_ok() {
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_writer(std::io::stderr)
                .init();
        }
        let dir = std::path::PathBuf::from(&args[i + 1]);
        let journal = !std::env::var("PICLUSTER_BENCH_JOURNAL").is_ok_and(|v| v == "off");
        // A thousand workers from one address: lift the per-address limits, which
        // are sized for real racks (each Pi its own address, or a NATed few).
        let config = CoordinatorConfig {
            max_connections_per_address: 4096,
            handshake_burst: 4096,
            ..CoordinatorConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // PICLUSTER_BENCH_METRICS_PORT: serve metrics there (the parent scrapes them
        // every second, as a Prometheus with a 1 s interval would).
        let metrics = std::env::var("PICLUSTER_BENCH_METRICS_PORT")
            .ok()
            .and_then(|p| p.parse::<u16>().ok())
            .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], p)));
        let cluster = ClusterDir::open(&dir).expect("cluster");
        let etcd = picluster_core::service::etcd::EtcdOptions::of_cluster(&cluster)
            .expect("etcd settings");
        if let Some(etcd) = etcd {
            let ha = picluster_core::service::etcd::HaOptions {
                etcd,
                advertise: cluster.config().advertise[0].clone(),
                election: picluster_core::election::ElectionConfig::default(),
            };
            runtime
                .block_on(picluster_core::service::etcd::serve_ha(
                    &dir,
                    config,
                    picluster_core::service::ServeOptions {
                        metrics,
                        new_store: false,
                    },
                    ha,
                    std::future::pending(),
                ))
                .expect("coordinator");
        } else if journal {
            runtime
                .block_on(picluster_core::service::serve_cluster_with(
                    &dir,
                    config,
                    picluster_core::service::ServeOptions {
                        metrics,
                        new_store: false,
                    },
                    std::future::pending(),
                ))
                .expect("coordinator");
        } else {
            let dir = ClusterDir::open(&dir).expect("cluster");
            runtime.block_on(async {
                picluster_core::service::CoordinatorService::from_cluster(&dir, config)
                    .expect("coordinator")
                    .run(std::future::pending())
                    .await
                    .expect("coordinator");
            });
        }
        return;
    }
    let workers: usize = std::env::var("PICLUSTER_SCALE_WORKERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let ticks_per_second: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0);
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let mut dir = ClusterDir::init(&tmp.path().join("c"), address, &[]).expect("cluster");
    if let Ok(urls) = std::env::var("PICLUSTER_BENCH_ETCD") {
        dir.use_etcd(urls.split(',').map(str::to_string).collect())
            .expect("cluster.json");
    }
    let metrics = std::env::var("PICLUSTER_BENCH_METRICS").is_ok_and(|v| v == "on");
    let metrics_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut command = Command::new(std::env::current_exe().expect("exe"));
    command.arg("--coordinator").arg(dir.path());
    if metrics {
        command.env("PICLUSTER_BENCH_METRICS_PORT", metrics_port.to_string());
        // Scraped every second for the whole run.
        std::thread::spawn(move || loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", metrics_port)) {
                use std::io::{Read, Write};
                let _ = s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n");
                let _ = s.read_to_end(&mut Vec::new());
            }
            std::thread::sleep(Duration::from_secs(1));
        });
    }
    // Its warnings and errors (RUST_LOG) and a panic's message show on stderr.
    let mut coordinator = command
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("coordinator process");
    let pid = coordinator.id();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let result = runtime.block_on(async {
        let admin = dir.admin_bundle().expect("admin bundle");
        let client = loop {
            match picluster_client::Client::connect(&admin).await {
                Ok(c) => break c,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let endpoint =
            quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("endpoint");
        let started = Instant::now();
        for i in 0..workers {
            let bundle = dir.worker_bundle(&format!("sim-{i:04}")).expect("bundle");
            let config = net::client_config(&bundle).expect("config");
            tokio::spawn(simulated_worker(endpoint.clone(), config, address));
        }
        let spec = picluster_client::JobSpec {
            kind: picluster_client::JobKind::Noop { keyspace: 1 << 50 },
            mode: picluster_client::SearchMode::All,
        };
        client.submit(&spec).await.expect("submit");
        loop {
            let status = client.status().await.expect("status");
            let busy = status.workers.iter().filter(|w| w.leases > 0).count();
            if busy >= workers {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {busy} workers busy"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let joined = started.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (cpu0, t0) = (cpu_seconds(pid, ticks_per_second), Instant::now());
        let hashes0 = client.jobs().await.expect("jobs")[0].progress.hashes;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let (cpu1, t1) = (cpu_seconds(pid, ticks_per_second), Instant::now());
        let hashes1 = client.jobs().await.expect("jobs")[0].progress.hashes;
        let window = (t1 - t0).as_secs_f64();
        let status = client.status().await.expect("status");
        client.close();
        (
            joined,
            (cpu1 - cpu0) / window,
            (hashes1 - hashes0) as f64 / window,
            status.workers.len(),
        )
    });
    let (joined, cpu_share, committed_rate, connected) = result;
    let rss = memory_kib(pid, "VmRSS:") as f64 / 1024.0;
    let peak = memory_kib(pid, "VmHWM:") as f64 / 1024.0;
    let _ = coordinator.kill();
    let _ = coordinator.wait();
    let expected_rate = (workers as u64 * RATE) as f64;
    println!("{connected} workers connected and busy after {joined:.1} s");
    println!(
        "coordinator CPU: {:.1} % of one core over 10 s of steady state",
        cpu_share * 100.0
    );
    println!("coordinator memory: {rss:.1} MiB resident, {peak:.1} MiB peak");
    println!(
        "committed {:.0} M indices/s of {:.0} M reported by the workers",
        committed_rate / 1e6,
        expected_rate / 1e6
    );
    println!(
        "{{\"bench\": \"scale\", \"metrics\": {metrics}, \"journal\": {}, \"workers\": {connected}, \"coordinator_cpu_percent\": {:.2}, \"rss_mib\": {rss:.1}, \"peak_mib\": {peak:.1}, \"committed_rate\": {committed_rate:.0}}}",
        !std::env::var("PICLUSTER_BENCH_JOURNAL").is_ok_and(|v| v == "off"),
        cpu_share * 100.0
    );
}
