//! Heterogeneous makespan, from the deterministic simulation (`picluster_suite::sim`): the real
//! coordinator and worker agents, workers at 1x, 4x and 30x speed (a Pi 3, a Pi 4, a
//! laptop), jobs of 10 to 60 s at the cluster's total speed. Compares picluster's
//! scheduler with a static equal split and with fixed-size chunks without stealing,
//! and with the default 2 % of finished leases audited (what audits cost a job).
//!
//! `cargo bench --bench makespan`. Prints one line per policy and a final JSON line.

use picluster_suite::sim::{self, Policy};

fn main() {
    let seeds: Vec<u64> = (0..300).collect();
    let mut line = Vec::new();
    for (name, policy) in [
        ("stealing", Policy::Stealing),
        ("static_split", Policy::StaticSplit),
        ("fixed_chunks", Policy::FixedChunks),
    ] {
        let mut ratios: Vec<f64> = seeds
            .iter()
            .map(|s| sim::makespan_ratio(*s, policy))
            .collect();
        ratios.sort_by(f64::total_cmp);
        let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
        let median = ratios[ratios.len() / 2];
        let worst = ratios[ratios.len() - 1];
        println!(
            "{name:<13} makespan / ideal over {} seeds: mean {mean:.4}, median {median:.4}, worst {worst:.4}",
            ratios.len()
        );
        line.push(format!(
            "\"{name}\": {{\"mean\": {mean:.4}, \"median\": {median:.4}, \"worst\": {worst:.4}}}"
        ));
    }
    // The real scheduler with 2 % of finished leases audited (the default): the
    // ideal counts no audit work, so this is what audits cost a job.
    let mut ratios: Vec<f64> = seeds
        .iter()
        .map(|s| sim::audited_makespan_ratio(*s, Policy::Stealing, 0.02))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let mean = ratios.iter().sum::<f64>() / ratios.len() as f64;
    let (median, worst) = (ratios[ratios.len() / 2], ratios[ratios.len() - 1]);
    println!(
        "{:<13} makespan / ideal over {} seeds: mean {mean:.4}, median {median:.4}, worst {worst:.4}",
        "audited_2pct",
        ratios.len()
    );
    line.push(format!(
        "\"audited_2pct\": {{\"mean\": {mean:.4}, \"median\": {median:.4}, \"worst\": {worst:.4}}}"
    ));
    println!(
        "{{\"bench\": \"makespan\", \"seeds\": {}, {}}}",
        seeds.len(),
        line.join(", ")
    );
}
