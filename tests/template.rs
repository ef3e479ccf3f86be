//! Block template jobs (what a Stratum pool hands out): a real block rebuilt from its
//! coinbase split as a pool splits it, the merkle root against an independent merkle
//! tree, every SHA-256d implementation's scan across extranonce2 and version
//! boundaries against a per-header reference written here with the `sha2` crate,
//! and a template job over real QUIC whose solutions stream to its watcher.

use picluster_client::{
    JobEvent, JobKind, JobSpec, JobState, LocalCluster, LocalClusterOptions, SearchMode,
};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_core::kernel::sha256d::{Sha256dImpl, Target, KNOWN_BLOCKS};
use picluster_core::kernel::template::{TemplateError, TemplateJob, TemplateParts};
use picluster_core::kernel::{SearchKernel, SolutionDetail};
use picluster_worker::WorkerOptions;
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::time::Duration;

pub(crate) fn dsha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// Block 1's coinbase transaction.
const BLOCK_1_COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704ffff001d0104ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000";

/// Block 1 as a pool would hand it out: its coinbase split around the scriptSig's
/// `ffff001d` (extranonce1) and `01` (a one-byte extranonce2 of value 1).
fn block_1() -> (TemplateParts, [u8; 80]) {
    let header: [u8; 80] = hex::decode(KNOWN_BLOCKS[1].1).unwrap().try_into().unwrap();
    let tx = hex::decode(BLOCK_1_COINBASE).unwrap();
    // ... ffffffff 07 04 | ffff001d | 01 | 04 ffffffff 01 00f2052a ...
    let at = 4 + 1 + 36 + 2;
    let parts = TemplateParts {
        version: 1,
        prevhash: header[4..36].try_into().unwrap(),
        coinbase1: tx[..at].to_vec(),
        extranonce1: tx[at..at + 4].to_vec(),
        extranonce2_size: 1,
        coinbase2: tx[at + 5..].to_vec(),
        merkle_branch: Vec::new(),
        ntime: u32::from_le_bytes(header[68..72].try_into().unwrap()),
        bits: u32::from_le_bytes(header[72..76].try_into().unwrap()),
    };
    assert_eq!(tx[at + 4], 1);
    (parts, header)
}

fn block_target(bits: u32) -> Target {
    Target::from_compact(bits).unwrap()
}

#[test]
fn block_1_is_rebuilt_from_its_coinbase_as_a_pool_splits_it() {
    let (parts, header) = block_1();
    let job = TemplateJob::new(parts.clone(), 0..256, 0, block_target(parts.bits)).unwrap();
    assert_eq!(job.coinbase(1), hex::decode(BLOCK_1_COINBASE).unwrap());
    let nonce = KNOWN_BLOCKS[1].0;
    assert_eq!(job.header(1).with(1, nonce).0, header);
    // Index: extranonce2 1, then the nonce (one version: blocks of 2^20 in order).
    let index = (1u64 << 32) + u64::from(nonce);
    assert_eq!(job.locate(index), (1, 1, nonce));
    let kernel = job.kernel();
    let solution = kernel.verify(index).unwrap();
    let mut hash = dsha(&header);
    hash.reverse();
    assert_eq!(solution.hash, hash);
    assert_eq!(
        solution.detail,
        SolutionDetail::Template {
            extranonce2: vec![1],
            ntime: parts.ntime,
            version: 1,
            nonce,
            block: true,
        }
    );
    assert_eq!(kernel.verify(index + 1), None);
    assert_eq!(kernel.verify(u64::from(nonce)), None, "extranonce2 0");
    for imp in Sha256dImpl::available() {
        let mut hits = Vec::new();
        job.kernel_with(imp)
            .scan(index - 5000..index + 5000, &mut hits);
        assert_eq!(hits, vec![index], "{}", imp.label());
    }
}

/// A merkle tree built level by level (the last node paired with itself), and the
/// branch of its first leaf.
pub(crate) fn merkle_tree(leaves: &[[u8; 32]]) -> ([u8; 32], Vec<[u8; 32]>) {
    let mut level = leaves.to_vec();
    let mut branch = Vec::new();
    while level.len() > 1 {
        branch.push(level[1]);
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        level = level
            .chunks(2)
            .map(|p| dsha(&[p[0], p[1]].concat()))
            .collect();
    }
    (level[0], branch)
}

fn parts_with_branch(txs: usize) -> (TemplateParts, Vec<[u8; 32]>) {
    let others: Vec<[u8; 32]> = (1..txs as u8).map(|k| dsha(&[k; 40])).collect();
    let parts = TemplateParts {
        version: 0x2000_0000,
        prevhash: dsha(b"previous"),
        coinbase1: b"coinbase one: version, input, height".to_vec(),
        extranonce1: vec![0xf0, 0x0d, 0xca, 0xfe],
        extranonce2_size: 4,
        coinbase2: b"coinbase two: outputs, locktime".to_vec(),
        merkle_branch: Vec::new(),
        ntime: 1_700_000_000,
        bits: 0x207f_ffff,
    };
    (parts, others)
}

