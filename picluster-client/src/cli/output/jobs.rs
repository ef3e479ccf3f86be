//! Jobs as text: reports, the jobs table and its filters, one job in detail,
//! cancellations and removals. The JSON forms are the views in `views`.

use super::text::{grouped, mode_str, per_second, rate_text, solution_line, table, when};
use super::{CustomResult, Finished};
use picluster_core::wire::{JobDetail, JobReport, JobState, JobSummary};
use std::io::Write;

pub(super) fn write_report(out: &mut dyn Write, finished: &Finished) -> std::io::Result<()> {
    let report = &finished.report;
    if let Some(custom) = &finished.custom {
        return write_custom(out, report, custom);
    }
    let n = report.solutions.len();
    // In first mode, `others` counts what was found beside the one reported; in
    // all mode (`truncated`), what was found beyond the ones listed.
    let others = if report.others > 0 && !report.truncated {
        format!(
            " (the lowest of {} found before it stopped; --all lists every one)",
            report.others + 1
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "{} {}: {} solution{}{others}",
        report.job,
        report.state.as_str(),
        n,
        if n == 1 { "" } else { "s" }
    )?;
    if report.truncated {
        writeln!(
            out,
            "  ({} more were found; the lowest {n} are listed)",
            grouped(report.others)
        )?;
    }
    for s in &report.solutions {
        match report.finder(s) {
            Some(worker) => writeln!(out, "  {}  by {worker}", solution_line(s))?,
            None => writeln!(out, "  {}", solution_line(s))?,
        }
    }
    if let Some(error) = &report.error {
        writeln!(out, "  error: {error}")?;
    }
    write_totals(out, report)
}

/// A custom job's report: what its results cover and come to.
fn write_custom(
    out: &mut dyn Write,
    report: &JobReport,
    custom: &CustomResult,
) -> std::io::Result<()> {
    writeln!(
        out,
        "{} {}: {}, results cover {} of {} indices",
        report.job,
        report.state.as_str(),
        report.kind,
        grouped(custom.covered),
        grouped(report.keyspace)
    )?;
    if let Some(error) = &report.error {
        writeln!(out, "  error: {error}")?;
    }
    match (&custom.output, &custom.raw) {
        (Some(output), None) => writeln!(out, "  result: {output}")?,
        (None, None) => writeln!(out, "  no result: nothing was computed")?,
        (_, Some(raw)) => writeln!(
            out,
            "  {} result{} ({} bytes) of kernel \"{}\", which this picluster does not know: --json lists them; a program merges them with Client::wait_kernel, or a picluster built with cli::main_with prints the merged result",
            raw.len(),
            if raw.len() == 1 { "" } else { "s" },
            raw.iter().map(|o| o.data.len()).sum::<usize>(),
            custom.kernel
        )?,
    }
    write_totals(out, report)
}

/// The searched/rate line and the workers' table.
fn write_totals(out: &mut dyn Write, report: &JobReport) -> std::io::Result<()> {
    writeln!(
        out,
        "searched {} of {} ({:.1} %) in {:.2} s, {}",
        grouped(report.hashes),
        grouped(report.keyspace),
        100.0 * report.hashes as f64 / report.keyspace.max(1) as f64,
        report.elapsed_ms as f64 / 1000.0,
        rate_text(&report.kind, per_second(report.hashes, report.elapsed_ms)),
    )?;
    if !report.contributions.is_empty() {
        let rows: Vec<Vec<String>> = report
            .contributions
            .iter()
            .map(|c| {
                vec![
                    c.worker.clone(),
                    grouped(c.hashes),
                    format!(
                        "{:.1} %",
                        100.0 * c.hashes as f64 / report.hashes.max(1) as f64
                    ),
                    c.chunks.to_string(),
                ]
            })
            .collect();
        table(
            out,
            "  ",
            &["WORKER", ">SEARCHED", ">SHARE", ">CHUNKS"],
            &rows,
        )?;
    }
    Ok(())
}

/// What `picluster jobs` lists: the filters of its flags.
#[derive(Debug, Default)]
pub(in crate::cli) struct JobFilter {
    /// Finished jobs too.
    pub(in crate::cli) all: bool,
    pub(in crate::cli) state: Option<String>,
    pub(in crate::cli) client: Option<String>,
    pub(in crate::cli) last: Option<usize>,
}

impl JobFilter {
    fn wants_finished(&self) -> bool {
        self.all
            || self
                .state
                .as_deref()
                .is_some_and(|s| !matches!(s, "queued" | "running" | "live"))
    }

    fn passes(&self, j: &JobSummary) -> bool {
        let state = j.progress.state;
        let by_state = match self.state.as_deref() {
            None => self.all || !state.is_final(),
            Some("live") => !state.is_final(),
            Some("done") => state.is_final(),
            Some(name) => state.as_str() == name,
        };
        by_state && self.client.as_deref().is_none_or(|c| j.client == c)
    }

    /// The jobs that pass, by id (the newest `last` of them).
    pub(super) fn apply(&self, jobs: &[JobSummary]) -> Vec<JobSummary> {
        let mut shown: Vec<JobSummary> = jobs.iter().filter(|j| self.passes(j)).cloned().collect();
        if let Some(n) = self.last {
            let skip = shown.len().saturating_sub(n);
            shown.drain(..skip);
        }
        shown
    }
}

/// `picluster jobs`: the jobs its filters pass, and with `pruned`, how many
/// finished jobs `--prune` removed first.
pub(super) fn write_jobs(
    out: &mut dyn Write,
    shown: &[JobSummary],
    finished: usize,
    filter: &JobFilter,
    pruned: Option<u64>,
) -> std::io::Result<()> {
    if let Some(n) = pruned {
        let s = if n == 1 { "" } else { "s" };
        writeln!(out, "removed {n} finished job{s}")?;
    }
    if shown.is_empty() {
        let what = if filter.state.is_some() || filter.client.is_some() {
            "no jobs match"
        } else if filter.all {
            "no jobs"
        } else {
            "no queued or running jobs"
        };
        writeln!(out, "{what}")?;
    } else {
        jobs_table(out, shown)?;
    }
    if !filter.wants_finished() && filter.state.is_none() && finished > 0 {
        let s = if finished == 1 { "" } else { "s" };
        writeln!(
            out,
            "{finished} finished job{s} kept: `picluster jobs --all` lists them"
        )?;
    }
    Ok(())
}

pub(super) fn jobs_table(out: &mut dyn Write, jobs: &[JobSummary]) -> std::io::Result<()> {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let p = &j.progress;
            let state = match (&j.waiting, p.state) {
                (Some(_), JobState::Queued) => "queued*".to_string(),
                _ => p.state.as_str().to_string(),
            };
            vec![
                p.job.to_string(),
                state,
                j.kind.clone(),
                mode_str(j.mode).to_string(),
                j.priority.to_string(),
                j.client.clone(),
                format!("{:.1}%", 100.0 * p.hashes as f64 / p.keyspace.max(1) as f64),
                p.workers.to_string(),
                p.solutions.to_string(),
                when(Some(j.times.submitted_ms)),
                when(j.times.ended_ms),
                format!("{:.1}", p.elapsed_ms as f64 / 1000.0),
            ]
        })
        .collect();
    table(
        out,
        "",
        &[
            "JOB",
            "STATE",
            "KIND",
            "MODE",
            ">PRIORITY",
            "CLIENT",
            ">DONE",
            ">WORKERS",
            ">SOLUTIONS",
            "SUBMITTED (UTC)",
            "ENDED",
            ">SECONDS",
        ],
        &rows,
    )?;
    for j in jobs {
        if let (Some(why), JobState::Queued) = (&j.waiting, j.progress.state) {
            writeln!(out, "* {} waits: {why}", j.progress.job)?;
        }
    }
    Ok(())
}

