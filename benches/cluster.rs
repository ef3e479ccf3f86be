//! Cluster benchmarks, each over real QUIC with mutual TLS on loopback:
//!
//! - parallel efficiency: N worker processes with one thread each against one process
//!   scanning the same amount of work with N rayon threads, in the same run;
//! - scheduler overhead: a no-op job of one-index chunks through a real coordinator and
//!   two workers: chunks per second and time per chunk;
//! - latency: submit to report of a one-chunk job over an established connection;
//! - the job store's commit (one small batch, fsynced), which every submission waits
//!   for.
//!
//! The coordinator journals to a job store in a temporary directory, as a real one
//! does (`PICLUSTER_BENCH_JOURNAL=off`: jobs in memory only, for comparison).
//! `cargo bench --bench cluster`. Prints one line per figure and a final JSON line.
//! The worker processes are this binary again, started with `--worker BUNDLE`.
//! `PICLUSTER_BENCH_ONLY=overhead` skips the efficiency run, for profiling
//! (`perf record -g`). `PICLUSTER_BENCH_AUDIT_PERCENT=P` sets the share of finished
//! chunks audited during the efficiency run (default: the coordinator's, 2 %; 0 for
//! none), to measure what audits cost.

use picluster_client::{JobKind, JobSpec, LocalCluster, LocalClusterOptions, SearchMode};
use picluster_core::coordinator::{CoordinatorConfig, Record, StoredJob};
use picluster_core::identity::Role;
use picluster_core::ids::JobId;
use picluster_core::kernel::sha256d::{BlockHeader, Sha256dJob, Target};
use picluster_core::service::{RedbStore, Store};
use picluster_core::trust::Bundle;
use picluster_core::wire::{JobState, WorkSpec};
use picluster_worker::compute::{Compute, ComputeEvent, TaskId, Work};
use picluster_worker::WorkerOptions;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

fn job(nonces: std::ops::Range<u64>) -> Sha256dJob {
    // A target nothing meets: every implementation does all the work.
    let mut t = [0u8; 32];
    t[31] = 1;
    let header = BlockHeader::from_hex(GENESIS).expect("valid header");
    Sha256dJob::new(header, Some(Target(t)), nonces, 0).expect("valid job")
}