#[test]
fn the_merkle_root_is_an_independent_merkle_trees_root() {
    for txs in [1, 2, 3, 5, 8, 13] {
        let (mut parts, others) = parts_with_branch(txs);
        let value = 0x0102_0304u64;
        let coinbase = [
            &parts.coinbase1[..],
            &parts.extranonce1,
            &value.to_le_bytes()[..4],
            &parts.coinbase2,
        ]
        .concat();
        let leaves: Vec<[u8; 32]> = std::iter::once(dsha(&coinbase)).chain(others).collect();
        let (root, branch) = merkle_tree(&leaves);
        parts.merkle_branch = branch;
        let job = TemplateJob::new(parts, 0..1 << 31, 0, Target([0xff; 32])).unwrap();
        assert_eq!(job.coinbase(value), coinbase);
        assert_eq!(job.merkle_root(value), root, "{txs} transactions");
    }
}

/// Every header of `job` in `range` whose hash meets `target`, built from the parts
/// here with `sha2`, one at a time.
fn reference(
    parts: &TemplateParts,
    extranonce2_start: u64,
    mask: u32,
    target: &Target,
    range: std::ops::Range<u64>,
) -> Vec<u64> {
    let versions = 1u64 << mask.count_ones();
    let per = versions << 32;
    let bits: Vec<u32> = (0..32).filter(|b| mask >> b & 1 == 1).collect();
    range
        .filter(|&i| {
            // Nonces in blocks of 2^20, each through every version before the next.
            let value = extranonce2_start + i / per;
            let block = (i % per) >> 20;
            let (hi, slot) = (block / versions, block % versions);
            let nonce = ((hi << 20) + (i % per) % (1 << 20)) as u32;
            let mut rolled = 0u32;
            for (k, b) in bits.iter().enumerate() {
                if slot >> k & 1 == 1 {
                    rolled |= 1 << b;
                }
            }
            let coinbase = [
                &parts.coinbase1[..],
                &parts.extranonce1,
                &value.to_le_bytes()[..usize::from(parts.extranonce2_size)],
                &parts.coinbase2,
            ]
            .concat();
            let mut root = dsha(&coinbase);
            for b in &parts.merkle_branch {
                root = dsha(&[root, *b].concat());
            }
            let header = [
                &(parts.version ^ rolled).to_le_bytes()[..],
                &parts.prevhash,
                &root,
                &parts.ntime.to_le_bytes(),
                &parts.bits.to_le_bytes(),
                &nonce.to_le_bytes(),
            ]
            .concat();
            target.is_met_by(&dsha(&header))
        })
        .collect()
}

#[test]
fn every_implementation_scans_across_extranonce2_and_version_boundaries_as_the_reference() {
    let (mut parts, others) = parts_with_branch(6);
    let leaves: Vec<[u8; 32]> = std::iter::once([0; 32]).chain(others).collect();
    parts.merkle_branch = merkle_tree(&leaves).1;
    let mask = 0x0000_6000;
    // One header in 256.
    let mut target = [0xff; 32];
    target[0] = 0;
    let target = Target(target);
    let job = TemplateJob::new(parts.clone(), 5..7, mask, target).unwrap();
    let per = 4u64 << 32;
    assert_eq!(job.keyspace(), 2 * per);
    let ranges = [
        0..3000,
        (1 << 20) - 2000..(1 << 20) + 2000, // version slot 0 to 1
        (4 << 20) - 2000..(4 << 20) + 2000, // the last version of nonce block 0 to block 1
        per - 3000..per + 3000,             // extranonce2 5 to 6
        2 * per - 1500..2 * per,            // the end
    ];
    for range in ranges {
        let expected = reference(&parts, 5, mask, &target, range.clone());
        assert!(!expected.is_empty());
        for imp in Sha256dImpl::available() {
            let kernel = job.kernel_with(imp);
            let mut hits = Vec::new();
            kernel.scan(range.clone(), &mut hits);
            assert_eq!(hits, expected, "{} over {range:?}", imp.label());
            for &i in &expected {
                assert!(kernel.verify(i).is_some());
            }
        }
        // With shares at 4 leading zero bits, solutions are among the hits.
        let shares = job.kernel().with_shares(4).unwrap();
        let mut hits = Vec::new();
        shares.scan(range.clone(), &mut hits);
        assert!(expected.iter().all(|i| hits.contains(i)));
        assert!(hits.len() > expected.len() * 4, "{range:?}");
    }
}

