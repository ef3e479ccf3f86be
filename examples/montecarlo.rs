//! A custom kernel end to end: estimate π by Monte Carlo across the cluster.
//!
//! Index `i` is one sample: a point in the unit square drawn from a counter-based
//! generator (SplitMix64 of seed and index), so any range can be computed anywhere,
//! any number of times, with the same result. A range's result is how many of its
//! points fall inside the quarter circle.
//!
//! Three ways to run it:
//!
//! ```text
//! # 1. Everything in this process: a coordinator and two workers over QUIC, then the
//! #    same estimate computed in one process to compare.
//! cargo run --release --example montecarlo
//!
//! # 2. A worker binary with the kernel registered, for a real cluster (on each Pi):
//! cargo build --release --example montecarlo
//! target/release/examples/montecarlo worker --bundle pi-1.bundle
//!
//! # 3. Submit to that cluster (from any machine with the cluster directory):
//! target/release/examples/montecarlo submit --cluster mycluster --samples 10000000000
//! ```

use picluster_client::{Client, Kernel, LocalCluster, LocalClusterOptions};
use serde::{Deserialize, Serialize};
use std::ops::Range;
use std::process::ExitCode;
use std::time::Instant;

/// The kernel: a unit type, its behaviour in the trait's associated functions.
struct PiEstimate;

/// What a job asks for.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct PiParams {
    /// Number of samples (the keyspace).
    samples: u64,
    /// Seed of the generator: another seed, other points.
    seed: u64,
}

/// The result of a range of samples.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
struct PiCount {
    inside: u64,
    total: u64,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Kernel for PiEstimate {
    const NAME: &'static str = "picluster-example/pi/1";
    type Params = PiParams;
    type Output = PiCount;

    fn keyspace(params: &PiParams) -> u64 {
        params.samples
    }

    fn run(params: &PiParams, range: Range<u64>) -> PiCount {
        let mut inside = 0;
        for i in range.clone() {
            let r = splitmix64(params.seed ^ splitmix64(i));
            // Two 32-bit coordinates; compare x² + y² with 1 exactly in integers.
            let (x, y) = (u128::from(r >> 32), u128::from(r & 0xffff_ffff));
            if x * x + y * y < 1 << 64 {
                inside += 1;
            }
        }
        PiCount {
            inside,
            total: range.end - range.start,
        }
    }

    fn merge(_: &PiParams, a: PiCount, b: PiCount) -> PiCount {
        PiCount {
            inside: a.inside + b.inside,
            total: a.total + b.total,
        }
    }
}

fn estimate(count: PiCount) -> f64 {
    4.0 * count.inside as f64 / count.total as f64
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        // The worker command line, with the kernel registered.
        Some("worker") => picluster_worker::cli::main_from(
            picluster_worker::Registry::new().with::<PiEstimate>(),
            std::iter::once("montecarlo worker".to_string()).chain(args[2..].iter().cloned()),
        ),
        Some("submit") => report(submit(&args[2..])),
        None => report(local()),
        Some(other) => {
            eprintln!("montecarlo: unknown command {other:?} (expected worker, submit or nothing)");
            ExitCode::from(2)
        }
    }
}

fn report(result: Result<(), Box<dyn std::error::Error>>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("montecarlo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn option(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Submits to a running cluster whose workers run `montecarlo worker`.
fn submit(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let dir = option(args, "--cluster").ok_or("--cluster DIR is required")?;
    let samples = match option(args, "--samples") {
        Some(s) => s.parse()?,
        None => 1_000_000_000,
    };
    let params = PiParams { samples, seed: 1 };
    let client = picluster_client::blocking::Client::connect_cluster(dir.as_ref())?;
    let started = Instant::now();
    let run = client.run_kernel::<PiEstimate>(&params)?;
    let count = run.output.ok_or("no result")?;
    println!(
        "pi ~ {:.9} from {} samples in {:.2} s ({:?})",
        estimate(count),
        count.total,
        started.elapsed().as_secs_f64(),
        run.report.state
    );
    Ok(())
}

/// The whole thing in one process: two workers with the kernel, and a check
/// against the same computation without the cluster.
fn local() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let cluster =
            LocalCluster::start_with(LocalClusterOptions::new(2, 1).with_kernel::<PiEstimate>())
                .await?;
        let client: Client = cluster.client().await?;
        let params = PiParams {
            samples: 200_000_000,
            seed: 1,
        };
        let started = Instant::now();
        let run = client.run_kernel::<PiEstimate>(&params).await?;
        let seconds = started.elapsed().as_secs_f64();
        let count = run.output.ok_or("no result")?;
        println!(
            "cluster: pi ~ {:.9} (error {:+.2e}) from {} samples in {seconds:.2} s, {:.1} M samples/s",
            estimate(count),
            estimate(count) - std::f64::consts::PI,
            count.total,
            count.total as f64 / seconds / 1e6
        );
        for c in &run.report.contributions {
            println!("  {}: {} samples", c.worker, c.hashes);
        }
        cluster.shutdown().await;

        let started = Instant::now();
        let single = PiEstimate::run(&params, 0..params.samples);
        println!(
            "one thread, no cluster: the same count in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        if single != count {
            return Err(format!("cluster {count:?} != single process {single:?}").into());
        }
        println!("identical: {} of {} inside", count.inside, count.total);
        Ok(())
    })
}
