//! The `picluster-worker` command line, as a library function so that a program can
//! build its own worker binary with custom kernels registered ([`main`]).
//!
//! `picluster-worker --bundle FILE [--threads N] [--impl NAME]`: join a cluster and
//! work until stopped; SIGTERM or Ctrl-C hands unfinished work back before exiting.
//! `picluster-worker --join TOKEN --name NAME --state-dir DIR`: enroll with a join
//! token first, keeping the credential in DIR; later starts need only
//! `--state-dir DIR`.
//! `picluster-worker bench` measures the kernel implementations on this CPU and
//! `picluster-worker selftest` checks them against the reference.

use crate::compute::Compute;
use crate::{Registry, WorkerOptions};
use clap::{Parser, Subcommand};
use picluster_core::kernel::sha256d::Sha256dImpl;
use picluster_core::runtime::{background_runtime, shutdown_signal};
use picluster_core::trust::Bundle;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Join a picluster cluster and compute until stopped.
#[derive(Parser, Debug)]
#[command(
    name = "picluster-worker",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "\
Examples:
  picluster-worker --join TOKEN --name pi-3 --state-dir /var/lib/picluster-worker   (once)
  picluster-worker --state-dir /var/lib/picluster-worker                           (every start after)
  picluster-worker --bundle pi-3.bundle --threads 3
  picluster-worker bench --seconds 2
  picluster-worker selftest

Environment:
  PICLUSTER_BUNDLE, PICLUSTER_STATE_DIR, PICLUSTER_JOIN   instead of the options
  RUST_LOG   log filter (e.g. debug); overrides -v and -q"
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Worker bundle made by `picluster add-worker`.
    #[arg(long, env = "PICLUSTER_BUNDLE", conflicts_with = "state_dir")]
    bundle: Option<PathBuf>,
    /// Directory keeping this worker's credential (made by `--join`; mode 0700).
    #[arg(long, env = "PICLUSTER_STATE_DIR", value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Enroll with a join token from `picluster token create` (once; needs
    /// `--name`, and `--state-dir` or `state_dir` in the configuration file).
    #[arg(
        long,
        env = "PICLUSTER_JOIN",
        value_name = "TOKEN",
        conflicts_with = "bundle"
    )]
    join: Option<String>,
    /// The name to enroll as (with `--join`), e.g. pi-3.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Compute threads (default: every core).
    #[arg(long, env = "PICLUSTER_THREADS", value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: Option<u32>,
    /// Kernel implementation to use instead of the fastest (see `bench`).
    #[arg(long = "impl", env = "PICLUSTER_IMPL", value_name = "NAME")]
    implementation: Option<String>,
    /// Configuration file (TOML; default /etc/picluster/worker.toml when it exists).
    /// Options and PICLUSTER_* variables win over it.
    #[arg(long, env = "PICLUSTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Serve this worker's metrics for Prometheus at http://ADDRESS:PORT/metrics
    /// (benchmark, threads, indices computed, CPU temperature, reconnections).
    #[arg(long, value_name = "ADDRESS:PORT", env = "PICLUSTER_METRICS")]
    metrics: Option<std::net::SocketAddr>,
    /// Run one thread fewer each time the CPU is at or above this temperature (°C),
    /// one more again once it is 5 °C below, and tell the coordinator; e.g. 75 on a
    /// Pi without a fan (its firmware throttles at 80).
    #[arg(long, env = "PICLUSTER_MAX_TEMP", value_name = "CELSIUS", value_parser = parse_celsius)]
    max_temp: Option<f64>,
    /// Where the CPU's thermal zones are [default: /sys/class/thermal].
    #[arg(long, env = "PICLUSTER_THERMAL_DIR", value_name = "DIR")]
    thermal_dir: Option<PathBuf>,
    /// More log output on stderr, a level per -v (error, warn, info, debug, trace;
    /// it starts at info, as `picluster coordinator` does). RUST_LOG, when set,
    /// decides instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less log output on stderr, a level per -q (-q: warnings, -qq: errors only).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    quiet: u8,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Measure the SHA-256d implementations this CPU can run.
    Bench {
        /// Compute threads (default: every core).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=4096))]
        threads: Option<u32>,
        /// Seconds per implementation.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Measure only this implementation.
        #[arg(long = "impl", value_name = "NAME")]
        implementation: Option<String>,
        /// The last line of stdout is one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Check every implementation this CPU can run against the reference.
    Selftest {
        /// The last line of stdout is one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions to stdout.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (picluster-worker.1 and one per command) into a directory.
    Manpages {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
}

/// Runs the worker command line (arguments from the process) with the built-in
/// kernels and those in `kernels`; returns the process exit code.
pub fn main(kernels: Registry) -> ExitCode {
    main_from(kernels, std::env::args_os())
}

/// Like [`main`], with the arguments given (the first is the program name).
pub fn main_from<I, T>(kernels: Registry, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args = Args::parse_from(args);
    let level = ["error", "warn", "info", "debug", "trace"][(2 + usize::from(args.verbose))
        .saturating_sub(usize::from(args.quiet))
        .min(4)];
    // A standard error that goes away loses the logs, not the worker.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(|| picluster_core::runtime::LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let stdout = std::io::stdout();
    exit_code(run(args, kernels, &mut stdout.lock()))
}

/// Runs the command line (arguments as given, the first the program name) with its
/// output to `out`, and returns the exit status as the binary would: output cut off
/// by its reader (`picluster-worker bench | head -1`) ends it quietly with status 141,
/// as a Unix tool killed by SIGPIPE does; any other error is one line on stderr.
pub fn main_with_output<I, T>(kernels: Registry, args: I, out: &mut dyn Write) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    exit_code(run(Args::parse_from(args), kernels, out))
}

/// Input that cannot be used (a configuration file, an implementation's name): exit
/// code 2, as `picluster` and clap give for invalid input; 1 is a runtime failure.
#[derive(Debug)]
struct InvalidInput(anyhow::Error);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for InvalidInput {}

/// Exit code for invalid input.
const EXIT_INVALID_INPUT: u8 = 2;

fn exit_code(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if e.downcast_ref::<InvalidInput>().is_some() => {
            picluster_core::runtime::eprint_lossy(&format!("picluster-worker: {e}"));
            ExitCode::from(EXIT_INVALID_INPUT)
        }
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::from(picluster_core::runtime::EXIT_BROKEN_PIPE)
        }
        Err(e) => {
            // Our error messages already name their cause: one line, no chain.
            picluster_core::runtime::eprint_lossy(&format!("picluster-worker: {e}"));
            ExitCode::FAILURE
        }
    }
}

