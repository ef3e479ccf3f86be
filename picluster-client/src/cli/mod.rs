//! The `picluster` command line. `main.rs` only calls [`main`]; tests call [`run`]
//! with their own output buffer.
//!
//! Exit codes: 0 success (a job that completed, with or without solutions), 1 an
//! error (or a job that failed), 2 bad usage or invalid input (nothing was sent), 3
//! a job that ended cancelled, 130
//! Ctrl-C while following a job (it keeps running), 141 a closed output pipe.
//!
//! # Layout
//! - this file: the entry points, exit codes and [`CliError`].
//! - `cmd`: each command, by what it works on (cluster, jobs, workers, tokens).
//! - `args`: the clap types of every command and option.
//! - `spec`: input validation, arguments into a job, before anything is sent.
//! - `kernels`: custom kernels a `picluster` built with [`main_with`] knows.
//! - `config`: the coordinator's TOML configuration file.
//! - `output`: each command's output as a typed view (its text and its JSON), the
//!   progress bar.

mod args;
mod cmd;
mod config;
mod kernels;
mod output;
mod spec;

pub use args::Cli;
pub use kernels::Kernels;

use crate::client::ClientError;
use args::Command;
use clap::Parser;
use std::io::Write;
use std::process::ExitCode;

/// Exit code of a job that ended cancelled.
pub const EXIT_CANCELLED: u8 = 3;
/// Exit code when Ctrl-C stops `submit` or `wait` following a job (it keeps
/// running): 128 + SIGINT, as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A failure the command reports as one line and exit code 1 (2 for usage).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// The command line does not parse (clap's message).
    #[error("{0}")]
    Usage(clap::Error),
    /// The user's input is invalid; nothing was sent.
    #[error("{0}")]
    Input(String),
    /// A cluster directory or bundle problem.
    #[error(transparent)]
    Cluster(#[from] picluster_core::trust::ClusterError),
    /// Talking to the coordinator failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The coordinator could not start.
    #[error(transparent)]
    Net(#[from] picluster_core::net::NetError),
    /// The coordinator could not serve (its directory, endpoint or job store).
    #[error(transparent)]
    Serve(#[from] picluster_core::service::ServeError),
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    main_from(std::env::args_os())
}

/// Entry point of a `picluster` built with custom kernels: `wait` prints their jobs'
/// merged results as JSON.
pub fn main_with(kernels: Kernels) -> ExitCode {
    main_from_with(&kernels, std::env::args_os())
}

/// Like [`main`], with the arguments given (the first is the program name).
pub fn main_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    main_from_with(&Kernels::new(), args)
}

/// Like [`main_with`], with the arguments given.
pub fn main_from_with<I, T>(kernels: &Kernels, args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    // Known before parsing, so that a usage error is JSON too.
    let json = args
        .iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => return exit_code_as(Err(CliError::Usage(e)), true),
        Err(e) => e.exit(),
    };
    let levels = ["error", "warn", "info", "debug", "trace"];
    let base = if matches!(
        cli.command,
        Command::Coordinator { .. } | Command::Mine { .. }
    ) {
        2
    } else {
        1
    };
    // One scheme for both programs: a level up per -v, down per -q.
    let level = (base + usize::from(cli.verbose))
        .saturating_sub(usize::from(cli.quiet))
        .min(levels.len() - 1);
    init_logging(levels[level]);
    output::set_quiet(cli.quiet > 0);
    let stdout = std::io::stdout();
    let result = run_with(cli, kernels, &mut stdout.lock());
    exit_code_as(result, json)
}

