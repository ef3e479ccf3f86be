//! The cluster as text: the status tables, a drained worker, join tokens. The JSON
//! forms are the views in `views`.

use super::jobs::jobs_table;
use super::text::{duration_text, rate_text, table, utc};
use picluster_core::identity::Role;
use picluster_core::wire::{ClusterStatus, CredentialReport, TokenInfo, WorkerState, WorkerStatus};
use std::io::Write;

/// What a worker's rate is measured on: the kind of the job it works on (or
/// SHA-256d, its benchmark, when idle).
pub(super) fn worker_kind<'a>(w: &WorkerStatus, status: &'a ClusterStatus) -> &'a str {
    w.jobs
        .first()
        .and_then(|id| status.jobs.iter().find(|j| j.progress.job == *id))
        .map_or("sha256d", |j| j.kind.as_str())
}

/// Whether a worker's rate counts in the cluster's: it is taking work.
fn counts_in_total(w: &WorkerStatus) -> bool {
    matches!(w.state, WorkerState::Idle | WorkerState::Busy)
}

/// `picluster status`: tables of workers and jobs, or one JSON object.
pub(super) fn write_status(
    out: &mut dyn Write,
    status: &ClusterStatus,
    credentials: &CredentialReport,
) -> std::io::Result<()> {
    let expires = |name: &str| {
        credentials
            .connected
            .iter()
            .find(|c| c.name == name && c.role == Role::Worker)
            .map_or_else(|| "-".to_string(), |c| utc(c.expires_ms)[..10].to_string())
    };
    let connected = status.workers.iter().filter(|w| w.worker.0 != 0).count();
    let working: Vec<&WorkerStatus> = status
        .workers
        .iter()
        .filter(|w| counts_in_total(w))
        .collect();
    let mut totals: Vec<String> = Vec::new();
    let hash: f64 = working
        .iter()
        .filter(|w| worker_kind(w, status) == "sha256d")
        .fold(0.0, |sum, w| sum + w.rate_hps as f64);
    totals.push(rate_text("sha256d", hash));
    let other: f64 = working
        .iter()
        .filter(|w| worker_kind(w, status) != "sha256d")
        .fold(0.0, |sum, w| sum + w.rate_hps as f64);
    if other > 0.0 {
        totals.push(rate_text("other", other));
    }
    writeln!(
        out,
        "{connected} worker{} connected, {} taking work: {}",
        if connected == 1 { "" } else { "s" },
        working.len(),
        totals.join(" + ")
    )?;
    let rows: Vec<Vec<String>> = status
        .workers
        .iter()
        .map(|w| {
            let present = w.worker.0 != 0;
            let dash = |s: String| if present { s } else { "-".to_string() };
            vec![
                w.name.clone(),
                w.state.as_str().to_string(),
                dash(w.threads.to_string()),
                dash(w.arch.clone()),
                dash(w.kernel_impl.clone()),
                dash(rate_text(worker_kind(w, status), w.rate_hps as f64)),
                match (w.millicelsius, w.throttled) {
                    (Some(m), Some(flags)) if flags & 0b1110 != 0 => {
                        format!("{:.1}°C throttled", f64::from(m) / 1000.0)
                    }
                    (Some(m), _) => format!("{:.1}°C", f64::from(m) / 1000.0),
                    (None, _) => "-".to_string(),
                },
                dash(duration_text(w.silent_ms as f64 / 1000.0) + " ago"),
                if w.jobs.is_empty() {
                    "-".to_string()
                } else {
                    w.jobs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                },
                if w.kernels.is_empty() {
                    "-".to_string()
                } else {
                    w.kernels.join(",")
                },
                expires(&w.name),
                w.drain_reason.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        out,
        "",
        &[
            "WORKER",
            "STATE",
            ">THREADS",
            "ARCH",
            "IMPL",
            ">RATE",
            ">TEMP",
            "SEEN",
            "JOBS",
            "KERNELS",
            "CERT UNTIL",
            "NOTE",
        ],
        &rows,
    )?;
    for r in &credentials.revoked {
        writeln!(
            out,
            "{}  revoked: certificates issued before {} are refused",
            r.name,
            utc(r.revoked_ms)
        )?;
    }
    if !status.jobs.is_empty() {
        writeln!(out)?;
        jobs_table(out, &status.jobs)?;
    }
    Ok(())
}

/// `picluster drain` and `undrain`: the worker's state afterwards.
pub(super) fn write_drained(out: &mut dyn Write, worker: &WorkerStatus) -> std::io::Result<()> {
    let state = worker.state.as_str();
    let away = if worker.worker.0 == 0 {
        " (not connected: the mark waits for it)"
    } else if worker.state == WorkerState::Draining {
        " (until its current chunk ends)"
    } else {
        ""
    };
    match &worker.drain_reason {
        Some(reason) => writeln!(out, "{} {state}{away}: {reason}", worker.name),
        None => writeln!(out, "{} {state}{away}", worker.name),
    }
}

/// `picluster token list`.
pub(super) fn write_tokens(out: &mut dyn Write, tokens: &[TokenInfo]) -> std::io::Result<()> {
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
