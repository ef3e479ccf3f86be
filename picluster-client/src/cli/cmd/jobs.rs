//! Commands on jobs: `submit`, `wait`, `jobs`, `show`, `cancel`, `forget`.

use super::with_client;
use crate::cli::args::{ClusterArg, JobSelector, OutputArg, SubmitCommon};
use crate::cli::output::{
    self, emit, DetailView, ForgottenView, JobFilter, JobStatesView, JobsView,
};
use crate::cli::{CliError, Kernels, EXIT_INTERRUPTED};
use crate::client::Client;
use picluster_core::ids::JobId;
use picluster_core::job::JobSpec;
use picluster_core::wire::Refusal;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Submits a validated job, then waits for it with a progress bar (or returns at once
/// with `--detach`).
pub(super) fn submit(
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
            emit(out, &JobStatesView::queued(&ids), json)?;
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

/// `picluster wait`: follows each job to its report.
pub(super) fn wait(
    jobs: Vec<JobSelector>,
    cluster: ClusterArg,
    output: OutputArg,
    kernels: &Kernels,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
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
    })
}

/// `picluster jobs`: the jobs its filters pass (after `--prune`).
pub(super) fn list(
    filter: JobFilter,
    prune: bool,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
        let pruned = if prune {
            Some(client.prune().await?)
        } else {
            None
        };
        let listed = client.jobs().await?;
        emit(out, &JobsView::new(&listed, &filter, pruned), output.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

pub(super) fn show(
    job: JobSelector,
    cluster: &ClusterArg,
    json: bool,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(cluster, |client| async move {
        let ids = resolve_jobs(&client, &[job], "show").await?;
        for id in ids {
            let detail = client.show(id).await?;
            emit(out, &DetailView::from(&detail), json)?;
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `picluster cancel`.
pub(super) fn cancel(
    jobs: Vec<JobSelector>,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
        let ids = resolve_jobs(&client, &jobs, "cancel").await?;
        let mut summaries = Vec::with_capacity(ids.len());
        // A job gone meanwhile (dropped by retention, forgotten) is skipped, not
        // the end of the list; one named on its own is reported after the others.
        let mut missing = Vec::new();
        for job in ids {
            match client.cancel(job).await {
                Ok(summary) => summaries.push(summary),
                Err(crate::client::ClientError::Refused(Refusal::UnknownJob(gone))) => {
                    if jobs.contains(&JobSelector::One(gone)) {
                        missing.push(gone);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        emit(out, &JobStatesView::cancelled(&summaries), output.json)?;
        if missing.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let names: Vec<String> = missing.iter().map(ToString::to_string).collect();
        Err(CliError::Input(format!(
            "no job {} (the coordinator keeps no such job); {} other{} cancelled",
            names.join(", "),
            summaries.len(),
            if summaries.len() == 1 {
                " was"
            } else {
                "s were"
            }
        )))
    })
}

/// `picluster forget`.
pub(super) fn forget(
    jobs: Vec<JobId>,
    cluster: ClusterArg,
    output: OutputArg,
    out: &mut dyn Write,
) -> Result<ExitCode, CliError> {
    with_client(&cluster, |client| async move {
        for job in &jobs {
            client.forget(*job).await?;
        }
        emit(out, &ForgottenView::new(&jobs), output.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C while following a job: it keeps running; say how to get back to it.
pub(super) fn interrupted(job: JobId) -> Result<ExitCode, CliError> {
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