/// Logs to standard error at `default` level unless `RUST_LOG` says otherwise; a
/// standard error that goes away loses the logs, not the process
/// ([`LossyStderr`](picluster_core::runtime::LossyStderr)).
pub fn init_logging(default: &str) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| default.into()),
        )
        .with_writer(|| picluster_core::runtime::LossyStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The exit status for a command's result; the error, if any, goes to standard error
/// in one line. Output cut off by its reader (`picluster status | head`) ends the
/// command quietly with status 141, as a Unix tool killed by SIGPIPE does.
pub fn exit_code(result: Result<ExitCode, CliError>) -> ExitCode {
    exit_code_as(result, false)
}

/// Like [`exit_code`]; with `json`, an error is also the last line of stdout, as
/// `{"error": TEXT, "kind": KIND, "retryable": BOOL}`.
pub fn exit_code_as(result: Result<ExitCode, CliError>, json: bool) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(CliError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::from(picluster_core::runtime::EXIT_BROKEN_PIPE)
        }
        Err(e) => {
            let text = match &e {
                // clap's message ends with a usage hint over several lines.
                CliError::Usage(u) => u.render().to_string(),
                _ => e.to_string(),
            };
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            if json {
                let view = output::ErrorView {
                    error: first,
                    kind: e.kind(),
                    retryable: e.is_retryable(),
                };
                let _ = output::emit(&mut std::io::stdout(), &view, true);
            }
            match &e {
                CliError::Usage(u) => {
                    picluster_core::runtime::eprint_lossy(u.render().to_string().trim_end())
                }
                _ => picluster_core::runtime::eprint_lossy(&format!("picluster: {e}")),
            }
            ExitCode::from(e.exit_status())
        }
    }
}

impl CliError {
    /// What kind of failure, in one word (the `kind` of a JSON error): `usage`,
    /// `input`, `cluster`, `refused`, `connection`, `version`, `serve`, `output`.
    pub fn kind(&self) -> &'static str {
        if self.is_invalid_input() && !matches!(self, CliError::Usage(_)) {
            return "input";
        }
        match self {
            CliError::Usage(_) => "usage",
            CliError::Input(_) => "input",
            CliError::Cluster(_) => "cluster",
            CliError::Client(ClientError::Refused(_)) => "refused",
            CliError::Client(ClientError::Cluster(_)) => "cluster",
            CliError::Client(ClientError::CoordinatorTooOld { .. }) => "version",
            CliError::Client(ClientError::Kernel(_)) => "input",
            CliError::Client(_) | CliError::Net(_) => "connection",
            CliError::Serve(_) => "serve",
            CliError::Output(_) => "output",
        }
    }

    /// Whether running the command again may succeed (the coordinator was away).
    pub fn is_retryable(&self) -> bool {
        match self {
            CliError::Client(e) => e.is_retryable(),
            CliError::Net(e) => e.is_retryable(),
            _ => false,
        }
    }

    /// The exit status: 2 for a command line or input that is not valid (nothing
    /// was sent), 1 otherwise.
    pub fn exit_status(&self) -> u8 {
        if self.is_invalid_input() {
            2
        } else {
            1
        }
    }

    /// Whether the command line or what it names is not valid (a bad name or
    /// address, a file that would be overwritten, a directory that is not a cluster,
    /// a job the coordinator calls invalid): fixing the command is the remedy.
    fn is_invalid_input(&self) -> bool {
        use picluster_core::trust::ClusterError as C;
        match self {
            CliError::Usage(_) | CliError::Input(_) => true,
            CliError::Cluster(e) | CliError::Client(ClientError::Cluster(e)) => matches!(
                e,
                C::DirectoryNotEmpty(_)
                    | C::FileExists(_)
                    | C::NotACluster(_)
                    | C::BadAddress(_)
                    | C::NoAdvertisedAddress(_)
                    | C::BadName(_)
                    | C::NameIssued { .. }
                    | C::ReservedName(_)
            ),
            CliError::Client(ClientError::Refused(r)) => r.is_invalid_input(),
            _ => false,
        }
    }
}

/// Parses `args` (the first being the program name) and runs the command.
pub fn run_from<I, T>(args: I, out: &mut dyn Write) -> Result<ExitCode, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run(Cli::try_parse_from(args).map_err(CliError::Usage)?, out)
}

/// Runs a parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    run_with(cli, &Kernels::new(), out)
}

/// Like [`run_from`], knowing the custom kernels in `kernels`.
pub fn run_from_with<I, T>(
    args: I,
    kernels: &Kernels,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    run_with(
        Cli::try_parse_from(args).map_err(CliError::Usage)?,
        kernels,
        out,
    )
}

/// Like [`run`], knowing the custom kernels in `kernels`: `wait` prints a custom
/// job of theirs as its merged result, in JSON.
pub fn run_with(cli: Cli, kernels: &Kernels, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    cmd::run(cli, kernels, out)
}
