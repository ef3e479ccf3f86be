//! Quickstart: a coordinator and two workers in this process, talking QUIC with mutual
//! TLS over loopback, mine the Bitcoin genesis block header in a 2^25-nonce window
//! that contains its nonce, and print the solution and the hash rate.
//!
//! Run with `cargo run --example quickstart` (the profile `cargo test` builds: its
//! kernels are optimised; `--release` is a little faster and builds everything again).

use picluster_client::{hex, BlockHeader, JobKind, JobSpec, LocalCluster, SearchMode, Sha256dJob};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let per_worker = (threads / 2).max(1);
    println!("starting a coordinator and 2 workers ({per_worker} thread(s) each) on loopback");
    let cluster = LocalCluster::start(2, per_worker).await?;
    let client = cluster.client().await?;

    let header = BlockHeader::from_hex(GENESIS)?;
    // 0x7c000000..0x7e000000 holds the genesis nonce 2083236893 (0x7c2bac1d).
    let job = Sha256dJob::new(header, None, 0x7c00_0000..0x7e00_0000, 0)?;
    let spec = JobSpec {
        kind: JobKind::Sha256d(job),
        mode: SearchMode::All,
    };
    println!(
        "searching nonces 0x7c000000..0x7e000000 ({} hashes) for the genesis block",
        job.keyspace()
    );
    let report = client.run(&spec).await?;

    for s in &report.solutions {
        if let Some(nonce) = s.nonce() {
            println!(
                "solution: nonce {nonce} (0x{nonce:08x}), hash {}",
                hex::encode(&s.hash)
            );
        }
    }
    let seconds = report.elapsed_ms as f64 / 1000.0;
    println!(
        "hashed {} headers in {:.2} s: {:.2} MH/s",
        report.hashes,
        seconds,
        report.hashes as f64 / seconds / 1e6
    );
    for c in &report.contributions {
        println!("  {}: {} hashes", c.worker, c.hashes);
    }
    client.close();
    cluster.shutdown().await;
    Ok(())
}
