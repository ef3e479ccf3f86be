//! `picluster-worker selftest`: every SHA-256d implementation this CPU can run,
//! checked against the `sha2` crate's streaming API on the known Bitcoin blocks and on
//! seeded random headers, targets and ranges. Run it on each new kind of machine.

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
