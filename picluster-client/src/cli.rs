//! The `picluster` command line: argument parsing, input validation (before anything
//! is sent), and output for people (with a progress bar on a terminal) and scripts
//! (`--json`: the last line of stdout is one JSON object). `main.rs` only calls
//! [`main`]; tests call [`run`] with their own output buffer.
//!
//! Exit codes: 0 success (a job that completed, with or without solutions), 1 an
//! error (or a job that failed), 2 bad usage, 3 a job that ended cancelled.

use crate::client::{Client, ClientError};
use clap::{Args, Parser, Subcommand};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::hex;
use picluster_core::ids::JobId;
use picluster_core::job::{JobKind, JobSpec, SearchMode};
use picluster_core::kernel::hashcash::HashcashJob;
use picluster_core::kernel::preimage::{Mask, PreimageHash, PreimageJob};
use picluster_core::kernel::sha256d::{BlockHeader, Sha256dJob, Target, NONCE_SPACE};
use picluster_core::kernel::{Solution, SolutionDetail};
use picluster_core::trust::{ClusterDir, ADMIN_BUNDLE};
use picluster_core::wire::{ClusterStatus, JobProgress, JobReport, JobState, JobSummary};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Exit code of a job that ended cancelled.
pub const EXIT_CANCELLED: u8 = 3;

