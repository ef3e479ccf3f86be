//! The simulation's 1,000 seeds as one fingerprint: every seed's outcome (reports with
//! their times, steals, adoptions, lost batches) without faults, with faults, and with
//! coordinator crashes. A change that must not alter behaviour (a redesign, a move)
//! leaves every line and the final SHA-256 the same; compare the output before and
//! after.
//!
//! `cargo bench --bench sim_fingerprint > after.txt` (about a minute on two cores);
//! `PICLUSTER_SIM_SEED=N` runs one seed; `PICLUSTER_SIM_FULL=1` prints each outcome
//! whole instead of its hash, to see what a change changed.

use picluster_suite::sim;
use sha2::{Digest, Sha256};

fn main() {
    let full = std::env::var("PICLUSTER_SIM_FULL").is_ok();
    let mut all = Sha256::new();
    for seed in sim::seeds() {
        for (mode, faults, crashes) in [
            ("clean", false, false),
            ("faults", true, false),
            ("crashes", true, true),
        ] {
            let line = sim::fingerprint(seed, faults, crashes);
            let digest = Sha256::digest(line.as_bytes());
            all.update(digest);
            if full {
                println!("{seed} {mode} {line}");
            } else {
                println!("{seed} {mode} {}", picluster_core::hex::encode(&digest));
            }
        }
    }
    println!(
        "{{\"bench\": \"sim_fingerprint\", \"sha256\": \"{}\"}}",
        picluster_core::hex::encode(&all.finalize())
    );
}
