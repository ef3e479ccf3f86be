//! `picluster-worker selftest`: every SHA-256d implementation this CPU can run,
//! checked against the `sha2` crate's streaming API on the known Bitcoin blocks and on
//! seeded random headers, targets and ranges; and the preimage and hashcash kernels
//! on that implementation's instructions, against the same reference over every
//! candidate of a mask and every counter of a range. Run it on each new kind of
//! machine.

use picluster_core::kernel::hashcash::HashcashJob;
use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
use picluster_core::kernel::sha256d::{
    sha256d, BlockHeader, Sha256dImpl, Sha256dJob, Target, BIP320_MASK, KNOWN_BLOCKS,
};
use picluster_core::kernel::SearchKernel;

/// One implementation's result: `Err` says what disagreed.
pub type Outcome = (Sha256dImpl, Result<(), String>);

/// Tests every available implementation.
pub fn run() -> Vec<Outcome> {
    Sha256dImpl::available()
        .into_iter()
        .map(|imp| (imp, check(imp)))
        .collect()
}

fn check(imp: Sha256dImpl) -> Result<(), String> {
    check_sha256d(imp)?;
    check_preimage(imp)?;
    check_hashcash(imp)
}

/// Ranges that start and end mid-batch, one index long, and the rest.
fn pieces(keyspace: u64) -> [std::ops::Range<u64>; 5] {
    [0..5, 5..6, 6..37, 37..keyspace - 3, keyspace - 3..keyspace]
}

fn check_preimage(imp: Sha256dImpl) -> Result<(), String> {
    let mask = Mask::parse("?u?d?l?d", &[None; 4]).map_err(|e| e.to_string())?;
    for hash in [PreimageHash::Sha256, PreimageHash::Sha256d] {
        let probe =
            PreimageJob::new(mask.clone(), hash, &[[0; 32]], None).map_err(|e| e.to_string())?;
        let digests: Vec<[u8; 32]> = (0..mask.keyspace())
            .map(|i| probe.digest(&mask.candidate(i)))
            .collect();
        // Every 997th candidate, and one digest no candidate has.
        let mut targets: Vec<[u8; 32]> = digests.iter().step_by(997).copied().collect();
        targets.push([0x5a; 32]);
        let expected: Vec<u64> = (0..mask.keyspace())
            .filter(|&i| targets.contains(&digests[i as usize]))
            .collect();
        let kernel = PreimageJob::new(mask.clone(), hash, &targets, None)
            .map_err(|e| e.to_string())?
            .kernel_with(imp);
        let mut hits = Vec::new();
        for range in pieces(kernel.keyspace()) {
            kernel.scan(range, &mut hits);
        }
        if hits != expected {
            return Err(format!(
                "preimage {}: found {} of the {} planted candidates",
                hash.name(),
                hits.iter().filter(|i| expected.contains(i)).count(),
                expected.len()
            ));
        }
    }
    Ok(())
}

fn check_hashcash(imp: Sha256dImpl) -> Result<(), String> {
    // One- and two-block tails, and a counter across the block boundary.
    for len in [0usize, 47, 55, 60, 64, 119] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
        let job = HashcashJob::new(&data, 7, 5_000..9_000).map_err(|e| e.to_string())?;
        let expected: Vec<u64> = (0..job.keyspace())
            .filter(|&i| {
                let d = job.digest(job.counter(i));
                d[0] >> 1 == 0
            })
            .collect();
        let kernel = job.kernel_with(imp);
        let mut hits = Vec::new();
        for range in pieces(kernel.keyspace()) {
            kernel.scan(range, &mut hits);
        }
        if hits != expected {
            return Err(format!(
                "hashcash over {len} bytes: found {} counters, the reference {}",
                hits.len(),
                expected.len()
            ));
        }
    }
    Ok(())
}

fn check_sha256d(imp: Sha256dImpl) -> Result<(), String> {
    for (nonce, hex) in KNOWN_BLOCKS {
        let header = BlockHeader::from_hex(hex).map_err(|e| e.to_string())?;
        let start = u64::from(nonce) - 2000;
        let job =
            Sha256dJob::new(header, None, start..start + 4000, 0).map_err(|e| e.to_string())?;
        let mut hits = Vec::new();
        job.kernel_with(imp).scan(0..job.keyspace(), &mut hits);
        if hits != [2000] {
            return Err(format!(
                "block with nonce {nonce}: found {hits:?}, expected [2000]"
            ));
        }
    }
    let mut seed = 0x5eed_u64;
    let mut next = move || {
        // splitmix64
        seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for round in 0..32 {
        let bytes: Vec<u8> = (0..80).map(|_| next() as u8).collect();
        let header = BlockHeader::from_bytes(&bytes).map_err(|e| e.to_string())?;
        let mut t = [0xffu8; 32];
        t[..4].copy_from_slice(&(u32::MAX >> (4 + next() % 8)).to_be_bytes());
        let start = next() % ((1 << 32) - 1024);
        let mask = if round % 2 == 0 {
            0
        } else {
            BIP320_MASK & 0x6000
        };
        let job = Sha256dJob::new(header, Some(Target(t)), start..start + 512, mask)
            .map_err(|e| e.to_string())?;
        let expected: Vec<u64> = (0..job.keyspace())
            .filter(|&i| {
                let (version, nonce) = job.locate(i);
                job.target
                    .is_met_by(&sha256d(&job.header.with(version, nonce).0))
            })
            .collect();
        let mut hits = Vec::new();
        job.kernel_with(imp).scan(0..job.keyspace(), &mut hits);
        if hits != expected {
            return Err(format!(
                "random header {round}: found {} solutions, the reference {}",
                hits.len(),
                expected.len()
            ));
        }
    }
    Ok(())
}
