//! `picluster mine`: the Stratum bridge's settings (options, variables, the
//! settings file) and its run until Ctrl-C or SIGTERM.

use super::with_client;
use crate::cli::args::ClusterArg;
use crate::cli::CliError;
use crate::mine::{
    mine, MineError, MineOptions, PoolStats, PoolUrl, MINING_PRIORITY, PROBE_PRIMARY,
};
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

/// What the command line (and environment) gave.
pub(super) struct Given {
    pub(super) pool: Option<String>,
    pub(super) fallback: Vec<String>,
    pub(super) user: Option<String>,
    pub(super) password: Option<String>,
    pub(super) priority: Option<i32>,
}

/// The settings file.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    pool: Option<String>,
    #[serde(default)]
    fallback: Vec<String>,
    user: Option<String>,
    password: Option<String>,
    priority: Option<i32>,
}

/// The bridge's options: the command line over the settings file.
pub(super) fn options(given: Given, config: Option<&Path>) -> Result<MineOptions, CliError> {
    let file = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Input(format!("mine settings {}: {e}", path.display())))?;
            toml::from_str::<File>(&text).map_err(|e| {
                CliError::Input(format!("mine settings {}: {}", path.display(), e.message()))
            })?
        }
        None => File::default(),
    };
    let in_file = |key: &str| match config {
        Some(path) => format!(" (or `{key}` in {})", path.display()),
        None => format!(" (or `{key}` in a --config file)"),
    };
    let pool = given.pool.or(file.pool).ok_or_else(|| {
        CliError::Input(format!(
            "no pool: give --pool stratum+tcp://HOST:PORT{}",
            in_file("pool")
        ))
    })?;
    let fallback = if given.fallback.is_empty() {
        file.fallback
    } else {
        given.fallback
    };
    let pools = std::iter::once(pool)
        .chain(fallback)
        .map(|url| url.parse::<PoolUrl>().map_err(CliError::Input))
        .collect::<Result<Vec<_>, _>>()?;
    let user = given.user.or(file.user).ok_or_else(|| {
        CliError::Input(format!("no pool user: give --user NAME{}", in_file("user")))
    })?;
    Ok(MineOptions {
        pools,
        user,
        password: given
            .password
            .or(file.password)
            .unwrap_or_else(|| "x".into()),
        priority: given.priority.or(file.priority).unwrap_or(MINING_PRIORITY),
        probe_primary: PROBE_PRIMARY,
    })
}

/// Mines until Ctrl-C or SIGTERM; then prints the pool statistics as one JSON line.
pub(super) fn run(
    options: MineOptions,
    cluster: ClusterArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let stats = Arc::new(Mutex::new(PoolStats::default()));
    let kept = stats.clone();
    let result = with_client(&cluster, |client| async move {
        mine(
            client,
            options,
            kept,
            picluster_core::runtime::shutdown_signal(),
        )
        .await
        .map_err(|e| match e {
            // A pool that refuses the user: the settings must change.
            MineError::Session(e) => CliError::Input(e.to_string()),
            MineError::Cluster(e) => CliError::Client(e),
        })?;
        Ok(ExitCode::SUCCESS)
    });
    let stats = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    writeln!(out, "{}", serde_json::to_string(&stats).unwrap_or_default())?;
    result
}
