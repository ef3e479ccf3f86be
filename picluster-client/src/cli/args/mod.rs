//! The command line's shape: clap types for every command and option.
//!
//! # Layout
//! - this file: [`Cli`], every command, and the options several share.
//! - `submit`: what `picluster submit` takes, per job kind.

mod submit;

pub(super) use submit::{
    HashArg, HashcashArgs, PreimageArgs, Sha256dArgs, SubmitCommon, SubmitKind,
};

use clap::{Args, Parser, Subcommand};
use picluster_core::ids::JobId;
use std::net::SocketAddr;
use std::path::PathBuf;

/// What `picluster --help` ends with.
const AFTER_HELP: &str = "\
Examples:
  picluster init rack --listen 0.0.0.0:7878 --advertise head.local:7878
  picluster coordinator --cluster rack
  picluster token create --cluster rack     (then on each Pi: picluster-worker --join TOKEN --name pi-1 --state-dir /var/lib/picluster-worker)
  picluster status --cluster rack
  picluster submit sha256d --header HEX --cluster rack
  picluster submit preimage --masks-file masks.txt --target HEX --detach
  picluster jobs --state running        picluster show last        picluster cancel 3-7
  picluster drain pi-3 --reason 'new fan'

Environment:
  PICLUSTER_CLUSTER   the cluster directory, instead of --cluster
  PICLUSTER_BUNDLE    a client bundle, instead of --bundle
  RUST_LOG            log filter (e.g. debug, picluster_core=debug); overrides -v and -q

Exit status: 0 success, 1 error or failed job, 2 invalid command line or input
(nothing sent), 3 cancelled job, 130 Ctrl-C while following a job (it keeps
running), 141 output pipe closed.";

/// Turn a handful of Raspberry Pis into one compute cluster.
#[derive(Parser, Debug)]
#[command(name = "picluster", version, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub(super) command: Command,
    /// More log output on stderr, a level per -v (error, warn, info, debug, trace;
    /// the coordinator starts at info, as picluster-worker does, other commands at
    /// warn). RUST_LOG, when set, decides instead.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(super) verbose: u8,
    /// Less log output on stderr, a level per -q (-q: warnings for the coordinator,
    /// errors only for other commands), and no progress bar or hints.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "verbose")]
    pub(super) quiet: u8,
}

#[derive(Subcommand, Debug)]
pub(super) enum TokenCommand {
    /// Make a join token and print it.
    #[command(
        after_help = "Examples:\n  picluster token create --cluster rack\n  picluster token create --ttl 10m --uses 5 --cluster rack\n  picluster token create --role client --cluster rack"
    )]
    Create {
        /// How long it is valid: 90s, 10m, 1h (default), at most 24h; a bare number
        /// is seconds.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: std::time::Duration,
        /// How many machines may enroll with it.
        #[arg(long, default_value_t = 1,
              value_parser = clap::value_parser!(u32).range(1..=1000))]
        uses: u32,
        /// What it enrolls: worker or client.
        #[arg(long, default_value = "worker", value_parser = ["worker", "client"])]
        role: String,
        /// It may enroll a name that is already enrolled, revoking that name's
        /// certificates (a reinstalled or replaced Pi).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List the join tokens (never their secrets).
    #[command(after_help = "Example:\n  picluster token list --cluster rack")]
    List {
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Withdraw a join token.
    #[command(after_help = "Example:\n  picluster token revoke 0a1b2c3d4e5f --cluster rack")]
    Revoke {
        /// The token's id (the 12 hex digits after `pcj1.`).
        id: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
}

/// `90s`, `10m`, `1h`, or plain seconds.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 90s, 10m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("`{text}`: the unit must be s, m or h")),
    };
    if seconds == 0 || seconds > 24 * 3600 {
        return Err(format!("`{text}`: a token lives between 1 s and 24 h"));
    }
    Ok(std::time::Duration::from_secs(seconds))
}

/// `--interval`: 0.2 s to an hour.
fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.2..=3600.0).contains(&s) => Ok(s),
        _ => Err(format!("`{text}`: give seconds between 0.2 and 3600")),
    }
}

