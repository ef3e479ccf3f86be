//! `picluster-worker --bundle FILE [--threads N]`: join a cluster and work until
//! stopped. SIGTERM or Ctrl-C hands unfinished work back before exiting.

use clap::Parser;
use picluster_core::cluster::Bundle;
use picluster_worker::WorkerOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Join a picluster cluster and compute until stopped.
#[derive(Parser, Debug)]
#[command(name = "picluster-worker", version)]
struct Args {
    /// Worker bundle made by `picluster add-worker`.
    #[arg(long, env = "PICLUSTER_BUNDLE")]
    bundle: PathBuf,
    /// Compute threads (default: every core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: Option<u32>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Our error messages already name their cause: one line, no chain.
            eprintln!("picluster-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let bundle = Bundle::load(&args.bundle)?;
    let mut options = WorkerOptions::default();
    if let Some(threads) = args.threads {
        options.threads = threads as usize;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(picluster_worker::run(bundle, options, shutdown_signal()))?;
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
