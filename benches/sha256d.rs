//! SHA-256d hash rate on this machine: a naive loop over the `sha2` crate (two full
//! digests of the 80-byte header per nonce), every kernel implementation this CPU can
//! run on one thread, with its ratio to the plain `sha2` midstate loop (the `sha2`
//! implementation), and the worker's compute engine on every core with the fastest.
//! Prints one line per measurement and a final JSON line.
//!
//! `cargo bench --bench sha256d` (set PICLUSTER_BENCH_SECONDS to change the 3 s per
//! measurement). With PICLUSTER_BENCH_IMPL=NAME it measures only that implementation
//! on one thread and prints one JSON line (what benches/peers.sh runs, alternating
//! with the peers' kernels). With PICLUSTER_BENCH_PREIMAGE=sha256 (or sha256d) it
//! measures the preimage kernel instead: the mask `?l?l?l?l?d?d?d` (457 M candidates)
//! against three targets and a decoy, in million candidates per second, on one thread
//! and with the worker's engine on every core. With PICLUSTER_BENCH_HASHCASH=1 it
//! measures the hashcash kernel the same way (40 bytes of data, so one compression
//! per counter after the midstate), in million counters per second. Both take
//! PICLUSTER_BENCH_IMPL=NAME to run on that implementation's instructions. With
//! PICLUSTER_BENCH_TEMPLATE=1 it measures a block template job (a pool's job: a
//! coinbase of 200 bytes, a merkle branch of 12, version rolling) against the plain
//! header job with the same implementation, three alternating runs each, on one
//! thread and with the engine on every core.

use picluster_core::kernel::hashcash::HashcashJob;
use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
use picluster_core::kernel::sha256d::{sha256d, BlockHeader, Sha256dImpl, Sha256dJob, Target};
use picluster_core::kernel::SearchKernel;
use picluster_worker::compute::{Compute, ComputeEvent, TaskId, Work};
use std::hint::black_box;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

/// Runs `f` on batches until `seconds` pass; returns hashes per second.
fn rate(seconds: f64, batch: u64, mut f: impl FnMut(u64)) -> f64 {
    let started = Instant::now();
    let mut done = 0u64;
    while started.elapsed().as_secs_f64() < seconds {
        f(done);
        done += batch;
    }
    done as f64 / started.elapsed().as_secs_f64()
}

