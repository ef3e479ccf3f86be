//! Every SHA-256d scan implementation this CPU can run, against the `sha2` crate's
//! streaming API (an independent reference) and the real Bitcoin headers.

use picluster_core::kernel::sha256d::{
    sha256d, BlockHeader, Sha256dImpl, Sha256dJob, Target, BIP320_MASK,
};
use picluster_core::kernel::SearchKernel;
use picluster_suite::fixtures::vectors;
use proptest::prelude::*;

/// Every index of `job` that meets its target, one `sha2` digest at a time.
fn reference(job: &Sha256dJob) -> Vec<u64> {
    (0..job.keyspace())
        .filter(|&i| {
            let (version, nonce) = job.locate(i);
            job.target
                .is_met_by(&sha256d(&job.header.with(version, nonce).0))
        })
        .collect()
}

#[test]
fn there_is_a_portable_reference_and_the_best_is_selected_by_default() {
    let available = Sha256dImpl::available();
    assert!(available.contains(&Sha256dImpl::Portable));
    assert_eq!(
        Sha256dImpl::from_name("portable"),
        Ok(Sha256dImpl::Portable)
    );
    let err = Sha256dImpl::from_name("avx9000").unwrap_err().to_string();
    assert!(
        err.starts_with("no SHA-256d implementation `avx9000` on this CPU (available: "),
        "{err}"
    );
}

#[test]
fn every_implementation_finds_the_known_block_nonces() {
    for imp in Sha256dImpl::available() {
        for v in vectors() {
            let start = u64::from(v.nonce) - 1000;
            let job = Sha256dJob::new(v.header, None, start..start + 3000, 0).unwrap();
            let mut hits = Vec::new();
            job.kernel_with(imp).scan(0..job.keyspace(), &mut hits);
            assert_eq!(hits, vec![1000], "{} on block {}", imp.name(), v.height);
            assert_eq!(job.kernel_with(imp).implementation(), imp.label());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_implementation_agrees_with_the_reference(
        header in proptest::collection::vec(any::<u8>(), 80),
        zero_bits in 4u32..12,
        start in 0u64..(1 << 32) - 2000,
        len in 1u64..1500,
        mask_bits in any::<u32>(),
        mut target_tail in proptest::array::uniform32(any::<u8>()),
    ) {
        // A target with `zero_bits` leading zero bits: solutions are common enough to
        // compare, including ties on the top 32 bits.
        target_tail[0] = 0;
        let mut t = [0xffu8; 32];
        t[..].copy_from_slice(&target_tail);
        let top = u32::MAX >> zero_bits;
        t[..4].copy_from_slice(&top.to_be_bytes());
        let header = BlockHeader::from_bytes(&header).unwrap();
        // At most two rolled version bits keep the keyspace small.
        let mask = (mask_bits & BIP320_MASK) & 0x0000_6000;
        let job = Sha256dJob::new(header, Some(Target(t)), start..start + len, mask).unwrap();
        let expected = reference(&job);
        for imp in Sha256dImpl::available() {
            let mut hits = Vec::new();
            job.kernel_with(imp).scan(0..job.keyspace(), &mut hits);
            prop_assert_eq!(&hits, &expected, "{}", imp.name());
        }
    }
}

#[test]
fn the_worker_selftest_passes_for_every_implementation() {
    let outcomes = picluster_worker::selftest::run();
    assert_eq!(outcomes.len(), Sha256dImpl::available().len());
    for (imp, result) in outcomes {
        assert_eq!(result, Ok(()), "{}", imp.name());
    }
}
