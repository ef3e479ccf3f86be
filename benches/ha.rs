//! The journal in etcd against the journal in redb, alternating, in one run: three
//! etcd members on loopback (Debian's `etcd`, started by this bench), and a
//! coordinator with two one-thread workers over real QUIC journaling to one store or
//! the other. For each: no-op chunks of one index per second, and submit to
//! acknowledgement (which waits for the job's record to be durable), p50 and p99.
//! Then the bytes etcd writes to disk in a busy minute (a long hashing job on both
//! workers, a small job submitted every second, checkpoints every 5 s), from each
//! member's `/proc/PID/io`, as a figure per hour for an SD card.
//!
//! `cargo bench --bench ha` (`PICLUSTER_BENCH_ROUNDS=N`, default 3). Prints one line
//! per figure and a final JSON line.

use picluster_client::{JobKind, JobSpec, LocalCluster, LocalClusterOptions, SearchMode};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::kernel::sha256d::{BlockHeader, Sha256dJob, Target};
use picluster_core::service::etcd::{EtcdOptions, EtcdStore, Guard};
use picluster_core::service::RedbStore;
use picluster_worker::WorkerOptions;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

/// Three members on loopback; their client URLs.
fn start_etcd(dir: &std::path::Path) -> (Vec<Member>, Vec<String>) {
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let initial = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer))| format!("e{i}=http://127.0.0.1:{peer}"))
        .collect::<Vec<_>>()
        .join(",");
    let members = ports
        .iter()
        .enumerate()
        .map(|(i, (client, peer))| {
            Member(
                Command::new("etcd")
                    .args([
                        "--name",
                        &format!("e{i}"),
                        "--data-dir",
                        dir.join(format!("e{i}")).to_str().expect("utf-8"),
                        "--listen-client-urls",
                        &format!("http://127.0.0.1:{client}"),
                        "--advertise-client-urls",
                        &format!("http://127.0.0.1:{client}"),
                        "--listen-peer-urls",
                        &format!("http://127.0.0.1:{peer}"),
                        "--initial-advertise-peer-urls",
                        &format!("http://127.0.0.1:{peer}"),
                        "--initial-cluster",
                        &initial,
                        "--initial-cluster-state",
                        "new",
                        "--pre-vote=true",
                        "--auto-compaction-mode=revision",
                        "--auto-compaction-retention=1000",
                        "--log-level=warn",
                        "--logger=zap",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("etcd on PATH (Debian: apt-get install etcd-server)"),
            )
        })
        .collect();
    let urls = ports
        .iter()
        .map(|(c, _)| format!("http://127.0.0.1:{c}"))
        .collect();
    (members, urls)
}

/// Bytes the process has had written to storage (`write_bytes` of /proc/PID/io).
fn written(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Cluster `id`'s etcd settings, a client, and the guard of a leader key this bench
/// creates (no lease: nothing else campaigns).
async fn leader_key(urls: &[String], id: &str) -> (EtcdOptions, etcd_client::Client, Guard) {
    let options = EtcdOptions {
        endpoints: urls.to_vec(),
        cluster_id: id.to_string(),
        tls: None,
    };
    let mut client = options.connect().await.expect("etcd");
    let put = client
        .put(options.leader_key(), "bench", None)
        .await
        .expect("leader key");
    let guard = Guard {
        key: options.leader_key(),
        revision: put.header().expect("header").revision(),
    };
    (options, client, guard)
}

/// A store in etcd under a cluster id of its own, guarded by a leader key.
async fn etcd_store(urls: &[String], id: &str) -> EtcdStore {
    let (options, _, guard) = leader_key(urls, id).await;
    tokio::task::spawn_blocking(move || EtcdStore::open(&options, guard).expect("etcd store"))
        .await
        .expect("store")
}

fn options() -> LocalClusterOptions {
    LocalClusterOptions {
        workers: 2,
        worker: WorkerOptions {
            threads: 1,
            ..WorkerOptions::default()
        },
        coordinator: CoordinatorConfig {
            max_chunk: 1,
            ..CoordinatorConfig::default()
        },
    }
}

/// No-op chunks per second, and submit-to-acknowledgement microseconds (sorted).
async fn measure(cluster: LocalCluster) -> (f64, Vec<f64>) {
    let client = cluster.client().await.expect("client");
    let chunks: u64 = 50_000;
    let spec = JobSpec {
        kind: JobKind::Noop { keyspace: chunks },
        mode: SearchMode::All,
    };
    let started = Instant::now();
    let report = client.run(&spec).await.expect("noop job");
    let rate = chunks as f64 / started.elapsed().as_secs_f64();
    assert_eq!(report.hashes, chunks);
    let one = JobSpec {
        kind: JobKind::Noop { keyspace: 1 },
        mode: SearchMode::All,
    };
    let mut submits = Vec::new();
    for _ in 0..300 {
        let started = Instant::now();
        let job = client.submit(&one).await.expect("submit");
        submits.push(started.elapsed().as_secs_f64() * 1e6);
        client.wait(job).await.expect("one-chunk job");
    }
    submits.sort_by(f64::total_cmp);
    client.close();
    cluster.shutdown().await;
    (rate, submits)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds: usize = std::env::var("PICLUSTER_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let tmp = tempfile::tempdir().expect("temp dir");
    let (members, urls) = start_etcd(tmp.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // Until etcd has a leader.
    runtime.block_on(async {
        let started = Instant::now();
        loop {
            let options = EtcdOptions {
                endpoints: urls.clone(),
                cluster_id: "probe".into(),
                tls: None,
            };
            if let Ok(mut c) = options.connect().await {
                if c.put("/probe", "1", None).await.is_ok() {
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "etcd did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let (mut redb, mut etcd) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let path = tmp.path().join(format!("r{round}.redb"));
        let r = runtime.block_on(async {
            let store = RedbStore::open(&path).expect("redb");
            measure(
                LocalCluster::start_with_store(options(), store)
                    .await
                    .expect("cluster"),
            )
            .await
        });
        let e = runtime.block_on(async {
            let store = etcd_store(&urls, &format!("bench{round}")).await;
            measure(
                LocalCluster::start_with_store(options(), store)
                    .await
                    .expect("cluster"),
            )
            .await
        });
        for (name, (rate, submits)) in [("redb", &r), ("etcd", &e)] {
            println!(
                "round {round} {name}: {rate:.0} no-op chunks/s; submit to acknowledgement p50 {:.0} us, p99 {:.0} us",
                percentile(submits, 0.5),
                percentile(submits, 0.99)
            );
        }
        redb.push(r);
        etcd.push(e);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let summary = |runs: &[(f64, Vec<f64>)]| {
        let mut rate: Vec<f64> = runs.iter().map(|r| r.0).collect();
        let mut p50: Vec<f64> = runs.iter().map(|r| percentile(&r.1, 0.5)).collect();
        let mut p99: Vec<f64> = runs.iter().map(|r| percentile(&r.1, 0.99)).collect();
        (median(&mut rate), median(&mut p50), median(&mut p99))
    };
    let (r_rate, r50, r99) = summary(&redb);
    let (e_rate, e50, e99) = summary(&etcd);
    println!(
        "medians of {rounds} alternating rounds: redb {r_rate:.0} chunks/s, ack p50 {r50:.0} us p99 {r99:.0} us; etcd {e_rate:.0} chunks/s ({:.0} % of redb), ack p50 {e50:.0} us ({:.2}x) p99 {e99:.0} us ({:.2}x)",
        100.0 * e_rate / r_rate,
        e50 / r50,
        e99 / r99
    );
    // What bounds the acknowledgement on etcd: one guarded transaction of one job
    // row, straight from a client (raft to three members, each fsyncing).
    let floor = runtime.block_on(async {
        let (options, mut client, guard) = leader_key(&urls, "floor").await;
        let row = vec![0u8; 200];
        let mut took = Vec::new();
        for i in 0..300 {
            let txn = etcd_client::Txn::new()
                .when([etcd_client::Compare::create_revision(
                    guard.key.clone(),
                    etcd_client::CompareOp::Equal,
                    guard.revision,
                )])
                .and_then([etcd_client::TxnOp::put(
                    format!("{}jobs/{i:020}", options.prefix()),
                    row.clone(),
                    None,
                )]);
            let started = Instant::now();
            client.txn(txn).await.expect("txn");
            took.push(started.elapsed().as_secs_f64() * 1e6);
        }
        took.sort_by(f64::total_cmp);
        took
    });
    let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
    println!(
        "one guarded etcd transaction of a 200-byte row, from a client: p50 {f50:.0} us, p99 {f99:.0} us (the floor under an acknowledgement on etcd)"
    );
    // A busy minute on etcd: hashing on both workers, a small job every second.
    let pids: Vec<u32> = members.iter().map(|m| m.0.id()).collect();
    let before: Vec<u64> = pids.iter().map(|p| written(*p)).collect();
    let busy_seconds = 60;
    runtime.block_on(async {
        let store = etcd_store(&urls, "busy").await;
        let mut busy = options();
        busy.coordinator.max_chunk = CoordinatorConfig::default().max_chunk;
        let cluster = LocalCluster::start_with_store(busy, store)
            .await
            .expect("cluster");
        let client = cluster.client().await.expect("client");
        // A target nothing meets, over more nonces than a minute covers.
        let mut target = [0u8; 32];
        target[31] = 1;
        let header = BlockHeader::from_hex(GENESIS).expect("valid header");
        let job = Sha256dJob::new(header, Some(Target(target)), 0..1 << 32, 0).expect("job");
        let long = JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        };
        let long_job = client.submit(&long).await.expect("long job");
        let small = JobSpec {
            kind: JobKind::Noop { keyspace: 1_000 },
            mode: SearchMode::All,
        };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(busy_seconds) {
            let job = client.submit(&small).await.expect("small job");
            client.wait(job).await.expect("small job ends");
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
        client.cancel(long_job).await.expect("cancel");
        client.close();
        cluster.shutdown().await;
    });
    let per_member: Vec<u64> = pids
        .iter()
        .zip(&before)
        .map(|(p, b)| written(*p).saturating_sub(*b))
        .collect();
    let mean = per_member.iter().sum::<u64>() as f64 / per_member.len() as f64;
    let per_hour_mib = mean * 3600.0 / busy_seconds as f64 / 1_048_576.0;
    println!(
        "etcd bytes written per member in a busy {busy_seconds} s: {per_member:?}: {per_hour_mib:.1} MiB per busy hour (goal under 50)"
    );
    println!(
        "{{\"bench\": \"ha\", \"rounds\": {rounds}, \"redb_chunks_per_second\": {r_rate:.0}, \"etcd_chunks_per_second\": {e_rate:.0}, \"redb_ack_p50_us\": {r50:.0}, \"redb_ack_p99_us\": {r99:.0}, \"etcd_ack_p50_us\": {e50:.0}, \"etcd_ack_p99_us\": {e99:.0}, \"etcd_txn_p50_us\": {f50:.0}, \"etcd_txn_p99_us\": {f99:.0}, \"etcd_mib_per_busy_hour\": {per_hour_mib:.1}}}"
    );
    drop(members);
}