/// `--listen` as given: the address to bind, and the name it was given by.
#[derive(Clone, Debug)]
pub(super) struct Listen {
    pub(super) address: SocketAddr,
    /// `HOST:PORT` when given by name: the default way to reach the coordinator.
    pub(super) name: Option<String>,
}

/// `--listen`: an IP address and port, or a name and port resolved to one address
/// now (the coordinator binds an address, not a name).
fn parse_listen(text: &str) -> Result<Listen, String> {
    if let Ok(address) = text.parse() {
        return Ok(Listen {
            address,
            name: None,
        });
    }
    let hint =
        "give an IP address and port, e.g. 0.0.0.0:7878 (every interface) or 192.168.1.10:7878";
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}` is not an address and port: {hint}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{text}`: `{port}` is not a port number: {hint}"))?;
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("`{text}` does not resolve ({e}): {hint}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .map(|address| Listen {
            address: *address,
            name: Some(text.to_string()),
        })
        .ok_or_else(|| format!("`{text}` resolves to no address: {hint}"))
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
    /// Create a new cluster: CA, coordinator certificate, admin credential, config.
    #[command(
        after_help = "Examples:\n  picluster init rack --listen 0.0.0.0:7878 --advertise head.local:7878\n  picluster init lab --listen localhost:7878 --cert-days 30"
    )]
    #[command(display_order = 20)]
    Init {
        /// Directory to create (must not exist, or be empty).
        dir: PathBuf,
        /// Address the coordinator listens on (UDP), e.g. 0.0.0.0:7878 (every
        /// interface) or 192.168.1.10:7878; a name (localhost:7878) is resolved now.
        #[arg(long, value_parser = parse_listen, value_name = "ADDRESS:PORT")]
        listen: Listen,
        /// How workers and clients reach the coordinator (HOST:PORT), if that differs
        /// from the listen address; repeatable, the first is written into bundles.
        #[arg(long = "advertise", value_name = "HOST:PORT")]
        advertise: Vec<String>,
        /// Days the certificates of workers and clients are valid (workers renew
        /// theirs when two thirds have passed).
        #[arg(long, value_name = "DAYS", default_value_t = 90,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        cert_days: u32,
        /// Days the coordinator's certificate is valid.
        #[arg(long, value_name = "DAYS", default_value_t = 365,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        coordinator_days: u32,
        /// Days the cluster CA is valid.
        #[arg(long, value_name = "DAYS", default_value_t = 3650,
              value_parser = clap::value_parser!(u32).range(1..=36_500))]
        ca_days: u32,
        /// Keep the cluster's state in etcd (its client URLs, comma-separated), so
        /// that several coordinators can share it: one leads, the others stand by
        /// (add them with `picluster add-coordinator`). Without it the state is in
        /// the coordinator's redb file in DIR.
        #[arg(long, value_name = "URLS", value_delimiter = ',')]
        etcd: Vec<String>,
    },
    /// Give another host a coordinator directory for a cluster whose state is in
    /// etcd: it stands by while another coordinator leads and takes over when that
    /// one fails. Bundles issued afterwards name every coordinator.
    #[command(
        after_help = "Example:\n  picluster add-coordinator pi2 --cluster rack --listen 0.0.0.0:7878 --advertise pi2.local:7878 --out pi2-coordinator\n  (copy pi2-coordinator to pi2 as /var/lib/picluster/cluster, mode 0700)"
    )]
    #[command(display_order = 22)]
    AddCoordinator {
        /// The new coordinator's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterDirArg,
        /// Address the new coordinator listens on (UDP).
        #[arg(long, value_parser = parse_listen, value_name = "ADDRESS:PORT")]
        listen: Listen,
        /// How workers and clients reach it (HOST:PORT), if that differs from the
        /// listen address.
        #[arg(long = "advertise", value_name = "HOST:PORT")]
        advertise: Vec<String>,
        /// The directory to make for it (must not exist, or be empty).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Certificates for etcd over TLS, signed by the cluster CA: an etcd member's
    /// (`--member NAME --host HOST`, for its client and peer URLs), or the operator's
    /// `root` client certificate for etcdctl (`--root`), which sets up etcd's users.
    /// Coordinators get theirs from `init --etcd https://...` and `add-coordinator`.
    #[command(
        after_help = "Examples:\n  picluster etcd-certs --cluster rack --member pi1 --host 192.168.1.21 --host pi1.local --out pi1-etcd\n  picluster etcd-certs --cluster rack --root --out etcd-root\n  (deploy/HA.md: TLS and etcd's users)"
    )]
    #[command(display_order = 23)]
    EtcdCerts {
        #[command(flatten)]
        cluster: ClusterDirArg,
        /// An etcd member's certificate, for this member name.
        #[arg(
            long,
            value_name = "NAME",
            conflicts_with = "root",
            required_unless_present = "root"
        )]
        member: Option<String>,
        /// The member's host names and IP addresses (repeatable).
        #[arg(long = "host", value_name = "HOST", requires = "member")]
        hosts: Vec<String>,
        /// The `root` client certificate instead (for etcdctl; keep it private).
        #[arg(long)]
        root: bool,
        /// The directory to write ca.pem and NAME.pem/NAME.key (or root.pem/root.key) in.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Replace the coordinator's certificate with a new one (before it expires;
    /// restart the coordinator to use it).
    #[command(after_help = "Example:\n  picluster renew-coordinator --cluster rack")]
    #[command(display_order = 30)]
    RenewCoordinator {
        #[command(flatten)]
        cluster: ClusterDirArg,
    },
    /// Run the coordinator in the foreground (Ctrl-C or SIGTERM stops it).
    #[command(
        after_help = "Examples:\n  picluster coordinator --cluster rack\n  picluster -v coordinator --cluster rack          (debug logs)\n  RUST_LOG=picluster_core=debug picluster coordinator --cluster rack"
    )]
    #[command(display_order = 21)]
    Coordinator {
        /// The cluster directory (made by `picluster init`).
        #[arg(long, env = "PICLUSTER_CLUSTER", value_name = "DIR")]
        cluster: Option<PathBuf>,
        /// Configuration file (TOML; default /etc/picluster/coordinator.toml when it
        /// exists). Options and PICLUSTER_* variables win over it.
        #[arg(long, env = "PICLUSTER_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        /// Finished jobs kept for `jobs`, `wait` and `status` (the oldest go first)
        /// [default: 1000].
        #[arg(long, env = "PICLUSTER_KEEP_FINISHED", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        keep_finished: Option<u32>,
        /// Serve metrics for Prometheus at http://ADDRESS:PORT/metrics (e.g.
        /// 127.0.0.1:9478, or 0.0.0.0:9478 for a Prometheus on another machine).
        #[arg(long, env = "PICLUSTER_METRICS", value_name = "ADDRESS:PORT")]
        metrics: Option<SocketAddr>,
        /// Seconds a finished job is kept after it ended [default: 86400, a day].
        #[arg(long, env = "PICLUSTER_KEEP_FINISHED_FOR", value_name = "SECONDS",
              value_parser = clap::value_parser!(u64).range(1..))]
        keep_finished_for: Option<u64>,
        /// Jobs one client certificate may have queued or running at once; a submit
        /// past it is refused [default: 1000].
        #[arg(long, env = "PICLUSTER_MAX_JOBS_PER_CLIENT", value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        max_jobs_per_client: Option<u32>,
        /// Percent of finished chunks another worker searches again, to catch a
        /// worker that hides solutions or skips work; 0 turns audits off
        /// [default: 2].
        #[arg(long, env = "PICLUSTER_AUDIT_PERCENT", value_name = "PERCENT")]
        audit_percent: Option<f64>,
        /// Start with a new, empty job store though this cluster's coordinator has run
        /// before and its coordinator.redb is missing: its revocations, quarantines,
        /// enrolled names, join tokens and jobs are lost (restore a backup instead if
        /// you can).
        #[arg(long)]
        new_store: bool,
    },
    /// Write a bundle (address, CA, certificate, key) for a new worker.
    #[command(
        after_help = "Example:\n  picluster add-worker pi-3 --cluster rack --out pi-3.bundle"
    )]
    #[command(display_order = 22)]
    AddWorker {
        /// The worker's name (A-Z a-z 0-9 . _ -), e.g. pi-3.
        name: String,
        #[command(flatten)]
        cluster: ClusterDirArg,
        /// File to write (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Issue a new credential for a name that has one (a reinstalled Pi); revoke
        /// the old one with `picluster revoke NAME`.
        #[arg(long)]
        replace: bool,
    },
    /// Write a bundle for a new client: it submits, watches, cancels and lists its
    /// own jobs and sees the cluster's status (the cluster's admin.bundle may do
    /// everything).
    #[command(
        after_help = "Example:\n  picluster add-client alice --cluster rack --out alice.bundle"
    )]
    #[command(display_order = 23)]
    AddClient {
        /// The client's name (A-Z a-z 0-9 . _ -), e.g. alice.
        name: String,
        #[command(flatten)]
        cluster: ClusterDirArg,
        /// File to write (created with mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Issue a new credential for a name that has one.
        #[arg(long)]
        replace: bool,
    },
    /// Submit a job.
    #[command(
        after_help = "Examples:\n  picluster submit sha256d --header HEX --cluster rack\n  picluster submit hashcash --data hello --bits 24 --detach\n  picluster submit preimage --mask 'pass?d?d?d?d' --target HEX"
    )]
    #[command(display_order = 1)]
    Submit {
        #[command(subcommand)]
        kind: SubmitKind,
    },
    /// Mine on a Stratum V1 pool with the whole cluster, until Ctrl-C or SIGTERM.
    ///
    /// Each pool job becomes a block template job at a priority below clients' jobs
    /// (the cluster mines when it has nothing else to do); each share the
    /// coordinator verified goes to the pool.
    #[command(
        after_help = "Examples:\n  picluster mine --pool stratum+tcp://127.0.0.1:3333 --user bc1q...worker --password x\n  picluster mine --pool stratum+tcp://pool.example:3333 --fallback stratum+tcp://backup.example:3333 --user me\n  picluster mine --config /etc/picluster/mine.toml"
    )]
    #[command(display_order = 9)]
    Mine {
        /// The pool, stratum+tcp://HOST:PORT.
        #[arg(long, env = "PICLUSTER_POOL", value_name = "URL")]
        pool: Option<String>,
        /// A pool to fall back on, in order, when the pool fails (repeatable); the
        /// bridge returns to the first pool once it answers.
        #[arg(long = "fallback", value_name = "URL")]
        fallback: Vec<String>,
        /// The pool user (an address, or ACCOUNT.WORKER).
        #[arg(long, env = "PICLUSTER_POOL_USER", value_name = "NAME")]
        user: Option<String>,
        /// The pool password [default: x].
        #[arg(long, env = "PICLUSTER_POOL_PASSWORD", value_name = "X")]
        password: Option<String>,
        /// Priority of the mining jobs (clients' jobs run at 0 by default) [default:
        /// -100].
        #[arg(long, value_name = "N", allow_hyphen_values = true)]
        priority: Option<i32>,
        /// Settings file (TOML: pool, fallback, user, password, priority); options
        /// and PICLUSTER_* variables win over it.
        #[arg(long, env = "PICLUSTER_MINE_CONFIG", value_name = "FILE")]
        config: Option<PathBuf>,
        #[command(flatten)]
        cluster: ClusterArg,
    },
    /// Wait for jobs to end and print their reports.
    #[command(
        after_help = "Examples:\n  picluster wait j7\n  picluster wait 3-7 --json\n  picluster wait last"
    )]
    #[command(display_order = 2)]
    Wait {
        /// The jobs: j7 or 7, ranges (3-7), `last` (the newest job) or `all` (every
        /// queued or running job).
        #[arg(required = true, value_name = "JOB")]
        jobs: Vec<JobSelector>,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List queued and running jobs (`--all`: finished ones too), or show one job in
    /// detail (`picluster jobs j7`).
    #[command(
        after_help = "Examples:\n  picluster jobs\n  picluster jobs --state done --last 10\n  picluster jobs --all --client alice --json\n  picluster jobs j7"
    )]
    #[command(display_order = 4)]
    Jobs {
        /// Show this job in detail, as `picluster show` does.
        job: Option<JobId>,
        /// Also list the finished jobs the coordinator keeps.
        #[arg(long, conflicts_with = "prune")]
        all: bool,
        /// Only jobs in this state: queued, running, completed, cancelled, failed,
        /// live (queued or running) or done (any finished state). Implies --all for
        /// finished states.
        #[arg(long, value_parser = ["queued", "running", "completed", "cancelled", "failed", "live", "done"])]
        state: Option<String>,
        /// Only jobs of this client (its certificate name).
        #[arg(long, value_name = "NAME")]
        client: Option<String>,
        /// Only the newest N jobs that pass the other filters.
        #[arg(long, value_name = "N")]
        last: Option<usize>,
        /// Remove every finished job the coordinator keeps, then list what is left.
        #[arg(long)]
        prune: bool,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Let a quarantined worker (it claimed a false solution) connect again.
    #[command(after_help = "Example:\n  picluster release pi-3 --cluster rack")]
    #[command(display_order = 28)]
    Release {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Revoke every certificate of a worker or client name issued up to now (a lost
    /// or stolen machine): its connections close at once and are refused from now on.
    /// A new credential for the name made later works.
    #[command(after_help = "Example:\n  picluster revoke pi-3 --cluster rack")]
    #[command(display_order = 29)]
    Revoke {
        /// The worker's or client's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Enroll this machine as a client with a join token (`picluster token create
    /// --role client`): makes a key here, gets a certificate, writes a bundle.
    #[command(
        after_help = "Example:\n  picluster join 'pcj1....@head.local:7878' --name alice --out alice.bundle"
    )]
    #[command(display_order = 25)]
    Join {
        /// The join token.
        token: String,
        /// The client name to enroll as, e.g. alice.
        #[arg(long)]
        name: String,
        /// The bundle to write (mode 0600; never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Join tokens: one line that lets a new machine enroll itself
    /// (`picluster-worker --join TOKEN --name NAME --state-dir DIR`).
    #[command(
        after_help = "Examples:\n  picluster token create --cluster rack\n  picluster token list --cluster rack"
    )]
    #[command(display_order = 24)]
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Remove finished jobs (report, solutions, results) from the coordinator now.
    #[command(after_help = "Example:\n  picluster forget j3 j4 --cluster rack")]
    #[command(display_order = 6)]
    Forget {
        /// The jobs (j7 or 7).
        #[arg(required = true, value_name = "JOB")]
        jobs: Vec<JobId>,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show one job in detail: its workers (what each searched, its chunks, what it
    /// holds now), chunks reassigned and stolen, solutions so far, times.
    #[command(after_help = "Examples:\n  picluster show j7\n  picluster show last --json")]
    #[command(display_order = 3)]
    Show {
        /// The job (j7 or 7, or `last`).
        job: JobSelector,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show workers and jobs.
    #[command(
        after_help = "Examples:\n  picluster status --cluster rack\n  picluster status --json | jq '.workers[].state'"
    )]
    #[command(display_order = 7)]
    Status {
        /// Refresh until Ctrl-C: in place on a terminal, otherwise one snapshot
        /// after another (with --json, one JSON object per line).
        #[arg(long, short)]
        watch: bool,
        /// Seconds between refreshes with --watch.
        #[arg(long, value_name = "SECONDS", default_value_t = 2.0, requires = "watch",
              value_parser = parse_interval)]
        interval: f64,
        /// With --watch: stop after this many refreshes (default: until Ctrl-C).
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Let a worker finish its current chunk and give it no more (for maintenance).
    /// `status` shows it `draining` until that chunk ends, then `drained`. A worker
    /// that is not connected may be drained: it takes no work when it comes back.
    #[command(after_help = "Example:\n  picluster drain pi-3 --reason 'new fan' --cluster rack")]
    #[command(display_order = 26)]
    Drain {
        /// The worker's name.
        name: String,
        /// Why, shown by `status` (e.g. "new fan").
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Give a drained worker work again.
    #[command(after_help = "Example:\n  picluster undrain pi-3 --cluster rack")]
    #[command(display_order = 27)]
    Undrain {
        /// The worker's name.
        name: String,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Print shell completions to stdout.
    #[command(
        after_help = "Examples:\n  picluster completions bash > /usr/share/bash-completion/completions/picluster\n  picluster completions zsh > ~/.zfunc/_picluster"
    )]
    #[command(display_order = 40)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write man pages (picluster.1, and picluster-COMMAND.1 for each command) into
    /// a directory.
    #[command(after_help = "Example:\n  picluster manpages /usr/share/man/man1")]
    #[command(display_order = 41)]
    Manpages {
        /// Where to write them (created if missing).
        dir: PathBuf,
    },
    /// Cancel jobs.
    #[command(
        after_help = "Examples:\n  picluster cancel j7\n  picluster cancel 3-7 last\n  picluster cancel all"
    )]
    #[command(display_order = 5)]
    Cancel {
        /// The jobs: j7 or 7, ranges (3-7), `last` (the newest job) or `all` (every
        /// queued or running job).
        #[arg(required = true, value_name = "JOB")]
        jobs: Vec<JobSelector>,
        #[command(flatten)]
        cluster: ClusterArg,
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Args, Debug)]
pub(super) struct ClusterArg {
    /// The cluster directory (made by `picluster init`); client commands use its
    /// admin.bundle.
    #[arg(
        long = "cluster",
        env = "PICLUSTER_CLUSTER",
        value_name = "DIR",
        required_unless_present = "bundle"
    )]
    pub(super) dir: Option<PathBuf>,
    /// A client bundle (from `picluster add-client`) to use instead of the cluster
    /// directory's admin.bundle (client commands only).
    #[arg(long = "bundle", env = "PICLUSTER_BUNDLE", value_name = "FILE")]
    pub(super) bundle: Option<PathBuf>,
}

