//! `picluster-worker`: the worker agent with the built-in kernels. See
//! [`picluster_worker::cli`] for the command line, and for building a worker binary
//! with custom kernels.

fn main() -> std::process::ExitCode {
    picluster_worker::cli::main(picluster_worker::Registry::new())
}