#[test]
fn bad_templates_are_refused_naming_the_problem() {
    let (parts, _) = parts_with_branch(1);
    let easy = Target([0xff; 32]);
    let err = |p: TemplateParts, r: std::ops::Range<u64>, mask: u32| {
        TemplateJob::new(p, r, mask, easy).unwrap_err()
    };
    let mut p = parts.clone();
    p.extranonce2_size = 0;
    assert_eq!(err(p, 0..1, 0), TemplateError::Extranonce2Size(0));
    let mut p = parts.clone();
    p.extranonce2_size = 2;
    assert_eq!(
        err(p, 0..65537, 0).to_string(),
        "extranonce2 range 0+65537 is invalid: it must be non-empty and fit in 2 bytes"
    );
    assert_eq!(
        err(parts.clone(), 3..3, 0).to_string(),
        "extranonce2 range 3+0 is invalid: it must be non-empty and fit in 4 bytes"
    );
    assert_eq!(
        err(parts.clone(), 0..1 << 17, 0x1fff_e000).to_string(),
        "131072 extranonce2 values with 65536 versions each are more than 2^64 headers"
    );
    assert_eq!(
        err(parts.clone(), 0..1, 0x8000_0000).to_string(),
        "version mask 0x80000000 has bits outside BIP 320's 0x1fffe000"
    );
    let mut p = parts;
    p.merkle_branch = vec![[0; 32]; 33];
    assert_eq!(
        format!("{:?}", err(p, 0..1, 0)),
        "the merkle branch is 33 long, more than the 32 accepted"
    );
}

/// A cluster in this process: two workers of one thread each.
pub(crate) async fn two_workers(coordinator: CoordinatorConfig) -> LocalCluster {
    LocalCluster::start_with(LocalClusterOptions {
        workers: 2,
        worker: WorkerOptions {
            threads: 1,
            benchmark: Duration::from_millis(20),
            ..WorkerOptions::default()
        },
        coordinator,
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_job_streams_each_verified_solution_to_its_watcher_once() {
    let cluster = two_workers(CoordinatorConfig {
        max_chunk: 1 << 20,
        ..CoordinatorConfig::default()
    })
    .await;
    let client = cluster.client().await.unwrap();
    let (mut parts, others) = parts_with_branch(4);
    parts.merkle_branch =
        merkle_tree(&std::iter::once([0; 32]).chain(others).collect::<Vec<_>>()).1;
    // One header in 2^16: a share a few milliseconds apart.
    let mut target = [0xff; 32];
    target[0] = 0;
    target[1] = 0;
    let target = Target(target);
    let job = TemplateJob::new(parts.clone(), 0..(1 << 16) - 1, 0x1fff_e000, target).unwrap();
    let spec = JobSpec {
        kind: JobKind::Template(Box::new(job.clone())),
        mode: SearchMode::All,
    };
    let id = client.submit_with_priority(&spec, -1).await.unwrap();
    let mut watch = client.watch(id).await.unwrap();
    let mut streamed = Vec::new();
    while streamed.len() < 40 {
        match tokio::time::timeout(Duration::from_secs(60), watch.next())
            .await
            .unwrap()
        {
            Some(JobEvent::Solutions(batch)) => streamed.extend(batch),
            Some(_) => {}
            None => panic!("the watch ended"),
        }
    }
    client.cancel(id).await.unwrap();
    let report = loop {
        match watch.next().await {
            Some(JobEvent::Solutions(batch)) => streamed.extend(batch),
            Some(JobEvent::Finished(report)) => break report,
            Some(_) => {}
            None => panic!("no report"),
        }
    };
    assert_eq!(report.state, JobState::Cancelled);
    // Each once, each the same as in the report, each a true share by the reference.
    let indices: BTreeSet<u64> = streamed.iter().map(|s| s.index).collect();
    assert_eq!(indices.len(), streamed.len(), "a solution streamed twice");
    let reported: BTreeSet<u64> = report.solutions.iter().map(|s| s.index).collect();
    assert_eq!(indices, reported);
    for s in &streamed {
        assert_eq!(
            reference(&parts, 0, 0x1fff_e000, &target, s.index..s.index + 1),
            vec![s.index]
        );
        let SolutionDetail::Template { extranonce2, .. } = &s.detail else {
            panic!("{s:?}");
        };
        assert_eq!(extranonce2.len(), 4);
    }
    // A watcher that comes later gets those kept so far, first.
    let mut late = client.watch(id).await.unwrap();
    let mut again = Vec::new();
    while let Some(event) = late.next().await {
        if let JobEvent::Solutions(batch) = event {
            again.extend(batch.into_iter().map(|s| s.index));
        }
    }
    assert_eq!(again.into_iter().collect::<BTreeSet<_>>(), reported);
}
