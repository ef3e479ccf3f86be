//! Commands on workers: `status`, `drain`, `undrain`, `release`, `revoke`.

use super::with_client;
use crate::cli::args::{ClusterArg, OutputArg};
use crate::cli::output::{emit, utc, ChangedView, DrainedView, RevocationView, StatusView};
use crate::cli::CliError;
use crate::client::ClientError;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// `picluster status`, once or `--watch`ed.
pub(super) fn status(
    watch: bool,
    interval: f64,
    count: Option<u64>,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    let (bundle, etcd) = super::bundle_and_etcd(&cluster)?;
    let ha = || {
        let (bundle, etcd) = (bundle.clone(), etcd.clone());
        async move {
            let coordinators = super::ha::coordinators(&bundle).await;
            let members = match &etcd {
                Some(etcd) => super::ha::etcd_members(etcd).await,
                None => Vec::new(),
            };
            (coordinators, members)
        }
    };
    with_client(&cluster, |client| async move {
        if !watch {
            let status = client.status().await?;
            let credentials = client.credentials().await?;
            let miners = client.miners().await?;
            let (coordinators, members) = ha().await;
            let view = StatusView::new(&status, &credentials)
                .with_miners(&miners)
                .with_ha(coordinators, members);
            emit(out, &view, output.json)?;
            return Ok(ExitCode::SUCCESS);
        }
        // In place on a terminal (not with --json); snapshots otherwise.
        let in_place = !output.json && std::io::stdout().is_terminal();
        let mut shown = 0u64;
        loop {
            // A coordinator away (restarting, unreachable) is waited for: the watch
            // says so and goes on; what cannot pass by waiting ends it.
            let snapshot = async {
                Ok::<_, ClientError>((
                    client.status().await?,
                    client.credentials().await?,
                    client.miners().await?,
                ))
            };
            let (status, credentials, miners) = match snapshot.await {
                Ok(both) => both,
                Err(e) if e.is_retryable() => {
                    let line = format!("coordinator unreachable ({e}); reconnecting, Ctrl-C stops");
                    if output.json {
                        picluster_core::runtime::eprint_lossy(&format!("picluster: {line}"));
                    } else {
                        if in_place {
                            out.write_all(b"\x1b[H\x1b[2J")?;
                        }
                        writeln!(out, "{line}")?;
                        out.flush()?;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(std::time::Duration::from_secs_f64(interval.max(1.0))) => continue,
                        _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let mut frame = Vec::new();
            if !output.json {
                writeln!(
                    frame,
                    "{}  every {interval} s, Ctrl-C stops",
                    utc(std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64))
                )?;
            }
            let (coordinators, members) = ha().await;
            emit(
                &mut frame,
                &StatusView::new(&status, &credentials)
                    .with_miners(&miners)
                    .with_ha(coordinators, members),
                output.json,
            )?;
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
    })
}

/// `picluster drain` and `undrain`.
pub(super) fn drain(
    name: &str,
    reason: Option<&str>,
    cluster: &ClusterArg,
    json: bool,
    drain: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(cluster, |client| async move {
        let worker = client.drain_for(name, drain, reason).await?;
        emit(out, &DrainedView::from(&worker), json)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `picluster release`.
pub(super) fn release(
    name: String,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
        client.release(&name).await?;
        emit(out, &ChangedView::released(&name), output.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `picluster revoke`.
pub(super) fn revoke(
    name: String,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
        let revocation = client.revoke(&name).await?;
        emit(out, &RevocationView::new(&name, &revocation), output.json)?;
        Ok(ExitCode::SUCCESS)
    })
}
