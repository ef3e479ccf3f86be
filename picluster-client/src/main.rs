//! The `picluster` command: see `picluster --help` and the README.

fn main() -> std::process::ExitCode {
    picluster_client::cli::main()
}
