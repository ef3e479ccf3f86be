//! Output for people (tables, a progress bar on a terminal) and for scripts
//! (`--json`: the last line of stdout is one JSON object).

use super::{CliError, EXIT_CANCELLED};
use crate::client::{Client, JobEvent};
use picluster_core::hex;
use picluster_core::identity::Role;
use picluster_core::ids::JobId;
use picluster_core::job::SearchMode;
use picluster_core::kernel::{Solution, SolutionDetail};
use picluster_core::wire::{
    ClusterStatus, CredentialReport, JobProgress, JobReport, JobState, JobSummary, TokenInfo,
    WorkerStatus,
};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Follows a job to its report with a progress bar on a terminal. If the coordinator
/// goes away, says so in one line on stderr and carries on once it is back.
pub(super) async fn wait_with_bar(client: &Client, job: JobId) -> Result<JobReport, CliError> {
    let mut watch = client.watch(job).await?;
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
    let show = |p: &JobProgress| {
        bar.set_position(p.hashes);
        bar.set_message(format!("{:.2} MH/s", rate_mhs(p.hashes, p.elapsed_ms)));
    };
    show(&watch.initial);
    let mut report = None;
    while let Some(event) = watch.next().await {
        match event {
            JobEvent::Progress(p) => show(&p),
            JobEvent::Reconnecting => bar.suspend(|| {
                picluster_core::service::eprint_lossy(&format!(
                    "picluster: lost the connection to the coordinator at {}; reconnecting to follow {job}",
                    client.coordinator()
                ));
            }),
            JobEvent::Finished(r) => report = Some(r),
            _ => {}
        }
    }
    bar.finish_and_clear();
    match report {
        Some(report) => Ok(report),
        None => Err(watch.finish(|_| {}).await.err().map_or(
            CliError::Client(crate::client::ClientError::Disconnected),
            CliError::Client,
        )),
    }
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

pub(super) fn print_report(
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

/// `picluster jobs`: a table, or `{"jobs": [...]}`.
/// `picluster jobs`: the live jobs, or with `all` every job kept; with `pruned`,
/// how many finished jobs `--prune` removed first.
pub(super) fn print_jobs(
    out: &mut dyn Write,
    jobs: &[JobSummary],
    all: bool,
    pruned: Option<u64>,
    json: bool,
) -> std::io::Result<()> {
    let finished = jobs.iter().filter(|j| j.progress.state.is_final()).count();
    let shown: Vec<JobSummary> = jobs
        .iter()
        .filter(|j| all || !j.progress.state.is_final())
        .cloned()
        .collect();
    if json {
        let list: Vec<Value> = shown.iter().map(job_json).collect();
        let mut doc = json!({ "jobs": list });
        if let Some(n) = pruned {
            doc["pruned"] = json!(n);
        }
        return writeln!(out, "{doc}");
    }
    if let Some(n) = pruned {
        let s = if n == 1 { "" } else { "s" };
        writeln!(out, "removed {n} finished job{s}")?;
    }
    if shown.is_empty() {
        let what = if all {
            "no jobs"
        } else {
            "no queued or running jobs"
        };
        writeln!(out, "{what}")?;
    } else {
        jobs_table(out, &shown)?;
    }
    if !all && finished > 0 {
        let s = if finished == 1 { "" } else { "s" };
        writeln!(
            out,
            "{finished} finished job{s} kept: `picluster jobs --all` lists them"
        )?;
    }
    Ok(())
}

/// `picluster forget`: the jobs removed.
pub(super) fn print_forgotten(
    out: &mut dyn Write,
    jobs: &[JobId],
    json: bool,
) -> std::io::Result<()> {
    let ids: Vec<String> = jobs.iter().map(ToString::to_string).collect();
    if json {
        writeln!(out, "{}", json!({ "forgotten": ids }))
    } else {
        writeln!(out, "forgot {}", ids.join(" "))
    }
}

/// `picluster cancel`: the job's state afterwards.
pub(super) fn print_cancelled(
    out: &mut dyn Write,
    summary: &JobSummary,
    json: bool,
) -> std::io::Result<()> {
    let (job, state) = (summary.progress.job, summary.progress.state.as_str());
    if json {
        writeln!(out, "{}", json!({"job": job.to_string(), "state": state}))
    } else {
        writeln!(out, "{job} {state}")
    }
}

/// `picluster drain` and `undrain`: the worker's state afterwards.
pub(super) fn print_drained(
    out: &mut dyn Write,
    worker: &WorkerStatus,
    json: bool,
) -> std::io::Result<()> {
    let state = worker.state.as_str();
    if json {
        writeln!(
            out,
            "{}",
            json!({"worker": worker.name, "state": state, "leases": worker.leases})
        )
    } else {
        writeln!(out, "{} {state}", worker.name)
    }
}

fn jobs_table(out: &mut dyn Write, jobs: &[JobSummary]) -> std::io::Result<()> {
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

fn status_json(status: &ClusterStatus, credentials: &CredentialReport) -> Value {
    json!({
        "certificates": credentials.connected.iter().map(|c| json!({
            "name": c.name, "role": c.role.as_str(), "issued_ms": c.issued_ms,
            "expires_ms": c.expires_ms,
        })).collect::<Vec<_>>(),
        "revoked": credentials.revoked.iter().map(|r| json!({
            "name": r.name, "state": "revoked", "revoked_ms": r.revoked_ms,
        })).collect::<Vec<_>>(),
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

/// `picluster status`: tables of workers and jobs, or one JSON object.
pub(super) fn print_status(
    out: &mut dyn Write,
    status: &ClusterStatus,
    credentials: &CredentialReport,
    json: bool,
) -> std::io::Result<()> {
    if json {
        return writeln!(out, "{}", status_json(status, credentials));
    }
    let expires = |name: &str| {
        credentials
            .connected
            .iter()
            .find(|c| c.name == name && c.role == Role::Worker)
            .map_or_else(|| "-".to_string(), |c| utc(c.expires_ms)[..10].to_string())
    };
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
        "{:<20} {:<8} {:>7} {:<8} {:<12} {:>9}  {:<10}",
        "WORKER", "STATE", "THREADS", "ARCH", "IMPL", "MH/S", "CERT UNTIL"
    )?;
    for w in &status.workers {
        writeln!(
            out,
            "{:<20} {:<8} {:>7} {:<8} {:<12} {:>9.2}  {:<10}",
            w.name,
            w.state.as_str(),
            w.threads,
            w.arch,
            w.kernel_impl,
            w.rate_hps as f64 / 1e6,
            expires(&w.name),
        )?;
    }
    for r in &credentials.revoked {
        writeln!(
            out,
            "{:<20} {:<8} certificates issued before {} are refused",
            r.name,
            "revoked",
            utc(r.revoked_ms)
        )?;
    }
    if !status.jobs.is_empty() {
        writeln!(out)?;
        jobs_table(out, &status.jobs)?;
    }
    Ok(())
}

/// `picluster token list`.
pub(super) fn print_tokens(
    out: &mut dyn Write,
    tokens: &[TokenInfo],
    json: bool,
) -> std::io::Result<()> {
    if json {
        let list: Vec<Value> = tokens
            .iter()
            .map(|t| {
                json!({"id": t.id, "role": t.role.as_str(), "created_by": t.created_by,
                    "created_ms": t.created_ms, "expires_ms": t.expires_ms,
                    "uses_left": t.uses_left, "replace": t.replace})
            })
            .collect();
        return writeln!(out, "{}", json!({ "tokens": list }));
    }
    writeln!(
        out,
        "{:<14} {:<7} {:>5} {:<8} {:<20} {:<12}",
        "ID", "ROLE", "USES", "REPLACE", "EXPIRES (UTC)", "BY"
    )?;
    for t in tokens {
        writeln!(
            out,
            "{:<14} {:<7} {:>5} {:<8} {:<20} {:<12}",
            t.id,
            t.role.as_str(),
            t.uses_left,
            if t.replace { "yes" } else { "no" },
            utc(t.expires_ms),
            t.created_by
        )?;
    }
    Ok(())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` UTC (the civil-from-days algorithm).
pub(super) fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
