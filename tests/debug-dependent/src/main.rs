//! Every job kind on a LocalCluster, from a crate built without optimisation: the
//! kernels' threads must not overflow their stacks, and the answers must be those of
//! an independent computation (the `sha2` crate, a plain loop). Exits non-zero on any
//! difference.

use picluster_client::{
    HashcashJob, JobKind, JobSpec, Kernel, LocalCluster, LocalClusterOptions, Mask, PreimageHash,
    PreimageJob, SearchMode, Sha256dJob, SolutionDetail, Target,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::ops::Range;

/// A custom kernel: the sum of the squares of a range of integers.
struct SumOfSquares;

#[derive(Serialize, Deserialize, Clone, Debug)]
struct Upto(u64);

impl Kernel for SumOfSquares {
    const NAME: &'static str = "debug-dependent/sum-of-squares/1";
    type Params = Upto;
    type Output = u128;

    fn keyspace(params: &Upto) -> u64 {
        params.0
    }

    fn run(_: &Upto, range: Range<u64>) -> u128 {
        range.map(|i| u128::from(i) * u128::from(i)).sum()
    }

    fn merge(_: &Upto, a: u128, b: u128) -> u128 {
        a + b
    }
}

fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// The leading zero bits of a digest read as a big-endian number.
fn zero_bits(digest: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for byte in digest {
        if *byte == 0 {
            bits += 8;
        } else {
            return bits + byte.leading_zeros();
        }
    }
    bits
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster =
        LocalCluster::start_with(LocalClusterOptions::new(2, 1).with_kernel::<SumOfSquares>())
            .await?;
    let client = cluster.client().await?;

    // SHA-256d: every nonce of a small range whose hash, read as Bitcoin reads it (a
    // little-endian number: its last byte is the most significant), is below 2^248.
    // The target is written big-endian.
    let header = [0x5au8; 80];
    let mut target = [0xffu8; 32];
    target[0] = 0x00;
    let job = Sha256dJob::new(
        picluster_client::BlockHeader(header),
        Some(Target(target)),
        0..20_000,
        0,
    )?;
    let report = client
        .run(&JobSpec {
            kind: JobKind::Sha256d(job),
            mode: SearchMode::All,
        })
        .await?;
    let mut found: Vec<u32> = report.solutions.iter().filter_map(|s| s.nonce()).collect();
    found.sort_unstable();
    let expected: Vec<u32> = (0..20_000u32)
        .filter(|n| {
            let mut h = header;
            h[76..80].copy_from_slice(&n.to_le_bytes());
            sha256d(&h)[31] == 0
        })
        .collect();
    check(
        "sha256d",
        found == expected && report.hashes == 20_000,
        &format!(
            "{} nonces against {} ({:?}... against {:?}...), {} hashes",
            found.len(),
            expected.len(),
            &found[..found.len().min(5)],
            &expected[..expected.len().min(5)],
            report.hashes
        ),
    )?;

    // Hashcash: every counter of a range whose SHA-256 of the data and the counter (8
    // big-endian bytes) has 10 leading zero bits.
    let job = HashcashJob::new(b"debug-dependent", 10, 0..1 << 14)?;
    let report = client
        .run(&JobSpec {
            kind: JobKind::Hashcash(job),
            mode: SearchMode::All,
        })
        .await?;
    let mut counters: Vec<u64> = report
        .solutions
        .iter()
        .filter_map(|s| match s.detail {
            SolutionDetail::Hashcash { counter } => Some(counter),
            _ => None,
        })
        .collect();
    counters.sort_unstable();
    let expected: Vec<u64> = (0u64..1 << 14)
        .filter(|c| {
            let mut data = b"debug-dependent".to_vec();
            data.extend_from_slice(&c.to_be_bytes());
            let digest: [u8; 32] = Sha256::digest(&data).into();
            zero_bits(&digest) >= 10
        })
        .collect();
    check(
        "hashcash",
        counters == expected && !expected.is_empty(),
        &format!("{counters:?} against {expected:?}"),
    )?;

    // Preimage: the three-letter word whose SHA-256 is given.
    let target: [u8; 32] = Sha256::digest(b"pig").into();
    let job = PreimageJob::new(
        Mask::parse("?l?l?l", &[None; 4])?,
        PreimageHash::Sha256,
        &[target],
        None,
    )?;
    let report = client
        .run(&JobSpec {
            kind: JobKind::Preimage(job),
            mode: SearchMode::First,
        })
        .await?;
    let candidate = report.solutions.first().and_then(|s| match &s.detail {
        SolutionDetail::Preimage { candidate } => Some(candidate.clone()),
        _ => None,
    });
    check(
        "preimage",
        candidate.as_deref() == Some(&b"pig"[..]),
        &format!("{candidate:?}"),
    )?;

    // A custom kernel.
    let run = client.run_kernel::<SumOfSquares>(&Upto(100_000)).await?;
    let expected: u128 = (0..100_000u128).map(|i| i * i).sum();
    check(
        "custom",
        run.output == Some(expected),
        &format!("{:?} against {expected}", run.output),
    )?;

    client.close();
    cluster.shutdown().await;
    println!("every job kind ran and matched its reference in a debug build");
    Ok(())
}

fn check(kind: &str, ok: bool, detail: &str) -> Result<(), Box<dyn std::error::Error>> {
    if ok {
        println!("{kind}: ok");
        Ok(())
    } else {
        Err(format!("{kind}: wrong answer: {detail}").into())
    }
}
