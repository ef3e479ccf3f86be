//! Commands on the cluster directory and credentials: `init`, `coordinator`,
//! `add-client`, `add-worker`, `renew-coordinator`, `join`.

use super::{refuse_existing, write_bundle};
use crate::cli::args::{ClusterArg, ClusterDirArg, Listen};
use crate::cli::{config, CliError};
use picluster_core::coordinator::CoordinatorConfig;
use picluster_core::identity::Role;
use picluster_core::runtime::{background_runtime, shutdown_signal};
use picluster_core::service::ServeOptions;
use picluster_core::trust::{ClusterDir, Lifetimes};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// `picluster init`.
pub(super) fn init(
    dir: PathBuf,
    listen: Listen,
    advertise: Vec<String>,
    lifetimes: Lifetimes,
    etcd: Vec<String>,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    for url in &etcd {
        check_etcd_url(url)?;
    }
    let advertise = advertised(&listen, advertise);
    let mut cluster = ClusterDir::init_with(&dir, listen.address, &advertise, lifetimes)?;
    if !etcd.is_empty() {
        let cluster_id = cluster.use_etcd(etcd.clone())?.cluster_id.clone();
        writeln!(
            out,
            "the cluster's state lives in etcd at {} under /picluster/{cluster_id}/\n  add a standby: picluster add-coordinator NAME --cluster {} --listen ADDRESS:PORT --out NAME-coordinator",
            etcd.join(","),
            dir.display()
        )?;
    }
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

/// A listen address given by name is how peers reach it, unless told otherwise.
fn advertised(listen: &Listen, advertise: Vec<String>) -> Vec<String> {
    match (&listen.name, advertise.is_empty()) {
        (Some(name), true) => vec![name.clone()],
        _ => advertise,
    }
}

/// An etcd client URL: `http://HOST:PORT` or `https://HOST:PORT`.
fn check_etcd_url(url: &str) -> Result<(), CliError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| {
            CliError::Input(format!(
                "--etcd {url}: an etcd client URL starts with http:// or https:// (http://10.0.0.1:2379)"
            ))
        })?;
    picluster_core::trust::split_host_port(rest.trim_end_matches('/'))
        .map_err(|e| CliError::Input(format!("--etcd {url}: {e}")))?;
    Ok(())
}