/// `picluster show JOB`: one job in detail.
pub(super) fn write_detail(out: &mut dyn Write, detail: &JobDetail) -> std::io::Result<()> {
    let j = &detail.summary;
    let p = &j.progress;
    let finder = |i: usize| {
        detail
            .found_by
            .get(i)
            .and_then(|w| detail.workers.get(*w as usize))
            .map(|w| w.worker.as_str())
    };
    writeln!(
        out,
        "{} {} ({} {}, priority {}, client {})",
        p.job,
        p.state.as_str(),
        j.kind,
        mode_str(j.mode),
        j.priority,
        j.client
    )?;
    if let Some(why) = &j.waiting {
        writeln!(out, "  waiting: {why}")?;
    }
    writeln!(
        out,
        "  submitted {}  started {}  ended {}  (UTC)",
        when(Some(j.times.submitted_ms)),
        when(j.times.started_ms),
        when(j.times.ended_ms)
    )?;
    writeln!(
        out,
        "  searched {} of {} ({:.1} %) in {:.1} s, {}; {} not yet handed out",
        grouped(p.hashes),
        grouped(p.keyspace),
        100.0 * p.hashes as f64 / p.keyspace.max(1) as f64,
        p.elapsed_ms as f64 / 1000.0,
        rate_text(&j.kind, per_second(p.hashes, p.elapsed_ms)),
        grouped(detail.unassigned),
    )?;
    writeln!(
        out,
        "  chunks reassigned {}, stolen {}; {} solution{} so far",
        detail.reassigned,
        detail.steals,
        p.solutions,
        if p.solutions == 1 { "" } else { "s" }
    )?;
    if !detail.workers.is_empty() {
        let rows: Vec<Vec<String>> = detail
            .workers
            .iter()
            .map(|w| {
                vec![
                    w.worker.clone(),
                    grouped(w.hashes),
                    w.chunks.to_string(),
                    w.leases.to_string(),
                    w.solutions.to_string(),
                ]
            })
            .collect();
        table(
            out,
            "  ",
            &["WORKER", ">SEARCHED", ">CHUNKS", ">HOLDING", ">SOLUTIONS"],
            &rows,
        )?;
    }
    for (i, s) in detail.solutions.iter().enumerate() {
        match finder(i) {
            Some(w) => writeln!(out, "  {}  by {w}", solution_line(s))?,
            None => writeln!(out, "  {}", solution_line(s))?,
        }
    }
    if (p.solutions as usize) > detail.solutions.len() {
        writeln!(
            out,
            "  ... and {} more (`picluster wait {}` reports them all)",
            p.solutions as usize - detail.solutions.len(),
            p.job
        )?;
    }
    Ok(())
}

/// `picluster forget`: the jobs removed.
pub(super) fn write_forgotten(out: &mut dyn Write, ids: &[String]) -> std::io::Result<()> {
    writeln!(out, "forgot {}", ids.join(" "))
}

/// `picluster cancel`: each job's state afterwards.
pub(super) fn write_cancelled(out: &mut dyn Write, states: &[(&str, &str)]) -> std::io::Result<()> {
    if states.is_empty() {
        return writeln!(out, "no jobs to cancel");
    }
    for (job, state) in states {
        writeln!(out, "{job} {state}")?;
    }
    Ok(())
}