fn threads(requested: Option<u32>) -> usize {
    requested.map_or_else(|| WorkerOptions::default().threads, |n| n as usize)
}

fn run(args: Args, kernels: Registry, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Bench {
            threads: n,
            seconds,
            implementation,
            json,
        }) => bench(threads(n), seconds, implementation.as_deref(), json, out),
        Some(Command::Selftest { json }) => selftest(json, out),
        Some(Command::Completions { shell }) => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Args::command(), "picluster-worker", out);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Manpages { dir }) => {
            use clap::CommandFactory;
            let written = picluster_core::runtime::write_manpages(Args::command(), &dir)?;
            writeln!(out, "wrote {written} man pages into {}", dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        None => {
            let args = with_config(args).map_err(InvalidInput)?;
            if let Some(name) = &args.implementation {
                Sha256dImpl::from_name(name)
                    .map_err(|e| InvalidInput(e.into()))?
                    .select()?;
            }
            let runtime = background_runtime()
                .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
            let (bundle, file) = runtime.block_on(credential(&args))?;
            let options = WorkerOptions {
                threads: threads(args.threads),
                kernels,
                credential_file: Some(file),
                metrics: args.metrics,
                max_temp: args.max_temp,
                thermal_dir: args
                    .thermal_dir
                    .clone()
                    .unwrap_or_else(|| crate::thermal::SYSTEM_THERMAL_DIR.into()),
                ..WorkerOptions::default()
            };
            runtime.block_on(crate::run(bundle, options, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Fills what the command line and environment left unset from the configuration
/// file (`--config`, or /etc/picluster/worker.toml when it exists).
fn with_config(mut args: Args) -> anyhow::Result<Args> {
    use crate::config::{find_config, WorkerConfig, DEFAULT_WORKER_CONFIG};
    let (file, path) = find_config::<WorkerConfig>(args.config.as_deref(), DEFAULT_WORKER_CONFIG)?;
    let Some(path) = path else {
        return Ok(args);
    };
    let named = |key: &str| format!("{}: {key}", path.display());
    if args.bundle.is_none() && args.state_dir.is_none() {
        if file.bundle.is_some() && file.state_dir.is_some() {
            anyhow::bail!("{}: give bundle or state_dir, not both", path.display());
        }
        args.bundle = file.bundle;
        args.state_dir = file.state_dir;
    }
    if let Some(threads) = file.threads {
        if !(1..=4096).contains(&threads) {
            anyhow::bail!("{}: {threads} is not 1-4096", named("threads"));
        }
    }
    if let Some(max) = file.max_temp {
        parse_celsius(&max.to_string())
            .map_err(|e| anyhow::anyhow!("{}: {e}", named("max_temp")))?;
    }
    args.threads = args.threads.or(file.threads);
    args.implementation = args.implementation.or(file.implementation);
    args.metrics = args.metrics.or(file.metrics);
    args.max_temp = args.max_temp.or(file.max_temp);
    args.thermal_dir = args.thermal_dir.or(file.thermal_dir);
    Ok(args)
}

/// `--max-temp`: degrees Celsius a CPU can reach.
fn parse_celsius(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a temperature in °C (e.g. 75)"))?;
    if !(30.0..=110.0).contains(&value) {
        return Err(format!(
            "{value} °C is outside 30-110: give the CPU temperature to stay below, e.g. 75"
        ));
    }
    Ok(value)
}

/// The worker's bundle and its file: `--bundle`, or the one in `--state-dir`
/// (joining first with `--join` if the directory holds none).
async fn credential(args: &Args) -> anyhow::Result<(Bundle, PathBuf)> {
    use crate::enroll;
    if let Some(path) = &args.bundle {
        return Ok((Bundle::load(path)?, path.clone()));
    }
    let Some(dir) = &args.state_dir else {
        if args.join.is_some() {
            anyhow::bail!(
                "--join needs a directory to keep the credential in: pass --state-dir DIR, or set state_dir in the configuration file ({})",
                crate::config::DEFAULT_WORKER_CONFIG
            );
        }
        anyhow::bail!(
            "no credential: pass --bundle FILE (from `picluster add-worker`), or --join TOKEN --name NAME --state-dir DIR (token from `picluster token create`)"
        );
    };
    let file = enroll::state_bundle(dir);
    if let Some(bundle) = enroll::load_state(dir)? {
        if let Some(name) = args.name.as_ref().filter(|n| **n != bundle.name) {
            anyhow::bail!(
                "{} holds the credential of worker {}, not {name}: give {name} its own --state-dir (each worker keeps its own), or leave --name out to run as {}",
                dir.display(),
                bundle.name,
                bundle.name
            );
        }
        if args.join.is_some() {
            tracing::info!(name = %bundle.name, file = %file.display(), "already joined: --join ignored");
        }
        return Ok((bundle, file));
    }
    let Some(token) = &args.join else {
        anyhow::bail!(
            "{} holds no credential: join first with --join TOKEN --name NAME (token from `picluster token create` on the coordinator)",
            dir.display()
        );
    };
    let Some(name) = &args.name else {
        anyhow::bail!("--join needs --name NAME: the name this worker enrolls as, e.g. pi-3");
    };
    let token: picluster_core::token::JoinToken = token.parse()?;
    let bundle = enroll::join(&token, name, dir).await?;
    Ok((bundle, file))
}

fn bench(
    threads: usize,
    seconds: f64,
    only: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    if !(seconds > 0.0 && seconds <= 3600.0) {
        anyhow::bail!("--seconds must be between 0 and 3600");
    }
    let chosen = match only {
        Some(name) => Sha256dImpl::from_name(name)?,
        None => Sha256dImpl::selected(),
    };
    let measured = match only {
        Some(_) => vec![chosen],
        None => Sha256dImpl::available(),
    };
    let compute = Compute::start(threads, |_| {})?;
    let mut chosen_rate = 0.0;
    for imp in measured {
        imp.select()?;
        let mhs = compute.benchmark(Duration::from_secs_f64(seconds)) as f64 / 1e6;
        writeln!(
            out,
            "{:<10} {:<12} {mhs:>9.2} MH/s on {threads} thread{}",
            imp.name(),
            imp.label(),
            if threads == 1 { "" } else { "s" }
        )?;
        if imp == chosen {
            chosen_rate = mhs;
        }
    }
    chosen.select()?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::json!({"kernel": "sha256d", "impl": chosen.name(), "threads": threads, "mhs": chosen_rate})
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn selftest(json: bool, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let outcomes = crate::selftest::run();
    let ok = outcomes.iter().all(|(_, r)| r.is_ok());
    for (imp, result) in &outcomes {
        match result {
            Ok(()) => writeln!(out, "{:<10} {:<12} ok", imp.name(), imp.label())?,
            Err(e) => writeln!(out, "{:<10} {:<12} FAILED: {e}", imp.name(), imp.label())?,
        }
    }
    if json {
        let impls: Vec<_> = outcomes
            .iter()
            .map(|(imp, r)| serde_json::json!({"impl": imp.name(), "ok": r.is_ok()}))
            .collect();
        writeln!(out, "{}", serde_json::json!({"ok": ok, "impls": impls}))?;
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
