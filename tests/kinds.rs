//! The other kernels end to end over real QUIC: hashcash and preimage jobs against a
//! single-process scan with the `sha2` crate, and user-defined kernels (typed params
//! and results, registered per worker) against the same computation in one process.

use picluster_client::{
    JobKind, JobSpec, JobState, LocalCluster, LocalClusterOptions, SearchMode, SolutionDetail,
};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::kernel::custom::{CustomJob, Kernel};
use picluster_core::kernel::hashcash::HashcashJob;
use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
use picluster_worker::{Registry, WorkerOptions};
use sha2::{Digest, Sha256};
use std::ops::Range;
use std::time::Duration;

fn options(workers: usize) -> LocalClusterOptions {
    LocalClusterOptions {
        workers,
        worker: WorkerOptions {
            threads: 1,
            benchmark: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        coordinator: CoordinatorConfig {
            min_chunk: 1 << 14,
            max_chunk: 1 << 16,
            ..CoordinatorConfig::default()
        },
    }
}

fn leading_zero_bits(digest: &[u8]) -> u32 {
    let mut n = 0;
    for b in digest {
        n += b.leading_zeros();
        if *b != 0 {
            break;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashcash_finds_every_counter_a_single_process_scan_finds() {
    let cluster = LocalCluster::start_with(options(3)).await.unwrap();
    let client = cluster.client().await.unwrap();
    // 70 bytes of data: a midstate block, then a two-block tail with the counter.
    let data: Vec<u8> = (0..70u8).collect();
    let (bits, counters) = (13, 1_000_000..1_300_000u64);
    let expected: Vec<u64> = counters
        .clone()
        .filter(|c| {
            let mut h = Sha256::new();
            h.update(&data);
            h.update(c.to_be_bytes());
            leading_zero_bits(&h.finalize()) >= bits
        })
        .collect();
    assert!(expected.len() > 10, "{expected:?}");
    let job = HashcashJob::new(&data, bits, counters.clone()).unwrap();
    let report = client
        .run(&JobSpec {
            kind: JobKind::Hashcash(job.clone()),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    assert_eq!(report.state, JobState::Completed);
    assert_eq!(report.hashes, 300_000);
    let found: Vec<u64> = report
        .solutions
        .iter()
        .map(|s| match s.detail {
            SolutionDetail::Hashcash { counter } => counter,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(found, expected);
    assert!(report.contributions.len() >= 2, "{report:?}");

    // First mode stops at a verified counter, one of the same set.
    let report = client
        .run(&JobSpec {
            kind: JobKind::Hashcash(job),
            mode: SearchMode::First,
        })
        .await
        .unwrap();
    assert_eq!(report.state, JobState::Completed);
    assert!(!report.solutions.is_empty());
    for s in &report.solutions {
        let SolutionDetail::Hashcash { counter } = s.detail else {
            panic!("{s:?}")
        };
        assert!(expected.contains(&counter));
        assert!(leading_zero_bits(&s.hash) >= bits);
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preimage_search_recovers_planted_candidates_and_stops_when_all_are_found() {
    let cluster = LocalCluster::start_with(options(2)).await.unwrap();
    let client = cluster.client().await.unwrap();
    let mask = Mask::parse("?u?l?l?d?1", &[Some("!#"), None, None, None]).unwrap();
    assert_eq!(mask.keyspace(), 26 * 26 * 26 * 10 * 2);
    let planted = [b"Abc1!".to_vec(), b"Zzz9#".to_vec(), b"Pie3!".to_vec()];
    for hash in [PreimageHash::Sha256, PreimageHash::Sha256d] {
        let digest = |c: &[u8]| -> [u8; 32] {
            let once: [u8; 32] = Sha256::digest(c).into();
            match hash {
                PreimageHash::Sha256 => once,
                PreimageHash::Sha256d => Sha256::digest(once).into(),
            }
        };
        // Every target present: the job ends once all are found.
        let targets: Vec<[u8; 32]> = planted.iter().map(|c| digest(c)).collect();
        let job = PreimageJob::new(mask.clone(), hash, &targets, None).unwrap();
        let report = client
            .run(&JobSpec {
                kind: JobKind::Preimage(job),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        assert_eq!(report.state, JobState::Completed);
        let mut found: Vec<Vec<u8>> = report
            .solutions
            .iter()
            .map(|s| match &s.detail {
                SolutionDetail::Preimage { candidate } => {
                    assert_eq!(s.hash, digest(candidate));
                    candidate.clone()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        found.sort();
        let mut want = planted.to_vec();
        want.sort();
        assert_eq!(found, want, "{hash:?}");

        // A target with no preimage in the mask: the whole keyspace is searched.
        let mut targets = targets[..1].to_vec();
        targets.push(digest(b"not in the mask"));
        let job = PreimageJob::new(mask.clone(), hash, &targets, None).unwrap();
        let report = client
            .run(&JobSpec {
                kind: JobKind::Preimage(job),
                mode: SearchMode::All,
            })
            .await
            .unwrap();
        assert_eq!(report.state, JobState::Completed);
        assert_eq!(report.hashes, mask.keyspace());
        assert_eq!(report.solutions.len(), 1);
    }
    cluster.shutdown().await;
}

/// An order-sensitive fold: a polynomial hash of f(i) over the range, so a result
/// merged out of order, or with a range missing or counted twice, differs.
struct Chain;

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
struct ChainParams {
    n: u64,
    salt: u64,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct ChainOut {
    hash: u64,
    len: u64,
}

const P: u64 = 0x100_0000_01b3;

fn pow(mut b: u64, mut e: u64) -> u64 {
    let mut r = 1u64;
    while e > 0 {
        if e & 1 == 1 {
            r = r.wrapping_mul(b);
        }
        b = b.wrapping_mul(b);
        e >>= 1;
    }
    r
}

impl Kernel for Chain {
    const NAME: &'static str = "test/chain/1";
    const BLOCK: u64 = 1000;
    type Params = ChainParams;
    type Output = ChainOut;
    fn keyspace(p: &ChainParams) -> u64 {
        p.n
    }
    fn run(p: &ChainParams, range: Range<u64>) -> ChainOut {
        let mut hash = 0u64;
        for i in range.clone() {
            let x = (i ^ p.salt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            hash = hash.wrapping_mul(P).wrapping_add(x >> 7);
        }
        ChainOut {
            hash,
            len: range.end - range.start,
        }
    }
    fn merge(_: &ChainParams, a: ChainOut, b: ChainOut) -> ChainOut {
        ChainOut {
            hash: a.hash.wrapping_mul(pow(P, b.len)).wrapping_add(b.hash),
            len: a.len + b.len,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_kernel_runs_only_on_workers_that_registered_it_and_merges_in_order() {
    let mut cluster = LocalCluster::start_with(options(2).with_kernel::<Chain>())
        .await
        .unwrap();
    // A third worker without the kernel: it must get none of the job.
    cluster
        .add_worker_with(
            "plain",
            WorkerOptions {
                threads: 1,
                benchmark: Duration::from_millis(20),
                kernels: Registry::new(),
                ..WorkerOptions::default()
            },
        )
        .unwrap();
    cluster
        .wait_for_workers(3, Duration::from_secs(20))
        .await
        .unwrap();
    let client = cluster.client().await.unwrap();
    let params = ChainParams {
        n: 30_000_000,
        salt: 7,
    };
    let run = client.run_kernel::<Chain>(&params).await.unwrap();
    assert_eq!(run.report.state, JobState::Completed);
    assert_eq!(run.covered, params.n);
    assert_eq!(run.report.hashes, params.n);
    assert_eq!(run.output, Some(Chain::run(&params, 0..params.n)));
    let workers: Vec<&str> = run
        .report
        .contributions
        .iter()
        .map(|c| c.worker.as_str())
        .collect();
    assert_eq!(workers, vec!["worker-1", "worker-2"]);
    let status = client.status().await.unwrap();
    let plain = status.workers.iter().find(|w| w.name == "plain").unwrap();
    assert_eq!(plain.hashes, 0);
    assert!(plain.kernels.is_empty());
    let capable = status
        .workers
        .iter()
        .find(|w| w.name == "worker-1")
        .unwrap();
    assert_eq!(capable.kernels, vec!["test/chain/1".to_string()]);
    let kind = &status.jobs[0].kind;
    assert_eq!(kind, "custom:test/chain/1");

    // Parameters that do not decode as the kernel's: the job fails, saying why, and
    // the cluster goes on working.
    let bad = CustomJob::new(Chain::NAME, &[0xff; 3], 5000, Chain::BLOCK).unwrap();
    let report = client
        .run(&JobSpec {
            kind: JobKind::Custom(bad),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    assert_eq!(report.state, JobState::Failed);
    let error = report.error.unwrap();
    assert!(
        error.contains("cannot run it") && error.contains("parameters do not decode"),
        "{error}"
    );
    let small = ChainParams { n: 5000, salt: 1 };
    let run = client.run_kernel::<Chain>(&small).await.unwrap();
    assert_eq!(run.output, Some(Chain::run(&small, 0..small.n)));

    // A kernel no worker has: the job waits in the queue, and can be cancelled.
    let job = client
        .submit(&JobSpec {
            kind: JobKind::Custom(CustomJob::new("nobody/has/it", &[], 10, 1).unwrap()),
            mode: SearchMode::All,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jobs = client.jobs().await.unwrap();
    let queued = jobs.iter().find(|j| j.progress.job == job).unwrap();
    assert_eq!(queued.progress.state, JobState::Queued);
    assert_eq!(
        queued.waiting.as_deref(),
        Some("no connected worker has kernel \"nobody/has/it\"")
    );
    assert_eq!(
        client.cancel(job).await.unwrap().progress.state,
        JobState::Cancelled
    );

    // `picluster wait` on a custom job: merged and shown as JSON by a picluster that
    // knows the kernel, listed as it came (with its coverage) by one that does not.
    let done = client.submit_kernel::<Chain>(&small, 0).await.unwrap();
    client.wait(done).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let admin = tmp.path().join("admin.bundle");
    cluster
        .bundle(picluster_core::identity::Role::Admin, "admin")
        .unwrap()
        .save(&admin)
        .unwrap();
    let wait = move |kernels: picluster_client::cli::Kernels, json: bool| {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            let job = done.to_string();
            let mut args = vec![
                "picluster",
                "wait",
                &job,
                "--bundle",
                admin.to_str().unwrap(),
            ];
            if json {
                args.push("--json");
            }
            let code = picluster_client::cli::run_from_with(args, &kernels, &mut out).unwrap();
            assert_eq!(code, std::process::ExitCode::SUCCESS);
            String::from_utf8(out).unwrap()
        })
    };
    let known = picluster_client::cli::Kernels::new().with::<Chain>();
    let out = wait(known.clone(), true).await.unwrap();
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["kind"], "custom:test/chain/1");
    assert_eq!(report["covered"], small.n);
    assert_eq!(report["kernel_known"], true);
    assert_eq!(
        report["output"],
        serde_json::to_value(Chain::run(&small, 0..small.n)).unwrap()
    );
    assert!(report.get("results").is_none());
    let human = wait(known, false).await.unwrap();
    assert!(
        human.starts_with(&format!(
            "{done} completed: custom:test/chain/1, results cover 5,000 of 5,000 indices\n  result: {{\"hash\":"
        )),
        "{human}"
    );
    let out = wait(picluster_client::cli::Kernels::new(), true)
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["kernel_known"], false);
    assert_eq!(report["output"], serde_json::Value::Null);
    assert_eq!(report["covered"], small.n);
    let results = report["results"].as_array().unwrap();
    let covered: u64 = results
        .iter()
        .map(|r| r["end"].as_u64().unwrap() - r["start"].as_u64().unwrap())
        .sum();
    assert_eq!(covered, small.n);
    assert!(results.iter().all(|r| r["data_hex"].as_str().is_some()));
    cluster.shutdown().await;
}

#[test]
fn the_engine_reports_a_custom_kernels_results_for_exactly_the_committed_ranges() {
    use picluster_core::kernel::custom::{bind, decode_output};
    use picluster_worker::compute::{Compute, ComputeEvent, TaskId, Work};
    let params = ChainParams {
        n: 3_000_000,
        salt: 3,
    };
    let job = CustomJob::of::<Chain>(&params).unwrap();
    let kernel = bind::<Chain>(&job).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let compute = Compute::start(2, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();
    let range = 123_457..2_876_543;
    compute.run(
        TaskId(1),
        Work::Map(kernel),
        range.clone(),
        Duration::from_millis(1),
    );
    let mut position = range.start;
    let mut merged: Option<ChainOut> = None;
    let mut reports = 0;
    loop {
        let (at, output, done) = match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
            ComputeEvent::Progress {
                position, output, ..
            } => (position, output, false),
            ComputeEvent::Finished {
                position, output, ..
            } => (position, output, true),
            other => panic!("{other:?}"),
        };
        reports += 1;
        let part: ChainOut = decode_output::<Chain>(&output.unwrap()).unwrap();
        // Each report covers exactly the indices since the one before.
        assert_eq!(part.len, at - position);
        position = at;
        merged = Some(match merged {
            Some(m) => Chain::merge(&params, m, part),
            None => part,
        });
        if done {
            break;
        }
    }
    assert_eq!(position, range.end);
    assert!(reports > 1, "expected several progress reports");
    assert_eq!(merged, Some(Chain::run(&params, range)));
}