/// The worker's compute engine on `threads` threads over `0..range` of `kernel`:
/// indices per second.
fn engine_rate(kernel: Arc<dyn SearchKernel>, range: u64, threads: usize) -> f64 {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let compute = Compute::start(threads, move |e| {
        let _ = tx.lock().map(|tx| tx.send(e));
    })
    .expect("engine starts");
    let started = Instant::now();
    compute.run(
        TaskId(1),
        Work::Search(kernel),
        0..range,
        Duration::from_secs(1),
    );
    let end = loop {
        if let Ok(ComputeEvent::Finished { position, .. }) = rx.recv() {
            break position;
        }
    };
    end as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let seconds: f64 = std::env::var("PICLUSTER_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let header = BlockHeader::from_hex(GENESIS).expect("valid header");
    // A target no nonce meets, so every implementation does the full work.
    let mut t = [0u8; 32];
    t[31] = 1;
    let target = Target(t);
    let job = Sha256dJob::new(header, Some(target), 0..1 << 32, 0).expect("valid job");

    let implementation = std::env::var("PICLUSTER_BENCH_IMPL")
        .ok()
        .filter(|name| !name.is_empty());
    let other_kernel = std::env::var_os("PICLUSTER_BENCH_PREIMAGE").is_some()
        || std::env::var_os("PICLUSTER_BENCH_HASHCASH").is_some();
    if let (Some(name), true) = (&implementation, other_kernel) {
        Sha256dImpl::from_name(name)
            .and_then(|imp| imp.select())
            .unwrap_or_else(|e| panic!("{e}"));
    }
    if std::env::var_os("PICLUSTER_BENCH_HASHCASH").is_some() {
        let data: Vec<u8> = (0..40u8).collect();
        let kernel = HashcashJob::new(&data, 64, 0..1 << 60)
            .expect("valid job")
            .kernel();
        let mut hits = Vec::new();
        let rate = rate(seconds, 1 << 16, |base| {
            kernel.scan(base..base + (1 << 16), &mut hits);
        });
        let range = (rate * threads as f64 * seconds) as u64;
        let engine = engine_rate(Arc::new(kernel.clone()), range, threads);
        println!(
            "{{\"bench\": \"hashcash\", \"impl\": \"{}\", \"mcps_per_thread\": {:.3}, \"threads\": {threads}, \"engine_mcps\": {:.3}}}",
            kernel.implementation(),
            rate / 1e6,
            engine / 1e6
        );
        return;
    }
    if let Ok(name) = std::env::var("PICLUSTER_BENCH_PREIMAGE") {
        let hash = match name.as_str() {
            "sha256" => PreimageHash::Sha256,
            "sha256d" => PreimageHash::Sha256d,
            other => panic!("PICLUSTER_BENCH_PREIMAGE={other}: give sha256 or sha256d"),
        };
        let mask = Mask::parse("?l?l?l?l?d?d?d", &[None; 4]).expect("valid mask");
        let probe = PreimageJob::new(mask.clone(), hash, &[[0; 32]], None).expect("valid job");
        let targets: Vec<[u8; 32]> = [b"pass123".as_slice(), b"zzzz999", b"mine042"]
            .iter()
            .map(|c| probe.digest(c))
            .chain([[0x5a; 32]])
            .collect();
        let kernel = PreimageJob::new(mask, hash, &targets, None)
            .expect("valid job")
            .kernel();
        let mut hits = Vec::new();
        let wrap = kernel.keyspace() - (1 << 16);
        let rate = rate(seconds, 1 << 16, |base| {
            let start = base % wrap;
            kernel.scan(start..start + (1 << 16), &mut hits);
        });
        let range = ((rate * threads as f64 * seconds) as u64).min(kernel.keyspace());
        let engine = engine_rate(Arc::new(kernel.clone()), range, threads);
        println!(
            "{{\"bench\": \"preimage\", \"hash\": \"{}\", \"impl\": \"{}\", \"mcps_per_thread\": {:.3}, \"threads\": {threads}, \"engine_mcps\": {:.3}}}",
            hash.name(),
            kernel.implementation(),
            rate / 1e6,
            engine / 1e6
        );
        return;
    }
    if std::env::var_os("PICLUSTER_BENCH_TEMPLATE").is_some() {
        let imp = implementation
            .as_deref()
            .map_or(Sha256dImpl::selected(), |name| {
                Sha256dImpl::from_name(name).unwrap_or_else(|e| panic!("{e}"))
            });
        template_against_header(&job, imp, seconds, threads);
        return;
    }
    if let Some(name) = implementation {
        let imp = Sha256dImpl::from_name(&name).unwrap_or_else(|e| panic!("{e}"));
        let kernel = job.kernel_with(imp);
        let mut hits = Vec::new();
        let rate = rate(seconds, 1 << 16, |base| {
            kernel.scan(base..base + (1 << 16), &mut hits);
        });
        println!(
            "{{\"bench\": \"sha256d\", \"impl\": \"{}\", \"label\": \"{}\", \"threads\": 1, \"mhs\": {:.3}}}",
            imp.name(),
            imp.label(),
            rate / 1e6
        );
        return;
    }

    let naive = rate(seconds, 1 << 14, |base| {
        for nonce in base..base + (1 << 14) {
            let h = header.with(1, nonce as u32);
            black_box(target.is_met_by(&sha256d(&h.0)));
        }
    });
    println!("naive sha2 loop, 1 thread:   {:>8.2} MH/s", naive / 1e6);

    let mut rates = Vec::new();
    for imp in Sha256dImpl::available() {
        let kernel = job.kernel_with(imp);
        let mut hits = Vec::new();
        let rate = rate(seconds, 1 << 16, |base| {
            kernel.scan(base..base + (1 << 16), &mut hits);
        });
        rates.push((imp, rate));
    }
    let plain = rates
        .iter()
        .find(|(imp, _)| *imp == Sha256dImpl::Sha2)
        .map_or(1.0, |(_, r)| *r);
    for (imp, rate) in &rates {
        println!(
            "{:<9} ({:<10}), 1 thread: {:>8.2} MH/s, {:.2}x the plain sha2 midstate loop",
            imp.name(),
            imp.label(),
            rate / 1e6,
            rate / plain
        );
    }
    let (best, single) = rates[0];
    let kernel = job.kernel_with(best);
    let engine = engine_rate(
        Arc::new(kernel),
        (single * threads as f64 * seconds) as u64,
        threads,
    );
    println!(
        "compute engine, {} on {threads} threads: {:>8.2} MH/s ({:.2}x one thread)",
        best.name(),
        engine / 1e6,
        engine / single
    );
    let impls: Vec<String> = rates
        .iter()
        .map(|(imp, r)| format!("\"{}\": {:.3}", imp.name(), r / 1e6))
        .collect();
    println!(
        "{{\"bench\": \"sha256d\", \"best\": \"{}\", \"threads\": {threads}, \"naive_mhs\": {:.3}, \"mhs_per_thread\": {{{}}}, \"best_vs_plain_sha2\": {:.3}, \"engine_mhs\": {:.3}, \"scaling\": {:.3}}}",
        best.name(),
        naive / 1e6,
        impls.join(", "),
        single / plain,
        engine / 1e6,
        engine / single
    );
}

/// A block template job against the plain header job `job`, same implementation and
/// target: three alternating runs each, the median of each.
fn template_against_header(job: &Sha256dJob, imp: Sha256dImpl, seconds: f64, threads: usize) {
    use picluster_core::kernel::template::{TemplateJob, TemplateParts};
    let parts = TemplateParts {
        version: 0x2000_0000,
        prevhash: sha256d(b"previous block"),
        coinbase1: vec![0x11; 100],
        extranonce1: vec![0x22; 4],
        extranonce2_size: 8,
        coinbase2: vec![0x33; 90],
        merkle_branch: (0..12u8).map(|k| sha256d(&[k])).collect(),
        ntime: 1_700_000_000,
        bits: 0x1703_a30c,
    };
    let template = TemplateJob::new(parts, 0..1 << 15, 0x1fff_e000, job.target)
        .expect("valid template")
        .kernel_with(imp);
    let header = job.kernel_with(imp);
    let kernels: [(&str, Arc<dyn SearchKernel>); 2] = [
        ("header", Arc::new(header)),
        ("template", Arc::new(template)),
    ];
    let mut single = [Vec::new(), Vec::new()];
    let mut engine = [Vec::new(), Vec::new()];
    for _ in 0..3 {
        for (k, (_, kernel)) in kernels.iter().enumerate() {
            let mut hits = Vec::new();
            let r = rate(seconds, 1 << 16, |base| {
                kernel.scan(base..base + (1 << 16), &mut hits);
            });
            single[k].push(r);
            let range = (r * threads as f64 * seconds) as u64;
            engine[k].push(engine_rate(kernel.clone(), range, threads));
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let [h1, t1] = single.each_mut().map(median);
    let [he, te] = engine.each_mut().map(median);
    println!(
        "{{\"bench\": \"template\", \"impl\": \"{}\", \"header_mhs\": {:.3}, \"template_mhs\": {:.3}, \"ratio\": {:.4}, \"threads\": {threads}, \"engine_header_mhs\": {:.3}, \"engine_template_mhs\": {:.3}, \"engine_ratio\": {:.4}}}",
        imp.name(),
        h1 / 1e6,
        t1 / 1e6,
        t1 / h1,
        he / 1e6,
        te / 1e6,
        te / he
    );
}