/// One process, `threads` rayon threads: seconds to scan `job`.
fn single_process(job: &Sha256dJob, threads: usize) -> f64 {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let compute = Compute::start(threads, move |e| {
        let _ = tx.lock().map(|tx| tx.send(e));
    })
    .expect("engine starts");
    let started = Instant::now();
    compute.run(
        TaskId(1),
        Work::Search(Arc::new(job.kernel())),
        0..job.keyspace(),
        Duration::from_secs(1),
    );
    while !matches!(rx.recv(), Ok(ComputeEvent::Finished { .. })) {}
    started.elapsed().as_secs_f64()
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Starts a cluster, journaling to a new store in `dir` unless `journal` is off.
async fn start(
    options: LocalClusterOptions,
    journal: bool,
    dir: &std::path::Path,
    name: &str,
) -> LocalCluster {
    let cluster = if journal {
        LocalCluster::start_durable(options, &dir.join(name)).await
    } else {
        LocalCluster::start_with(options).await
    };
    cluster.expect("cluster")
}

/// Microseconds per commit of one small batch (a job's row, as a checkpoint writes
/// it) to a store in `dir`, sorted.
fn store_commits(dir: &std::path::Path, commits: usize) -> Vec<f64> {
    let mut store = RedbStore::open(&dir.join("commits.redb")).expect("store");
    let row = StoredJob {
        work: WorkSpec::Noop(1 << 40),
        mode: SearchMode::All,
        priority: 0,
        client: "bench".into(),
        state: JobState::Running,
        failure: None,
        committed: vec![(0, 1 << 20)],
        hashes: 1 << 20,
        contributions: vec![("w0".into(), 1 << 20)],
        truncated: false,
        submitted: 0,
        finished: None,
        leases: Vec::new(),
    };
    let mut times: Vec<f64> = (0..commits)
        .map(|i| {
            let mut row = row.clone();
            row.hashes += i as u64;
            let started = Instant::now();
            store.commit(&[Record::Job(JobId(1), row)]).expect("commit");
            started.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--worker") {
        let bundle = Bundle::load(args[i + 1].as_ref()).expect("bundle");
        let options = WorkerOptions {
            threads: 1,
            ..WorkerOptions::default()
        };
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(picluster_worker::run(
                bundle,
                options,
                std::future::pending(),
            ))
            .expect("worker runs");
        return;
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");

    // PICLUSTER_BENCH_ONLY=overhead skips the efficiency run (for profiling).
    let only_overhead = std::env::var("PICLUSTER_BENCH_ONLY").is_ok_and(|v| v == "overhead");
    let journal = !std::env::var("PICLUSTER_BENCH_JOURNAL").is_ok_and(|v| v == "off");
    let audit_fraction = std::env::var("PICLUSTER_BENCH_AUDIT_PERCENT")
        .ok()
        .map(|p| {
            p.parse::<f64>()
                .expect("PICLUSTER_BENCH_AUDIT_PERCENT: a number")
                / 100.0
        })
        .unwrap_or(CoordinatorConfig::default().audit_fraction);

    // Parallel efficiency. Size the job for about 8 s on this machine.
    let calibrate = job(0..1 << 22);
    let rate = calibrate.keyspace() as f64 / single_process(&calibrate, threads);
    let size = if only_overhead {
        0
    } else {
        (rate * 8.0) as u64
    };
    let single = if only_overhead {
        0.0
    } else {
        single_process(&job(0..size), threads)
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let (cluster_seconds, per_worker) = if only_overhead {
        (1.0, Vec::new())
    } else {
        runtime.block_on(async {
            let cluster = start(
                LocalClusterOptions {
                    workers: 0,
                    worker: WorkerOptions::default(),
                    coordinator: CoordinatorConfig {
                        audit_fraction,
                        ..CoordinatorConfig::default()
                    },
                },
                journal,
                tmp.path(),
                "efficiency.redb",
            )
            .await;
            let mut workers = Vec::new();
            for i in 0..threads {
                let path = tmp.path().join(format!("w{i}.bundle"));
                cluster
                    .bundle(Role::Worker, &format!("w{i}"))
                    .expect("bundle")
                    .save(&path)
                    .expect("save");
                let exe = std::env::current_exe().expect("exe");
                workers.push(Worker(
                    Command::new(exe)
                        .arg("--worker")
                        .arg(&path)
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("spawn worker"),
                ));
            }
            cluster
                .wait_for_workers(threads, Duration::from_secs(30))
                .await
                .expect("workers join");
            let client = cluster.client().await.expect("client");
            let spec = JobSpec {
                kind: JobKind::Sha256d(job(1 << 31..(1 << 31) + size)),
                mode: SearchMode::All,
            };
            let report = client.run(&spec).await.expect("job");
            assert_eq!(report.hashes, size);
            let per_worker: Vec<u64> = report.contributions.iter().map(|c| c.hashes).collect();
            client.close();
            drop(workers);
            cluster.shutdown().await;
            (report.elapsed_ms as f64 / 1000.0, per_worker)
        })
    };
    let efficiency = single / cluster_seconds;
    println!(
        "parallel efficiency: {threads} worker processes {:.3} s vs 1 process x {threads} threads {:.3} s for {size} hashes: {:.3} (per worker {per_worker:?}; {}% of chunks audited)",
        cluster_seconds, single, efficiency, audit_fraction * 100.0
    );

    // Scheduler overhead and latency, with no-op chunks of one index.
    let (chunks, overhead_seconds, latencies, submits) = runtime.block_on(async {
        let cluster = start(
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
            },
            journal,
            tmp.path(),
            "overhead.redb",
        )
        .await;
        let client = cluster.client().await.expect("client");
        let chunks: u64 = 100_000;
        let spec = JobSpec {
            kind: JobKind::Noop { keyspace: chunks },
            mode: SearchMode::All,
        };
        let started = Instant::now();
        let report = client.run(&spec).await.expect("noop job");
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(report.hashes, chunks);
        let one = JobSpec {
            kind: JobKind::Noop { keyspace: 1 },
            mode: SearchMode::All,
        };
        let mut latencies = Vec::new();
        let mut submits = Vec::new();
        for _ in 0..500 {
            let started = Instant::now();
            let job = client.submit(&one).await.expect("submit");
            submits.push(started.elapsed().as_secs_f64() * 1e6);
            client.wait(job).await.expect("one-chunk job");
            latencies.push(started.elapsed().as_secs_f64() * 1e6);
        }
        submits.sort_by(f64::total_cmp);
        latencies.sort_by(f64::total_cmp);
        client.close();
        cluster.shutdown().await;
        (chunks, seconds, latencies, submits)
    });
    let chunks_per_second = chunks as f64 / overhead_seconds;
    let (p50, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    println!(
        "scheduler overhead: {chunks} no-op chunks in {overhead_seconds:.3} s: {chunks_per_second:.0} chunks/s, {:.1} us per chunk",
        1e6 / chunks_per_second
    );
    println!("latency, submit to report of a one-chunk job: p50 {p50:.0} us, p99 {p99:.0} us");
    let (s50, s99) = (percentile(&submits, 0.5), percentile(&submits, 0.99));
    println!("of which submit to acknowledgement (after the job's record is durable): p50 {s50:.0} us, p99 {s99:.0} us");
    let commits = store_commits(tmp.path(), 300);
    let (c50, c99) = (percentile(&commits, 0.5), percentile(&commits, 0.99));
    println!(
        "job store commit of one job row (fsync), in {}: p50 {c50:.0} us, p99 {c99:.0} us",
        tmp.path().display()
    );
    println!(
        "{{\"bench\": \"cluster\", \"journal\": {journal}, \"threads\": {threads}, \"efficiency\": {efficiency:.4}, \"audit_percent\": {:.1}, \"single_seconds\": {single:.3}, \"cluster_seconds\": {cluster_seconds:.3}, \"chunks_per_second\": {chunks_per_second:.0}, \"us_per_chunk\": {:.2}, \"latency_p50_us\": {p50:.0}, \"latency_p99_us\": {p99:.0}, \"submit_p50_us\": {s50:.0}, \"submit_p99_us\": {s99:.0}, \"store_commit_p50_us\": {c50:.0}, \"store_commit_p99_us\": {c99:.0}}}",
        audit_fraction * 100.0,
        1e6 / chunks_per_second
    );
}
