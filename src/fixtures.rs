//! Fixtures: the Bitcoin header vectors and an independent reference scan.

use picluster_core::kernel::sha256d::{sha256d, BlockHeader, Target};

/// One known block: height, nonce, hash (display order hex), header.
#[derive(Clone, Debug)]
pub struct Vector {
    pub height: u32,
    pub nonce: u32,
    pub hash: String,
    pub header: BlockHeader,
}

/// The real block headers in tests/vectors/bitcoin-headers.tsv (copied from
/// shared/vectors).
pub fn vectors() -> Vec<Vector> {
    let text = include_str!("../tests/vectors/bitcoin-headers.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Vector {
                height: f[0].parse().unwrap(),
                nonce: f[1].parse().unwrap(),
                hash: f[2].to_string(),
                header: BlockHeader::from_hex(f[3]).unwrap(),
            }
        })
        .collect()
}

/// Every nonce in `nonces` whose SHA-256d meets `target`, by a plain loop over the
/// `sha2` crate's streaming API: independent of the kernels' midstate code.
pub fn reference_scan(
    header: &BlockHeader,
    target: &Target,
    nonces: std::ops::Range<u64>,
) -> Vec<u32> {
    nonces
        .filter(|&n| {
            let h = header.with(header.version(), n as u32);
            target.is_met_by(&sha256d(&h.0))
        })
        .map(|n| n as u32)
        .collect()
}

/// A target whose top byte is zero: about 1 hash in 256 meets it.
pub fn easy_target() -> Target {
    let mut t = [0xff; 32];
    t[0] = 0;
    Target(t)
}