/// `picluster add-coordinator`.
pub(super) fn add_coordinator(
    name: String,
    cluster: ClusterDirArg,
    listen: Listen,
    advertise: Vec<String>,
    dir: PathBuf,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let mut cluster_dir = ClusterDir::open(&cluster.dir)?;
    let advertise = advertised(&listen, advertise);
    let added = cluster_dir.add_coordinator(&name, listen.address, &advertise, &dir)?;
    writeln!(
        out,
        "made coordinator {name} in {} (listens on {}, reached at {})\n  coordinators of this cluster: {}\n  copy it to that host (it holds the CA key: keep it mode 0700) and start it there:\n    picluster coordinator --cluster DIR\n  bundles issued from now on name every coordinator; earlier ones still reach the first",
        dir.display(),
        added.config().listen,
        added.config().advertise.join(", "),
        added.config().coordinators.join(", "),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `picluster etcd-certs`.
pub(super) fn etcd_certs(
    cluster: ClusterDirArg,
    member: Option<String>,
    hosts: Vec<String>,
    dir: PathBuf,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    use picluster_core::trust::{EtcdCert, Validity};
    let cluster_dir = ClusterDir::open(&cluster.dir)?;
    let days = cluster_dir.config().lifetimes.coordinator_days;
    let (kind, name) = match &member {
        Some(name) if hosts.is_empty() => {
            return Err(CliError::Input(format!(
                "--member {name}: give the member's addresses with --host (its client and peer URLs' hosts)"
            )))
        }
        Some(name) => (EtcdCert::Member, name.as_str()),
        None => (EtcdCert::Client, "root"),
    };
    let credential = cluster_dir
        .ca()?
        .issue_etcd(kind, name, &hosts, Validity::days(days))?;
    let files = [
        (dir.join("ca.pem"), cluster_dir.ca_cert_pem()?, false),
        (dir.join(format!("{name}.pem")), credential.cert_pem, false),
        (dir.join(format!("{name}.key")), credential.key_pem, true),
    ];
    for (path, _, _) in &files {
        refuse_existing(path)?;
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::Input(format!("{}: {e}", dir.display())))?;
    for (path, text, private) in &files {
        picluster_core::trust::write_file(path, text.as_bytes(), *private)?;
    }
    writeln!(
        out,
        "wrote {} certificate {} (valid {days} days) and ca.pem in {}",
        if member.is_some() {
            "etcd member"
        } else {
            "etcd root client"
        },
        name,
        dir.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The coordinator's limits from its command line (`None`: from the file or the
/// default).
pub(super) struct Limits {
    pub(super) keep_finished: Option<u32>,
    pub(super) keep_finished_for: Option<u64>,
    pub(super) max_jobs_per_client: Option<u32>,
    pub(super) audit_percent: Option<f64>,
}

/// `picluster coordinator`: the configuration file's settings under the command
/// line's, then the coordinator in the foreground until SIGTERM or Ctrl-C.
pub(super) fn coordinator(
    cluster: Option<PathBuf>,
    config_file: Option<PathBuf>,
    limits: Limits,
    metrics: Option<SocketAddr>,
    new_store: bool,
) -> Result<ExitCode, CliError> {
    let (file, path) = picluster_core::runtime::config::find_config::<config::CoordinatorFile>(
        config_file.as_deref(),
        config::DEFAULT_COORDINATOR_CONFIG,
    )
    .map_err(|e| CliError::Input(e.to_string()))?;
    let named = |key: &str| {
        path.as_ref()
            .map_or_else(|| key.to_string(), |p| format!("{}: {key}", p.display()))
    };
    let keep_finished = limits.keep_finished.or(file.keep_finished).unwrap_or(1000);
    if !(1..=1_000_000).contains(&keep_finished) {
        return Err(CliError::Input(format!(
            "{}: {keep_finished} is not 1-1000000",
            named("keep_finished")
        )));
    }
    let keep_finished_for = limits
        .keep_finished_for
        .or(file.keep_finished_for)
        .unwrap_or(86_400);
    if keep_finished_for == 0 {
        return Err(CliError::Input(format!(
            "{}: 0 seconds keeps nothing; give at least 1",
            named("keep_finished_for")
        )));
    }
    let max_jobs_per_client = limits
        .max_jobs_per_client
        .or(file.max_jobs_per_client)
        .unwrap_or(1000);
    if !(1..=1_000_000).contains(&max_jobs_per_client) {
        return Err(CliError::Input(format!(
            "{}: {max_jobs_per_client} is not 1-1000000",
            named("max_jobs_per_client")
        )));
    }
    let audit_percent = limits.audit_percent.or(file.audit_percent).unwrap_or(2.0);
    if !(0.0..=100.0).contains(&audit_percent) {
        return Err(CliError::Input(format!(
            "{}: {audit_percent} is not a percentage from 0 to 100",
            named("audit_percent")
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
        max_live_jobs_per_client: max_jobs_per_client as usize,
        audit_fraction: audit_percent / 100.0,
        ..CoordinatorConfig::default()
    };
    // Check the directory before starting anything.
    let dir = ClusterDir::open(cluster.dir()?)?;
    if let Some(etcd) = picluster_core::service::etcd::EtcdOptions::of_cluster(&dir)? {
        let ha = picluster_core::service::etcd::HaOptions {
            etcd,
            advertise: dir.config().advertise[0].clone(),
            election: picluster_core::election::ElectionConfig::default(),
        };
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(picluster_core::service::etcd::serve_ha(
                cluster.dir()?,
                config,
                ServeOptions { metrics, new_store },
                ha,
                shutdown_signal(),
            ))?;
        return Ok(ExitCode::SUCCESS);
    }
    // One thread: the coordinator's state machine is single-threaded, and a
    // current-thread runtime wakes less (about 9 % of a core at 1,000 workers
    // against 10-11 % with a one-worker multi-thread runtime; BENCHMARKS.md).
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(picluster_core::service::serve_cluster_with(
            cluster.dir()?,
            config,
            ServeOptions { metrics, new_store },
            shutdown_signal(),
        ))?;
    Ok(ExitCode::SUCCESS)
}

/// `picluster add-client` and `add-worker`: a bundle for a new machine.
pub(super) fn add(
    role: Role,
    name: String,
    cluster: ClusterDirArg,
    path: PathBuf,
    replace: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let dir = ClusterDir::open(&cluster.dir)?;
    refuse_existing(&path)?;
    let bundle = dir.issue_bundle(role, &name, replace)?;
    match role {
        Role::Worker => write_bundle(out, &bundle, &path, "worker", "picluster-worker"),
        _ => write_bundle(out, &bundle, &path, "client machine", "picluster jobs"),
    }
}

/// `picluster renew-coordinator`.
pub(super) fn renew_coordinator(
    cluster: ClusterDirArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let dir = ClusterDir::open(&cluster.dir)?;
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

/// `picluster join`: a client credential from a join token.
pub(super) fn join(
    token: String,
    name: String,
    path: PathBuf,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let token: picluster_core::token::JoinToken = token
        .parse()
        .map_err(|e: picluster_core::token::TokenError| CliError::Input(e.to_string()))?;
    refuse_existing(&path)?;
    let bundle = background_runtime()?.block_on(crate::client::join_as_client(&token, &name))?;
    write_bundle(out, &bundle, &path, "client machine", "picluster jobs")
}
