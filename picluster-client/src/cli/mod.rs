//! The `picluster` command line. `main.rs` only calls [`main`]; tests call [`run`]
//! with their own output buffer.
//!
//! Exit codes: 0 success (a job that completed, with or without solutions), 1 an
//! error (or a job that failed), 2 bad usage or invalid input (nothing was sent), 3
//! a job that ended cancelled, 130
//! Ctrl-C while following a job (it keeps running), 141 a closed output pipe.
//!
//! # Layout
//! - this file: the entry points, dispatch, and [`CliError`].
//! - `args`: the clap types of every command and option.
//! - `spec`: input validation, arguments into a job, before anything is sent.
//! - `kernels`: custom kernels a `picluster` built with [`main_with`] knows.
//! - `config`: the coordinator's TOML configuration file.
//! - `output`: text and JSON output, the progress bar.

mod args;
mod config;
mod kernels;
mod output;
mod spec;

pub use args::Cli;
pub use kernels::Kernels;

use crate::client::{Client, ClientError};
use args::{ClusterArg, Command, JobSelector, SubmitCommon, SubmitKind, TokenCommand};
use clap::Parser;
use output::{print_cancelled, print_drained, print_forgotten, print_jobs, print_status};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::identity::Role;
use picluster_core::ids::JobId;
use picluster_core::job::JobSpec;
use picluster_core::runtime::{background_runtime, shutdown_signal};
use picluster_core::trust::{ClusterDir, ADMIN_BUNDLE};
use serde_json::json;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
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
    let base = if matches!(cli.command, Command::Coordinator { .. }) {
        2
    } else {
        1
    };
    let level = if cli.quiet {
        0
    } else {
        (base + usize::from(cli.verbose)).min(levels.len() - 1)
    };
    init_logging(levels[level]);
    output::set_quiet(cli.quiet);
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
                let doc = json!({"error": first, "kind": e.kind(), "retryable": e.is_retryable()});
                let _ = writeln!(std::io::stdout(), "{doc}");
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
        use picluster_core::wire::Refusal as R;
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
            CliError::Client(ClientError::Refused(r)) => {
                matches!(r, R::InvalidJob(_) | R::InvalidName(_) | R::InvalidToken(_))
            }
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
    match cli.command {
        Command::Init {
            dir,
            listen,
            advertise,
            cert_days,
            coordinator_days,
            ca_days,
        } => {
            let lifetimes = picluster_core::trust::Lifetimes {
                ca_days,
                coordinator_days,
                peer_days: cert_days,
            };
            // A listen address given by name is how peers reach it, unless told.
            let advertise = match (&listen.name, advertise.is_empty()) {
                (Some(name), true) => vec![name.clone()],
                _ => advertise,
            };
            let cluster = ClusterDir::init_with(&dir, listen.address, &advertise, lifetimes)?;
            writeln!(
                out,
                "created cluster in {}\n  coordinator listens on {} and is reached at {}\n  start it:      picluster coordinator --cluster {}\n  add a worker:  picluster add-worker NAME --cluster {} --out NAME.bundle",
                dir.display(),
                cluster.config().listen,
                cluster.config().advertise.join(", "),
                dir.display(),
                dir.display(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Coordinator {
            cluster,
            config: config_file,
            keep_finished,
            keep_finished_for,
            metrics,
        } => {
            let (file, path) = picluster_core::runtime::config::find_config::<
                config::CoordinatorFile,
            >(
                config_file.as_deref(), config::DEFAULT_COORDINATOR_CONFIG
            )
            .map_err(|e| CliError::Input(e.to_string()))?;
            let named = |key: &str| {
                path.as_ref()
                    .map_or_else(|| key.to_string(), |p| format!("{}: {key}", p.display()))
            };
            let keep_finished = keep_finished.or(file.keep_finished).unwrap_or(1000);
            if !(1..=1_000_000).contains(&keep_finished) {
                return Err(CliError::Input(format!(
                    "{}: {keep_finished} is not 1-1000000",
                    named("keep_finished")
                )));
            }
            let keep_finished_for = keep_finished_for
                .or(file.keep_finished_for)
                .unwrap_or(86_400);
            if keep_finished_for == 0 {
                return Err(CliError::Input(format!(
                    "{}: 0 seconds keeps nothing; give at least 1",
                    named("keep_finished_for")
                )));
            }
            let metrics = metrics.or(file.metrics);
            let cluster = ClusterArg {
                dir: cluster.or(file.cluster),
                bundle: None,
            };
            let config = CoordinatorConfig {
                keep_finished: keep_finished as usize,
                keep_finished_for: std::time::Duration::from_secs(keep_finished_for),
                ..CoordinatorConfig::default()
            };
            // Check the directory before starting anything.
            ClusterDir::open(cluster.dir()?)?;
            // One thread: the coordinator's state machine is single-threaded, and a
            // current-thread runtime wakes less (about 9 % of a core at 1,000 workers
            // against 10-11 % with a one-worker multi-thread runtime; BENCHMARKS.md).
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(picluster_core::service::serve_cluster_with(
                    cluster.dir()?,
                    config,
                    metrics,
                    shutdown_signal(),
                ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AddClient {
            name,
            cluster,
            out: path,
            replace,
        } => {
            let dir = ClusterDir::open(cluster.dir()?)?;
            refuse_existing(&path)?;
            let bundle =
                dir.issue_bundle(picluster_core::identity::Role::Client, &name, replace)?;
            write_bundle(out, &bundle, &path, "client machine", "picluster jobs")
        }
        Command::AddWorker {
            name,
            cluster,
            out: path,
            replace,
        } => {
            let dir = ClusterDir::open(cluster.dir()?)?;
            refuse_existing(&path)?;
            let bundle =
                dir.issue_bundle(picluster_core::identity::Role::Worker, &name, replace)?;
            write_bundle(out, &bundle, &path, "worker", "picluster-worker")
        }
        Command::Submit {
            kind: SubmitKind::Sha256d(args),
        } => submit(spec::sha256d_specs(&args)?, &args.common, out),
        Command::Submit {
            kind: SubmitKind::Hashcash(args),
        } => submit(vec![spec::hashcash_spec(&args)?], &args.common, out),
        Command::Submit {
            kind: SubmitKind::Preimage(args),
        } => submit(spec::preimage_specs(&args)?, &args.common, out),
        Command::Wait {
            jobs,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let ids = resolve_jobs(&client, &jobs, "wait for").await?;
            let mut reports = Vec::with_capacity(ids.len());
            for job in ids {
                match output::follow(&client, job, true).await? {
                    output::Followed::Report(report, outputs) => {
                        reports.push(finish(&client, kernels, *report, outputs).await?);
                    }
                    output::Followed::Interrupted => return interrupted(job),
                }
            }
            output::print_reports(out, &reports, output.json)
        }),
        Command::Jobs {
            job: Some(job),
            cluster,
            output,
            ..
        } => show_command(JobSelector::One(job), &cluster, output.json, out),
        Command::Jobs {
            job: None,
            all,
            state,
            client: by_client,
            last,
            prune,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let pruned = if prune {
                Some(client.prune().await?)
            } else {
                None
            };
            let filter = output::JobFilter {
                all,
                state,
                client: by_client,
                last,
            };
            print_jobs(out, &client.jobs().await?, &filter, pruned, output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Show {
            job,
            cluster,
            output,
        } => show_command(job, &cluster, output.json, out),
        Command::RenewCoordinator { cluster } => {
            let dir = ClusterDir::open(cluster.dir()?)?;
            dir.check_private_keys()?;
            let credential = dir.renew_coordinator()?;
            let days = dir.config().lifetimes.coordinator_days;
            writeln!(
                out,
                "renewed the coordinator's certificate in {} (valid {days} days): restart the coordinator to use it",
                dir.path().display()
            )?;
            drop(credential);
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke {
            name,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let revocation = client.revoke(&name).await?;
            if output.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"name": name, "state": "revoked",
                        "revoked_ms": revocation.revoked_ms, "closed": revocation.closed})
                )?;
            } else {
                writeln!(
                    out,
                    "{name} revoked: certificates issued before {} are refused; {} connection{} closed",
                    output::utc(revocation.revoked_ms),
                    revocation.closed,
                    if revocation.closed == 1 { "" } else { "s" }
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        Command::Token { command } => token_command(command, out),
        Command::Join {
            token,
            name,
            out: path,
        } => {
            let token: picluster_core::token::JoinToken = token
                .parse()
                .map_err(|e: picluster_core::token::TokenError| CliError::Input(e.to_string()))?;
            refuse_existing(&path)?;
            let bundle =
                background_runtime()?.block_on(crate::client::join_as_client(&token, &name))?;
            write_bundle(out, &bundle, &path, "client machine", "picluster jobs")
        }
        Command::Release {
            name,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            client.release(&name).await?;
            done(
                out,
                output.json,
                json!({"worker": name, "state": "released"}),
                &format!("{name} released"),
            )
        }),
        Command::Forget {
            jobs,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            for job in &jobs {
                client.forget(*job).await?;
            }
            print_forgotten(out, &jobs, output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Status {
            watch,
            interval,
            count,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            if !watch {
                let status = client.status().await?;
                let credentials = client.credentials().await?;
                print_status(out, &status, &credentials, output.json)?;
                return Ok(ExitCode::SUCCESS);
            }
            // In place on a terminal (not with --json); snapshots otherwise.
            let in_place = !output.json && std::io::stdout().is_terminal();
            let mut shown = 0u64;
            loop {
                let status = client.status().await?;
                let credentials = client.credentials().await?;
                let mut frame = Vec::new();
                if !output.json {
                    writeln!(
                        frame,
                        "{}  every {interval} s, Ctrl-C stops",
                        output::utc(
                            std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_or(0, |d| d.as_millis() as u64)
                        )
                    )?;
                }
                print_status(&mut frame, &status, &credentials, output.json)?;
                if in_place {
                    // Home, then clear below: the table is redrawn where it was.
                    out.write_all(b"\x1b[H\x1b[2J")?;
                } else if shown > 0 && !output.json {
                    writeln!(out)?;
                }
                out.write_all(&frame)?;
                out.flush()?;
                shown += 1;
                if count.is_some_and(|n| shown >= n) {
                    return Ok(ExitCode::SUCCESS);
                }
                tokio::select! {
                    () = tokio::time::sleep(std::time::Duration::from_secs_f64(interval)) => {}
                    _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                }
            }
        }),
        Command::Drain {
            name,
            reason,
            cluster,
            output,
        } => drain_command(&name, reason.as_deref(), &cluster, output.json, true, out),
        Command::Undrain {
            name,
            cluster,
            output,
        } => drain_command(&name, None, &cluster, output.json, false, out),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "picluster", out);
            Ok(ExitCode::SUCCESS)
        }
        Command::Manpages { dir } => {
            use clap::CommandFactory;
            let written = picluster_core::runtime::write_manpages(Cli::command(), &dir)?;
            writeln!(out, "wrote {written} man pages into {}", dir.display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cancel {
            jobs,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let ids = resolve_jobs(&client, &jobs, "cancel").await?;
            let mut summaries = Vec::with_capacity(ids.len());
            for job in ids {
                summaries.push(client.cancel(job).await?);
            }
            print_cancelled(out, &summaries, output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Submits a validated job, then waits for it with a progress bar (or returns at once
/// with `--detach`).
fn submit(
    specs: Vec<JobSpec>,
    common: &SubmitCommon,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let json = common.output.json;
    with_client(&common.cluster, |client| async move {
        let mut jobs = Vec::with_capacity(specs.len());
        for spec in &specs {
            jobs.push(client.submit_with_priority(spec, common.priority).await?);
        }
        let ids: Vec<String> = jobs.iter().map(ToString::to_string).collect();
        if !common.detach && !std::io::stderr().is_terminal() && !output::quiet() {
            // No progress bar: say at once which jobs these are, for a log or a script
            // that wants to `wait` for them elsewhere.
            picluster_core::runtime::eprint_lossy(&format!(
                "picluster: submitted {}",
                ids.join(" ")
            ));
        }
        if common.detach {
            if json {
                let one = |id: &String| json!({"job": id, "state": "queued"});
                let doc = match &ids[..] {
                    [id] => one(id),
                    _ => json!({"jobs": ids.iter().map(one).collect::<Vec<_>>()}),
                };
                writeln!(out, "{doc}")?;
            } else {
                writeln!(out, "{}", ids.join("\n"))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut reports = Vec::with_capacity(jobs.len());
        for job in jobs {
            match output::follow(&client, job, true).await? {
                output::Followed::Report(report, _) => reports.push(output::Finished {
                    report: *report,
                    custom: None,
                }),
                output::Followed::Interrupted => return interrupted(job),
            }
        }
        output::print_reports(out, &reports, json)
    })
}

/// A finished job as the command shows it: a custom job's results merged when this
/// program knows its kernel, else as they came.
async fn finish(
    client: &Client,
    kernels: &Kernels,
    report: picluster_core::wire::JobReport,
    outputs: Vec<picluster_core::wire::ChunkOutput>,
) -> Result<output::Finished, CliError> {
    let Some(kernel) = report.kind.strip_prefix("custom:").map(str::to_string) else {
        return Ok(output::Finished {
            report,
            custom: None,
        });
    };
    let params = if kernels.knows(&kernel) {
        match client.show(report.job).await?.work {
            picluster_core::wire::WorkSpec::Custom(work) => Some(work.params),
            _ => None,
        }
    } else {
        None
    };
    let custom =
        match params.and_then(|p| kernels.merge(&kernel, &p, outputs.clone(), report.clone())) {
            Some(merged) => {
                let (output, covered) = merged?;
                output::CustomResult {
                    kernel,
                    covered,
                    output,
                    raw: None,
                }
            }
            None => output::CustomResult {
                kernel,
                covered: outputs.iter().map(|o| o.end - o.start).sum(),
                output: None,
                raw: Some(outputs),
            },
        };
    Ok(output::Finished {
        report,
        custom: Some(custom),
    })
}

/// Ctrl-C while following a job: it keeps running; say how to get back to it.
fn interrupted(job: JobId) -> Result<ExitCode, CliError> {
    picluster_core::runtime::eprint_lossy(&format!(
        "{job} keeps running: picluster wait {job} to follow it, picluster cancel {job} to stop it"
    ));
    Ok(ExitCode::from(EXIT_INTERRUPTED))
}

/// The job ids that command-line selectors name, in order, each once.
async fn resolve_jobs(
    client: &Client,
    selectors: &[JobSelector],
    verb: &str,
) -> Result<Vec<JobId>, CliError> {
    let listed = if selectors.iter().all(|s| matches!(s, JobSelector::One(_))) {
        Vec::new()
    } else {
        client.jobs().await?
    };
    let mut ids = Vec::new();
    for selector in selectors {
        match *selector {
            JobSelector::One(id) => ids.push(id),
            JobSelector::Range(a, b) => {
                let before = ids.len();
                ids.extend(
                    listed
                        .iter()
                        .map(|j| j.progress.job)
                        .filter(|j| (a..=b).contains(&j.0)),
                );
                if ids.len() == before {
                    return Err(CliError::Input(format!(
                        "no job from j{a} to j{b} is kept by the coordinator: nothing to {verb}"
                    )));
                }
            }
            JobSelector::Last => match listed.iter().map(|j| j.progress.job).max() {
                Some(id) => ids.push(id),
                None => {
                    return Err(CliError::Input(format!(
                        "`last`: the coordinator keeps no jobs to {verb}"
                    )))
                }
            },
            JobSelector::All => ids.extend(
                listed
                    .iter()
                    .filter(|j| !j.progress.state.is_final())
                    .map(|j| j.progress.job),
            ),
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    ids.retain(|id| seen.insert(*id));
    Ok(ids)
}

fn show_command(
    job: JobSelector,
    cluster: &ClusterArg,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(cluster, |client| async move {
        let ids = resolve_jobs(&client, &[job], "show").await?;
        for id in ids {
            output::print_detail(out, &client.show(id).await?, json)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn drain_command(
    name: &str,
    reason: Option<&str>,
    cluster: &ClusterArg,
    json: bool,
    drain: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(cluster, |client| async move {
        print_drained(out, &client.drain_for(name, drain, reason).await?, json)?;
        Ok(ExitCode::SUCCESS)
    })
}

fn cluster_dir(dir: &Path) -> Result<PathBuf, CliError> {
    ClusterDir::open(dir)?;
    if !dir.join(ADMIN_BUNDLE).is_file() {
        return Err(CliError::Input(format!(
            "{} has no {ADMIN_BUNDLE}: client commands need the cluster's admin credential",
            dir.display()
        )));
    }
    Ok(dir.to_path_buf())
}

/// Saves a new bundle (never overwriting) and says where it goes and how it is used.
/// The one line a command that changed something prints: `value` with `--json`,
/// else `text`.
fn done(
    out: &mut dyn Write,
    json: bool,
    value: serde_json::Value,
    text: &str,
) -> Result<ExitCode, CliError> {
    if json {
        writeln!(out, "{value}")?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A bundle is never written over an existing file: checked before a name is
/// recorded as issued.
fn refuse_existing(path: &Path) -> Result<(), CliError> {
    if path.exists() {
        return Err(picluster_core::trust::ClusterError::FileExists(path.to_path_buf()).into());
    }
    Ok(())
}

fn write_bundle(
    out: &mut dyn Write,
    bundle: &picluster_core::trust::Bundle,
    path: &Path,
    machine: &str,
    command: &str,
) -> Result<ExitCode, CliError> {
    bundle.save(path)?;
    writeln!(
        out,
        "wrote {} for {} {} (coordinator {})\n  copy it to the {machine} and run: {command} --bundle {}",
        path.display(),
        bundle.role,
        bundle.name,
        bundle.coordinator,
        path.file_name().map_or(path.as_os_str(), |f| f).to_string_lossy(),
    )?;
    Ok(ExitCode::SUCCESS)
}

impl ClusterArg {
    /// The cluster directory, for commands that need it (not just a credential).
    fn dir(&self) -> Result<&Path, CliError> {
        self.dir.as_deref().ok_or_else(|| {
            CliError::Input(
                "this command needs the cluster directory: --cluster DIR (or PICLUSTER_CLUSTER)"
                    .into(),
            )
        })
    }
}

/// Connects with `--bundle` if given, else the cluster directory's admin credential,
/// runs `f`, and closes.
fn token_command(command: TokenCommand, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    match command {
        TokenCommand::Create {
            ttl,
            uses,
            role,
            replace,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            let role = if role == "client" {
                Role::Client
            } else {
                Role::Worker
            };
            let (token, info) = client.create_token(role, ttl, uses, replace).await?;
            if output.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::json!({"token": token.to_string(),
                    "id": info.id, "role": info.role.as_str(), "expires_ms": info.expires_ms,
                    "uses": info.uses_left, "replace": info.replace})
                )?;
            } else {
                writeln!(out, "{token}")?;
                writeln!(
                    out,
                    "  {} token {}, {} use{}, valid until {}{}; on the new machine:\n  picluster-worker --join '{token}' --name NAME --state-dir /var/lib/picluster-worker",
                    info.role,
                    info.id,
                    info.uses_left,
                    if info.uses_left == 1 { "" } else { "s" },
                    output::utc(info.expires_ms),
                    if info.replace { ", may replace an enrolled name" } else { "" },
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }),
        TokenCommand::List { cluster, output } => with_client(&cluster, |client| async move {
            output::print_tokens(out, &client.tokens().await?, output.json)?;
            Ok(ExitCode::SUCCESS)
        }),
        TokenCommand::Revoke {
            id,
            cluster,
            output,
        } => with_client(&cluster, |client| async move {
            client.revoke_token(&id).await?;
            done(
                out,
                output.json,
                json!({"token": id, "state": "revoked"}),
                &format!("token {id} revoked"),
            )
        }),
    }
}

fn with_client<'o, F, Fut>(cluster: &ClusterArg, f: F) -> Result<ExitCode, CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, CliError>> + 'o,
{
    let bundle = match &cluster.bundle {
        Some(path) => picluster_core::trust::Bundle::load(path)?,
        None => {
            let dir = cluster_dir(cluster.dir()?)?;
            ClusterDir::open(&dir)?.admin_bundle()?
        }
    };
    background_runtime()?.block_on(async {
        let client = output::connecting(&bundle.coordinator, Client::connect(&bundle)).await?;
        let closer = client.clone();
        let result = f(client).await;
        closer.shutdown().await;
        result
    })
}