/// The cluster directory alone, for commands that work on it (not through a
/// credential): they take no `--bundle`.
#[derive(Args, Debug)]
pub(super) struct ClusterDirArg {
    /// The cluster directory (made by `picluster init`).
    #[arg(long = "cluster", env = "PICLUSTER_CLUSTER", value_name = "DIR")]
    pub(super) dir: PathBuf,
}

#[derive(Args, Debug)]
pub(super) struct OutputArg {
    /// Machine-readable output: the last line of stdout is one JSON object.
    #[arg(long)]
    pub(super) json: bool,
}

/// Jobs named on the command line: `j7` or `7`, a range `3-7` (or `j3-j7`), `last`
/// (the newest job kept) or `all` (every queued or running job).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum JobSelector {
    /// One job.
    One(JobId),
    /// Every kept job with an id in the range (inclusive).
    Range(u64, u64),
    /// The newest job kept.
    Last,
    /// Every queued or running job.
    All,
}

impl std::str::FromStr for JobSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "last" => return Ok(JobSelector::Last),
            "all" => return Ok(JobSelector::All),
            _ => {}
        }
        if let Some((a, b)) = text.split_once('-') {
            let parse = |t: &str| {
                t.parse::<JobId>()
                    .map(|j| j.0)
                    .map_err(|_| format!("`{text}` is not a job range: use 3-7 or j3-j7"))
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b {
                return Err(format!(
                    "`{text}`: the range's first job comes after its last"
                ));
            }
            return Ok(JobSelector::Range(a, b));
        }
        text.parse::<JobId>()
            .map(JobSelector::One)
            .map_err(|e| format!("{e} (or a range 3-7, `last`, `all`)"))
    }
}
