//! Each command of `picluster`, by what it works on. [`run`] takes the parsed
//! command apart and calls the one function that carries it out; those functions
//! build the command's output as a typed view (`crate::cli::output`).
//!
//! # Layout
//! - this file: the dispatch, connecting (`with_client`), bundles written once.
//! - `cluster`: `init`, `coordinator`, `add-client`, `add-worker`,
//!   `renew-coordinator`, `join`.
//! - `jobs`: `submit`, `wait`, `jobs`, `show`, `cancel`, `forget`.
//! - `workers`: `status`, `drain`, `undrain`, `release`, `revoke`.
//! - `tokens`: `token create`, `token list`, `token revoke`.
//! - `mine`: `mine`, the Stratum bridge's settings and its run.

mod cluster;
mod ha;
mod jobs;
mod mine;
mod tokens;
mod workers;

use super::args::{ClusterArg, Command, JobSelector, SubmitKind};
use super::output::{self, JobFilter};
use super::{spec, Cli, CliError, Kernels};
use crate::client::Client;
use picluster_core::identity::Role;
use picluster_core::runtime::background_runtime;
use picluster_core::trust::{ClusterDir, Lifetimes, ADMIN_BUNDLE};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Carries out a parsed command, writing its output to `out`.
pub(super) fn run(cli: Cli, kernels: &Kernels, out: &mut dyn Write) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::EtcdCerts {
            cluster,
            member,
            hosts,
            root: _,
            out: dir,
        } => cluster::etcd_certs(cluster, member, hosts, dir, out),
        Command::AddCoordinator {
            name,
            cluster,
            listen,
            advertise,
            out: dir,
        } => cluster::add_coordinator(name, cluster, listen, advertise, dir, out),
        Command::Init {
            dir,
            listen,
            advertise,
            cert_days,
            coordinator_days,
            ca_days,
            etcd,
        } => {
            let lifetimes = Lifetimes {
                ca_days,
                coordinator_days,
                peer_days: cert_days,
            };
            cluster::init(dir, listen, advertise, lifetimes, etcd, out)
        }
        Command::Coordinator {
            cluster,
            config,
            keep_finished,
            keep_finished_for,
            max_jobs_per_client,
            audit_percent,
            metrics,
            new_store,
        } => {
            let limits = cluster::Limits {
                keep_finished,
                keep_finished_for,
                max_jobs_per_client,
                audit_percent,
            };
            cluster::coordinator(cluster, config, limits, metrics, new_store)
        }
        Command::AddClient {
            name,
            cluster,
            out: path,
            replace,
        } => cluster::add(Role::Client, name, cluster, path, replace, out),
        Command::AddWorker {
            name,
            cluster,
            out: path,
            replace,
        } => cluster::add(Role::Worker, name, cluster, path, replace, out),
        Command::RenewCoordinator { cluster } => cluster::renew_coordinator(cluster, out),
        Command::Join {
            token,
            name,
            out: path,
        } => cluster::join(token, name, path, out),
        Command::Submit {
            kind: SubmitKind::Sha256d(args),
        } => jobs::submit(spec::sha256d_specs(&args)?, &args.common, out),
        Command::Submit {
            kind: SubmitKind::Hashcash(args),
        } => jobs::submit(vec![spec::hashcash_spec(&args)?], &args.common, out),
        Command::Submit {
            kind: SubmitKind::Preimage(args),
        } => jobs::submit(spec::preimage_specs(&args)?, &args.common, out),
        Command::Wait {
            jobs,
            cluster,
            output,
        } => jobs::wait(jobs, cluster, output, kernels, out),
        Command::Mine {
            pool,
            fallback,
            user,
            password,
            priority,
            config,
            cluster,
        } => {
            let given = mine::Given {
                pool,
                fallback,
                user,
                password,
                priority,
            };
            let options = mine::options(given, config.as_deref())?;
            mine::run(options, cluster, out)
        }
        Command::Jobs {
            job: Some(job),
            cluster,
            output,
            ..
        } => jobs::show(JobSelector::One(job), &cluster, output.json, out),
        Command::Jobs {
            job: None,
            all,
            state,
            client,
            last,
            prune,
            cluster,
            output,
        } => {
            let filter = JobFilter {
                all,
                state,
                client,
                last,
            };
            jobs::list(filter, prune, cluster, output, out)
        }
        Command::Show {
            job,
            cluster,
            output,
        } => jobs::show(job, &cluster, output.json, out),
        Command::Cancel {
            jobs,
            cluster,
            output,
        } => jobs::cancel(jobs, cluster, output, out),
        Command::Forget {
            jobs,
            cluster,
            output,
        } => jobs::forget(jobs, cluster, output, out),
        Command::Status {
            watch,
            interval,
            count,
            cluster,
            output,
        } => workers::status(watch, interval, count, cluster, output, out),
        Command::Drain {
            name,
            reason,
            cluster,
            output,
        } => workers::drain(&name, reason.as_deref(), &cluster, output.json, true, out),
        Command::Undrain {
            name,
            cluster,
            output,
        } => workers::drain(&name, None, &cluster, output.json, false, out),
        Command::Release {
            name,
            cluster,
            output,
        } => workers::release(name, cluster, output, out),
        Command::Revoke {
            name,
            cluster,
            output,
        } => workers::revoke(name, cluster, output, out),
        Command::Token { command } => tokens::token(command, out),
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
    }
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

/// A bundle is never written over an existing file: checked before a name is
/// recorded as issued.
fn refuse_existing(path: &Path) -> Result<(), CliError> {
    if path.exists() {
        return Err(picluster_core::trust::ClusterError::FileExists(path.to_path_buf()).into());
    }
    Ok(())
}

/// Saves a new bundle (never overwriting) and says where it goes and how it is used.
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
/// The bundle a client command uses, and the cluster's etcd when the command runs
/// on a cluster directory whose state is in etcd.
fn bundle_and_etcd(
    cluster: &ClusterArg,
) -> Result<
    (
        picluster_core::trust::Bundle,
        Option<picluster_core::service::etcd::EtcdOptions>,
    ),
    CliError,
> {
    match &cluster.bundle {
        Some(path) => Ok((picluster_core::trust::Bundle::load(path)?, None)),
        None => {
            let dir = ClusterDir::open(&cluster_dir(cluster.dir()?)?)?;
            let etcd = picluster_core::service::etcd::EtcdOptions::of_cluster(&dir)?;
            Ok((dir.admin_bundle()?, etcd))
        }
    }
}

pub(super) fn with_client<'o, F, Fut>(cluster: &ClusterArg, f: F) -> Result<ExitCode, CliError>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode, CliError>> + 'o,
{
    let (bundle, _) = bundle_and_etcd(cluster)?;
    background_runtime()?.block_on(async {
        let client = output::connecting(&bundle.coordinator, Client::connect(&bundle)).await?;
        let closer = client.clone();
        let result = f(client).await;
        closer.shutdown().await;
        result
    })
}
