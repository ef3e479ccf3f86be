//! Tells the crate the optimisation level it is built at, so that a worker built
//! without optimisation (a dependent crate's plain debug build) can say so once: its
//! kernels then run about a hundred times slower.

fn main() {
    let level = std::env::var("OPT_LEVEL").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=PICLUSTER_CORE_OPT_LEVEL={level}");
    println!("cargo:rerun-if-env-changed=OPT_LEVEL");
}
