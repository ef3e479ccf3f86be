//! The deterministic simulation's properties over many seeds (the harness is
//! `picluster_suite::sim`). A failing seed replays exactly:
//! `PICLUSTER_SIM_SEED=N cargo test sim::`.

use picluster_suite::sim::{audited_makespan_ratio, check, makespan_ratio, seeds, Policy};

#[test]
fn heterogeneous_workers_without_faults_finish_within_2_percent_of_ideal() {
    let mut worst = (0.0, 0);
    let mut steals = 0;
    for seed in seeds() {
        let (ratio, stolen) = check(seed, false);
        let ratio = ratio.unwrap();
        if ratio > 1.02 && std::env::var("PICLUSTER_SIM_TRACE").is_ok() {
            eprintln!("over: seed {seed} ratio {ratio:.4}");
        }
        if ratio > worst.0 {
            worst = (ratio, seed);
        }
        steals += stolen;
    }
    if std::env::var("PICLUSTER_SIM_TRACE").is_ok() {
        eprintln!("worst {worst:?}");
    }
    assert!(steals > 0, "the tail is balanced by stealing");
    assert!(
        worst.0 <= 1.02,
        "seed {}: makespan {:.4} x ideal",
        worst.1,
        worst.0
    );
}

#[test]
fn faults_lose_nothing_and_commit_nothing_twice() {
    for seed in seeds() {
        check(seed, true);
    }
}

#[test]
fn stealing_beats_a_static_split_and_fixed_chunks() {
    let (mut fixed_sum, mut split_sum) = (0.0, 0.0);
    for seed in 0..30 {
        let stealing = makespan_ratio(seed, Policy::Stealing);
        let fixed = makespan_ratio(seed, Policy::FixedChunks);
        let split = makespan_ratio(seed, Policy::StaticSplit);
        assert!(stealing <= 1.02, "seed {seed}: {stealing}");
        // Equal-speed workers make a static split ideal too: allow a tie within 0.5 %.
        assert!(
            stealing <= fixed.min(split) + 0.005,
            "seed {seed}: {stealing} vs {fixed}, {split}"
        );
        fixed_sum += fixed;
        split_sum += split;
    }
    assert!(
        fixed_sum / 30.0 > 1.2,
        "fixed chunks: mean {}",
        fixed_sum / 30.0
    );
    assert!(
        split_sum / 30.0 > 2.0,
        "static split: mean {}",
        split_sum / 30.0
    );
}

#[test]
fn coordinator_crashes_lose_no_acknowledged_job_and_commit_nothing_twice() {
    let (mut lost, mut adopted) = (0, 0);
    for seed in seeds() {
        let counts = picluster_suite::sim::check_coordinator_crashes(seed);
        lost += counts.lost_batches;
        adopted += counts.adopted_leases;
    }
    if std::env::var("PICLUSTER_SIM_SEED").is_err() {
        assert!(lost > 0, "some crash lost a batch that was not yet durable");
        assert!(
            adopted > 0,
            "some worker's leases were adopted after a crash"
        );
    }
    eprintln!("{lost} batches lost, {adopted} leases adopted");
}

#[test]
fn audits_of_two_percent_cost_a_few_percent_of_a_job() {
    // The same fault-free scenarios with 2 % of finished leases searched again: the
    // work grows by about 2 %, and the job's end waits for the audits of its last
    // leases (each a chunk of its auditor's, shared by every idle worker).
    let seeds: Vec<u64> = (0..40).collect();
    let (mut plain, mut audited) = (0.0, 0.0);
    for &seed in &seeds {
        let (p, a) = (
            makespan_ratio(seed, Policy::Stealing),
            audited_makespan_ratio(seed, Policy::Stealing, 0.02),
        );
        if std::env::var("PICLUSTER_SIM_TRACE").is_ok() {
            eprintln!("seed {seed}: {p:.4} {a:.4}");
        }
        plain += p;
        audited += a;
    }
    let n = seeds.len() as f64;
    let (plain, audited) = (plain / n, audited / n);
    eprintln!(
        "makespan over ideal, mean of {n} seeds: {plain:.4} without audits, {audited:.4} with 2 %"
    );
    assert!(audited > plain, "audits are work: {audited} vs {plain}");
    assert!(audited < plain + 0.03, "{audited} vs {plain}");
}

#[test]
fn coordinators_sharing_etcd_elect_one_leader_at_a_time_and_commit_every_chunk_once() {
    let (mut elections, mut crashes, mut partitions, mut freezes, mut refused) = (0, 0, 0, 0, 0);
    let mut takeovers = Vec::new();
    for seed in seeds() {
        let out = picluster_suite::sim_election::run_election(seed);
        assert_eq!(out.lost, 0, "seed {seed}: chunks lost: {out:?}");
        assert_eq!(
            out.duplicated, 0,
            "seed {seed}: chunks committed twice: {out:?}"
        );
        assert_eq!(
            out.stale_writes, 0,
            "seed {seed}: a deposed leader's write accepted after its successor's: {out:?}"
        );
        assert_eq!(
            out.overlaps, 0,
            "seed {seed}: two leaders acting at once: {out:?}"
        );
        elections += out.elections;
        crashes += out.crashes;
        partitions += out.partitions;
        freezes += out.freezes;
        refused += out.refused;
        takeovers.extend(out.takeovers_ms);
    }
    takeovers.sort_unstable();
    eprintln!(
        "{elections} elections, {crashes} crashes, {partitions} partitions, {freezes} freezes, {refused} deposed leaders' commits refused; takeover p50 {} ms, max {} ms over {}",
        takeovers.get(takeovers.len() / 2).copied().unwrap_or(0),
        takeovers.last().copied().unwrap_or(0),
        takeovers.len()
    );
    if std::env::var("PICLUSTER_SIM_SEED").is_err() {
        assert!(
            crashes > 500 && partitions > 500 && freezes > 500,
            "faults were injected"
        );
        assert!(refused > 0, "some deposed leader tried to commit");
    }
}