/// Turn a handful of Raspberry Pis into one compute cluster.
#[derive(Parser, Debug)]
#[command(name = "picluster", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new cluster: CA, coordinator certificate, admin credential, config.
    Init {
        /// Directory to create (must not exist, or be empty).
        dir: PathBuf,
        /// Address the coordinator listens on (UDP), e.g. 0.0.0.0:7878.
        #[arg(long)]
        listen: SocketAddr,
        /// How workers and clients reach the coordinator (HOST:PORT), if that differs
        /// from the listen address; repeatable, the first is written into bundles.
        #[arg(long = "advertise", value_name = "HOST:PORT")]
        advertise: Vec<String>,
    },
    /// Run the coordinator in the foreground (Ctrl-C or SIGTERM stops it).
    Coordinator {
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Write a bundle (address, CA, certificate, key) for a new worker.
    AddWorker {
        /// The worker's name (A-Z a-z 0-9 . _ -), e.g. pi-3.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        /// File to write (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Submit a job.
    Submit {
        #[command(subcommand)]
        kind: SubmitKind,
    },
    /// Wait for a job to end and print its report.
    Wait {
        /// The job (j7 or 7).
        job: JobId,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List jobs.
    Jobs {
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show workers and jobs.
    Status {
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Let a worker finish its current chunk and give it no more (for maintenance).
    Drain {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Give a drained worker work again.
    Undrain {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Cancel a job.
    Cancel {
        /// The job (j7 or 7).
        job: JobId,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Subcommand, Debug)]
enum SubmitKind {
    /// Bitcoin-style SHA-256d nonce search over an 80-byte block header.
    Sha256d(Sha256dArgs),
    /// Proof of work: counters C such that SHA-256(DATA || C as 8 bytes big-endian)
    /// has at least --bits leading zero bits.
    Hashcash(HashcashArgs),
    /// Preimage search: candidates of a mask whose SHA-256 (or SHA-256d) is one of
    /// the target digests. Stops when every target is found, or the mask is done.
    Preimage(PreimageArgs),
}

/// What every `submit` command shares.
#[derive(Args, Debug)]
struct SubmitCommon {
    /// Print the job id and return without waiting.
    #[arg(long)]
    detach: bool,
    /// Higher runs first; equal priorities share the cluster fairly among clients.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    output: OutputArg,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["data", "data_hex", "data_file"])))]
struct HashcashArgs {
    /// The data, as text (UTF-8).
    #[arg(long)]
    data: Option<String>,
    /// The data, as hex.
    #[arg(long, value_name = "HEX")]
    data_hex: Option<String>,
    /// The data, read from a file (at most 64 KiB).
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,
    /// Leading zero bits required (1-256).
    #[arg(long)]
    bits: u32,
    /// Counters to try, half-open START..END (default 0..2^64-1).
    #[arg(long, value_name = "START..END")]
    counter_range: Option<String>,
    /// Find every counter in the range instead of stopping at the first (needs
    /// --counter-range).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    common: SubmitCommon,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("targets").required(true).multiple(true).args(["target", "targets_file"])))]
struct PreimageArgs {
    /// The mask: ?l ?u ?d ?h ?H ?s ?a ?b ?1-?4 are charsets, ?? is '?', anything
    /// else stands for itself (e.g. "pass?d?d?d?d").
    #[arg(long)]
    mask: String,
    /// Custom charset ?1 (same syntax, e.g. "?l?d_").
    #[arg(long = "charset1", short = '1', value_name = "SET")]
    charset1: Option<String>,
    /// Custom charset ?2.
    #[arg(long = "charset2", short = '2', value_name = "SET")]
    charset2: Option<String>,
    /// Custom charset ?3.
    #[arg(long = "charset3", short = '3', value_name = "SET")]
    charset3: Option<String>,
    /// Custom charset ?4.
    #[arg(long = "charset4", short = '4', value_name = "SET")]
    charset4: Option<String>,
    /// A target digest, 64 hex digits (repeatable).
    #[arg(long, value_name = "HEX")]
    target: Vec<String>,
    /// A file of target digests, one per line (blank lines and # comments skipped).
    #[arg(long, value_name = "FILE")]
    targets_file: Option<PathBuf>,
    /// The hash inverted.
    #[arg(long, value_enum, default_value_t = HashArg::Sha256)]
    hash: HashArg,
    /// Stop at the first preimage found instead of looking for every target.
    #[arg(long)]
    first: bool,
    /// Skip this many candidates at the start of the mask.
    #[arg(long, default_value_t = 0)]
    skip: u64,
    /// Search at most this many candidates.
    #[arg(long)]
    limit: Option<u64>,
    #[command(flatten)]
    common: SubmitCommon,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum HashArg {
    /// SHA-256(candidate).
    Sha256,
    /// SHA-256(SHA-256(candidate)).
    Sha256d,
}

#[derive(Args, Debug)]
struct Sha256dArgs {
    /// The 80-byte block header, hex, as serialized (its nonce field is ignored).
    #[arg(long)]
    header: String,
    /// Nonces to search, half-open START..END (default 0..4294967296).
    #[arg(long, value_name = "START..END")]
    nonce_range: Option<String>,
    /// Target, 64 hex digits, most significant first (default: the header's nBits).
    #[arg(long)]
    target: Option<String>,
    /// BIP 320 version bits to roll (a subset of 1fffe000), to search beyond 2^32.
    #[arg(long, value_name = "HEX")]
    version_mask: Option<String>,
    /// Find every solution instead of stopping at the first.
    #[arg(long)]
    all: bool,
    /// Print the job id and return without waiting.
    #[arg(long)]
    detach: bool,
    /// Higher runs first; equal priorities share the cluster fairly among clients.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i32,
    #[command(flatten)]
    cluster: ClusterArg,
    #[command(flatten)]
    output: OutputArg,
}

#[derive(Args, Debug)]
struct ClusterArg {
    /// The cluster directory (made by `picluster init`).
    #[arg(long = "cluster", env = "PICLUSTER_CLUSTER", value_name = "DIR")]
    dir: PathBuf,
}

#[derive(Args, Debug)]
struct OutputArg {
    /// Machine-readable output: the last line of stdout is one JSON object.
    #[arg(long)]
    json: bool,
}

/// A failure the command reports as one line and exit code 1 (2 for usage).
#[derive(Debug, thiserror::Error)]
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
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let verbose = matches!(cli.command, Command::Coordinator { .. });
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| if verbose { "info" } else { "warn" }.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let stdout = std::io::stdout();
    match run(cli, &mut stdout.lock()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("picluster: {e}");
            ExitCode::FAILURE
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
    match cli.command {
        Command::Init {
            dir,
            listen,
            advertise,
        } => {
            let cluster = ClusterDir::init(&dir, listen, &advertise)?;
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
        Command::Coordinator { cluster } => {
            // Check the directory before starting anything.
            ClusterDir::open(&cluster.dir)?;
            // One thread: the coordinator's state machine is single-threaded, and a
            // current-thread runtime wakes less (about 9 % of a core at 1,000 workers
            // against 10-11 % with a one-worker multi-thread runtime; BENCHMARKS.md).
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(picluster_core::service::serve_cluster(
                    &cluster.dir,
                    CoordinatorConfig::default(),
                    shutdown_signal(),
                ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::AddWorker {
            name,
            cluster,
            out: path,
        } => {
            let dir = ClusterDir::open(&cluster.dir)?;
            let bundle = dir.worker_bundle(&name)?;
            bundle.save(&path)?;
            writeln!(
                out,
                "wrote {} for worker {name} (coordinator {})\n  copy it to the worker and run: picluster-worker --bundle {}",
                path.display(),
                bundle.coordinator,
                path.file_name().map_or(path.as_os_str(), |f| f).to_string_lossy(),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Submit {
            kind: SubmitKind::Sha256d(args),
        } => {
            let spec = sha256d_spec(&args)?;
            let common = SubmitCommon {
                detach: args.detach,
                priority: args.priority,
                cluster: args.cluster,
                output: args.output,
            };
            submit(spec, &common, out)
        }
        Command::Submit {
            kind: SubmitKind::Hashcash(args),
        } => submit(hashcash_spec(&args)?, &args.common, out),
        Command::Submit {
            kind: SubmitKind::Preimage(args),
        } => submit(preimage_spec(&args)?, &args.common, out),
        Command::Wait {
            job,
            cluster,
            output,
        } => {
            let dir = cluster_dir(&cluster.dir)?;
            with_client(&dir, |client| async move {
                let report = wait_with_bar(&client, job).await?;
                print_report(out, &report, output.json)
            })
        }
        Command::Jobs { cluster, output } => {
            let dir = cluster_dir(&cluster.dir)?;
            with_client(&dir, |client| async move {
                let jobs = client.jobs().await?;
                if output.json {
                    let list: Vec<Value> = jobs.iter().map(job_json).collect();
                    writeln!(out, "{}", json!({ "jobs": list }))?;
                } else {
                    print_jobs(out, &jobs)?;
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Status { cluster, output } => {
            let dir = cluster_dir(&cluster.dir)?;
            with_client(&dir, |client| async move {
                let status = client.status().await?;
                if output.json {
                    writeln!(out, "{}", status_json(&status))?;
                } else {
                    print_status(out, &status)?;
                }
                Ok(ExitCode::SUCCESS)
            })
        }
        Command::Drain {
            name,
            cluster,
            output,
        } => drain_command(&name, &cluster.dir, output.json, true, out),
        Command::Undrain {
            name,
            cluster,
            output,
        } => drain_command(&name, &cluster.dir, output.json, false, out),
        Command::Cancel {
            job,
            cluster,
            output,
        } => {
            let dir = cluster_dir(&cluster.dir)?;
            with_client(&dir, |client| async move {
                let summary = client.cancel(job).await?;
                let state = summary.progress.state.as_str();
                if output.json {
                    writeln!(out, "{}", json!({"job": job.to_string(), "state": state}))?;
                } else {
                    writeln!(out, "{job} {state}")?;
                }
                Ok(ExitCode::SUCCESS)
            })
        }
    }
}

/// Submits a validated job, then waits for it with a progress bar (or returns at once
/// with `--detach`).
fn submit(spec: JobSpec, common: &SubmitCommon, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    let dir = cluster_dir(&common.cluster.dir)?;
    let json = common.output.json;
    with_client(&dir, |client| async move {
        let job = client.submit_with_priority(&spec, common.priority).await?;
        if common.detach {
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"job": job.to_string(), "state": "queued"})
                )?;
            } else {
                writeln!(out, "{job}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let report = wait_with_bar(&client, job).await?;
        print_report(out, &report, json)
    })
}

fn drain_command(
    name: &str,
    dir: &Path,
    json: bool,
    drain: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let dir = cluster_dir(dir)?;
    with_client(&dir, |client| async move {
        let worker = client.drain(name, drain).await?;
        let state = worker.state.as_str();
        if json {
            writeln!(
                out,
                "{}",
                json!({"worker": worker.name, "state": state, "leases": worker.leases})
            )?;
        } else {
            writeln!(out, "{} {state}", worker.name)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?)
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

fn with_client<'o, F, Fut>(dir: &Path, f: F) -> Result<ExitCode, CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, CliError>> + 'o,
{
    runtime()?.block_on(async {
        let client = Client::connect_cluster(dir).await?;
        let closer = client.clone();
        let result = f(client).await;
        closer.close();
        result
    })
}

/// Validates `submit sha256d` arguments into a job, before anything is sent.
fn sha256d_spec(args: &Sha256dArgs) -> Result<JobSpec, CliError> {
    let input = |e: &dyn std::fmt::Display| CliError::Input(e.to_string());
    let header = BlockHeader::from_hex(&args.header).map_err(|e| input(&e))?;
    let target = args
        .target
        .as_deref()
        .map(Target::from_hex)
        .transpose()
        .map_err(|e| input(&e))?;
    let nonces = match &args.nonce_range {
        Some(r) => parse_range(r)?,
        None => 0..NONCE_SPACE,
    };
    let mask = match &args.version_mask {
        Some(m) => parse_hex_u32(m).map_err(|e| CliError::Input(format!("--version-mask: {e}")))?,
        None => 0,
    };
    let job = Sha256dJob::new(header, target, nonces, mask).map_err(|e| input(&e))?;
    Ok(JobSpec {
        kind: JobKind::Sha256d(job),
        mode: if args.all {
            SearchMode::All
        } else {
            SearchMode::First
        },
    })
}

/// Validates `submit hashcash` arguments into a job, before anything is sent.
fn hashcash_spec(args: &HashcashArgs) -> Result<JobSpec, CliError> {
    let data = if let Some(text) = &args.data {
        text.as_bytes().to_vec()
    } else if let Some(h) = &args.data_hex {
        hex::decode(h.trim()).map_err(|e| CliError::Input(format!("--data-hex: {e}")))?
    } else if let Some(path) = &args.data_file {
        let meta = std::fs::metadata(path)
            .map_err(|e| CliError::Input(format!("--data-file {}: {e}", path.display())))?;
        if meta.len() > picluster_core::kernel::hashcash::MAX_DATA_LEN as u64 {
            return Err(CliError::Input(format!(
                "--data-file {}: {} bytes; at most {} are accepted",
                path.display(),
                meta.len(),
                picluster_core::kernel::hashcash::MAX_DATA_LEN
            )));
        }
        std::fs::read(path)
            .map_err(|e| CliError::Input(format!("--data-file {}: {e}", path.display())))?
    } else {
        unreachable!("clap requires one of --data, --data-hex, --data-file")
    };
    if args.all && args.counter_range.is_none() {
        return Err(CliError::Input(
            "--all needs --counter-range: the default range of 2^64 counters never ends".into(),
        ));
    }
    let counters = match &args.counter_range {
        Some(r) => parse_span(
            "--counter-range",
            r,
            u64::MAX,
            "18446744073709551615 (2^64-1)",
        )?,
        None => 0..u64::MAX,
    };
    let job =
        HashcashJob::new(&data, args.bits, counters).map_err(|e| CliError::Input(e.to_string()))?;
    Ok(JobSpec {
        kind: JobKind::Hashcash(job),
        mode: if args.all {
            SearchMode::All
        } else {
            SearchMode::First
        },
    })
}

/// Validates `submit preimage` arguments into a job, before anything is sent.
fn preimage_spec(args: &PreimageArgs) -> Result<JobSpec, CliError> {
    let custom = [
        args.charset1.as_deref(),
        args.charset2.as_deref(),
        args.charset3.as_deref(),
        args.charset4.as_deref(),
    ];
    let mask =
        Mask::parse(&args.mask, &custom).map_err(|e| CliError::Input(format!("--mask: {e}")))?;
    let mut targets = Vec::new();
    for (i, t) in args.target.iter().enumerate() {
        targets.push(
            parse_digest(t).map_err(|e| CliError::Input(format!("--target #{}: {e}", i + 1)))?,
        );
    }
    if let Some(path) = &args.targets_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("--targets-file {}: {e}", path.display())))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            targets.push(parse_digest(line).map_err(|e| {
                CliError::Input(format!(
                    "--targets-file {} line {}: {e}",
                    path.display(),
                    n + 1
                ))
            })?);
        }
    }
    let keyspace = mask.keyspace();
    let end = match args.limit {
        Some(0) => return Err(CliError::Input("--limit must be at least 1".into())),
        Some(limit) => args.skip.saturating_add(limit).min(keyspace),
        None => keyspace,
    };
    let hash = match args.hash {
        HashArg::Sha256 => PreimageHash::Sha256,
        HashArg::Sha256d => PreimageHash::Sha256d,
    };
    let job = PreimageJob::new(mask, hash, &targets, Some(args.skip..end))
        .map_err(|e| CliError::Input(e.to_string()))?;
    Ok(JobSpec {
        kind: JobKind::Preimage(job),
        mode: if args.first {
            SearchMode::First
        } else {
            SearchMode::All
        },
    })
}

fn parse_digest(s: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(s.trim()).map_err(|e| e.to_string())?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, expected 32 (64 hex digits)", b.len()))
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_range(s: &str) -> Result<Range<u64>, CliError> {
    parse_span("--nonce-range", s, NONCE_SPACE, "4294967296 (2^32)")
}

/// Parses a half-open `START..END` range for option `option`, with END at most `max`.
fn parse_span(option: &str, s: &str, max: u64, max_text: &str) -> Result<Range<u64>, CliError> {
    let bad = |why: &str| CliError::Input(format!("{option} {s}: {why}"));
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| bad("expected START..END"))?;
    let start = parse_number(a.trim()).ok_or_else(|| bad("START is not a number"))?;
    let end = parse_number(b.trim()).ok_or_else(|| bad("END is not a number"))?;
    if start >= end {
        return Err(bad("the range is empty or reversed (END is exclusive)"));
    }
    if end > max {
        return Err(bad(&format!("END is beyond {max_text}")));
    }
    Ok(start..end)
}

fn parse_hex_u32(s: &str) -> Result<u32, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    if digits.is_empty() || digits.len() > 8 {
        return Err(format!("`{s}` is not 1-8 hex digits"));
    }
    u32::from_str_radix(digits, 16).map_err(|_| format!("`{s}` is not hex"))
}

async fn wait_with_bar(client: &Client, job: JobId) -> Result<JobReport, CliError> {
    let watch = client.watch(job).await?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(watch.initial.keyspace),
        if std::io::stderr().is_terminal() {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {percent:>3}%  {msg}  ETA {eta}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(job.to_string());
    let report = watch
        .finish(|p: &JobProgress| {
            bar.set_position(p.hashes);
            bar.set_message(format!("{:.2} MH/s", rate_mhs(p.hashes, p.elapsed_ms)));
        })
        .await;
    bar.finish_and_clear();
    Ok(report?)
}

fn rate_mhs(hashes: u64, elapsed_ms: u64) -> f64 {
    if elapsed_ms == 0 {
        0.0
    } else {
        hashes as f64 / elapsed_ms as f64 / 1000.0
    }
}

fn report_json(report: &JobReport) -> Value {
    json!({
        "job": report.job.to_string(),
        "state": report.state.as_str(),
        "solutions": report.solutions.iter().map(solution_json).collect::<Vec<_>>(),
        "truncated": report.truncated,
        "hashes": report.hashes,
        "keyspace": report.keyspace,
        "seconds": report.elapsed_ms as f64 / 1000.0,
        "workers": report.contributions.iter().map(|c| json!({
            "name": c.worker,
            "hashes": c.hashes,
        })).collect::<Vec<_>>(),
        "error": report.error,
    })
}

fn solution_json(s: &Solution) -> Value {
    match &s.detail {
        SolutionDetail::Sha256d { nonce, version } => json!({
            "nonce": nonce,
            "version": version,
            "hash": hex::encode(&s.hash),
        }),
        SolutionDetail::Hashcash { counter } => json!({
            "counter": counter,
            "hash": hex::encode(&s.hash),
        }),
        SolutionDetail::Preimage { candidate } => json!({
            "index": s.index,
            "preimage": std::str::from_utf8(candidate).ok(),
            "preimage_hex": hex::encode(candidate),
            "hash": hex::encode(&s.hash),
        }),
    }
}

fn solution_line(s: &Solution) -> String {
    match &s.detail {
        SolutionDetail::Sha256d { nonce, version } => format!(
            "nonce {nonce} (0x{nonce:08x})  version 0x{version:08x}  hash {}",
            hex::encode(&s.hash)
        ),
        SolutionDetail::Hashcash { counter } => {
            format!("counter {counter}  hash {}", hex::encode(&s.hash))
        }
        SolutionDetail::Preimage { candidate } => format!(
            "{}  hash {}",
            match std::str::from_utf8(candidate) {
                Ok(text) => format!("{text:?}"),
                Err(_) => format!("hex:{}", hex::encode(candidate)),
            },
            hex::encode(&s.hash)
        ),
    }
}

fn print_report(
    out: &mut dyn Write,
    report: &JobReport,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    if as_json {
        writeln!(out, "{}", report_json(report))?;
    } else {
        writeln!(
            out,
            "{} {}: {} solution{}",
            report.job,
            report.state.as_str(),
            report.solutions.len(),
            if report.solutions.len() == 1 { "" } else { "s" }
        )?;
        if report.truncated {
            writeln!(
                out,
                "  (more solutions were found; the lowest {} are listed)",
                report.solutions.len()
            )?;
        }
        for s in &report.solutions {
            writeln!(out, "  {}", solution_line(s))?;
        }
        if let Some(error) = &report.error {
            writeln!(out, "  error: {error}")?;
        }
        writeln!(
            out,
            "searched {} of {} in {:.2} s ({:.2} MH/s)",
            report.hashes,
            report.keyspace,
            report.elapsed_ms as f64 / 1000.0,
            rate_mhs(report.hashes, report.elapsed_ms)
        )?;
        for c in &report.contributions {
            writeln!(out, "  {:<20} {:>16} hashes", c.worker, c.hashes)?;
        }
    }
    Ok(match report.state {
        JobState::Cancelled => ExitCode::from(EXIT_CANCELLED),
        JobState::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    })
}

fn mode_str(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::First => "first",
        SearchMode::All => "all",
    }
}

fn job_json(j: &JobSummary) -> Value {
    let p = &j.progress;
    json!({
        "job": p.job.to_string(),
        "state": p.state.as_str(),
        "kind": j.kind,
        "mode": mode_str(j.mode),
        "priority": j.priority,
        "client": j.client,
        "hashes": p.hashes,
        "keyspace": p.keyspace,
        "solutions": p.solutions,
        "seconds": p.elapsed_ms as f64 / 1000.0,
    })
}

fn print_jobs(out: &mut dyn Write, jobs: &[JobSummary]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<8} {:<10} {:<10} {:<6} {:>8} {:<12} {:>7} {:>9} {:>10}",
        "JOB", "STATE", "KIND", "MODE", "PRIORITY", "CLIENT", "DONE", "SOLUTIONS", "SECONDS"
    )?;
    for j in jobs {
        let p = &j.progress;
        writeln!(
            out,
            "{:<8} {:<10} {:<10} {:<6} {:>8} {:<12} {:>6.1}% {:>9} {:>10.1}",
            p.job.to_string(),
            p.state.as_str(),
            j.kind,
            mode_str(j.mode),
            j.priority,
            j.client,
            100.0 * p.hashes as f64 / p.keyspace.max(1) as f64,
            p.solutions,
            p.elapsed_ms as f64 / 1000.0
        )?;
    }
    Ok(())
}

fn status_json(status: &ClusterStatus) -> Value {
    json!({
        "workers": status.workers.iter().map(|w| json!({
            "name": w.name,
            "id": w.worker.to_string(),
            "state": w.state.as_str(),
            "threads": w.threads,
            "arch": w.arch,
            "impl": w.kernel_impl,
            "mhs": w.rate_hps as f64 / 1e6,
            "hashes": w.hashes,
            "leases": w.leases,
            "connected_seconds": w.connected_ms as f64 / 1000.0,
        })).collect::<Vec<_>>(),
        "jobs": status.jobs.iter().map(job_json).collect::<Vec<_>>(),
    })
}

fn print_status(out: &mut dyn Write, status: &ClusterStatus) -> std::io::Result<()> {
    let total: f64 = status.workers.iter().map(|w| w.rate_hps as f64 / 1e6).sum();
    writeln!(
        out,
        "{} worker{}, {:.2} MH/s",
        status.workers.len(),
        if status.workers.len() == 1 { "" } else { "s" },
        total
    )?;
    writeln!(
        out,
        "{:<20} {:<8} {:>7} {:<8} {:<12} {:>9}",
        "WORKER", "STATE", "THREADS", "ARCH", "IMPL", "MH/S"
    )?;
    for w in &status.workers {
        writeln!(
            out,
            "{:<20} {:<8} {:>7} {:<8} {:<12} {:>9.2}",
            w.name,
            w.state.as_str(),
            w.threads,
            w.arch,
            w.kernel_impl,
            w.rate_hps as f64 / 1e6
        )?;
    }
    if !status.jobs.is_empty() {
        writeln!(out)?;
        print_jobs(out, &status.jobs)?;
    }
    Ok(())
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
