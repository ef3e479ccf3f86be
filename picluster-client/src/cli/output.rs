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
    ChunkOutput, ClusterStatus, CredentialReport, JobDetail, JobProgress, JobReport, JobState,
    JobSummary, JobTimes, TokenInfo, WorkerState, WorkerStatus,
};
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// `-q`: no progress bar or hints on stderr.
pub(super) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-q` was given.
pub(super) fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

/// Whether stderr gets a progress bar (a terminal, and not `-q`).
pub(super) fn chatty() -> bool {
    !quiet() && std::io::stderr().is_terminal()
}

/// Waits for `connect`; on a terminal, a spinner says what it waits for once it
/// takes longer than a moment (a coordinator that does not answer takes seconds).
pub(super) async fn connecting<T>(
    coordinator: &str,
    connect: impl std::future::Future<Output = T>,
) -> T {
    tokio::pin!(connect);
    tokio::select! {
        done = &mut connect => done,
        () = tokio::time::sleep(std::time::Duration::from_millis(300)), if chatty() => {
            let spinner = indicatif::ProgressBar::new_spinner();
            spinner.set_message(format!("connecting to the coordinator at {coordinator}"));
            spinner.enable_steady_tick(std::time::Duration::from_millis(100));
            let done = connect.await;
            spinner.finish_and_clear();
            done
        }
    }
}

/// How following a job ended.
pub(super) enum Followed {
    /// Its report, and a custom job's results.
    Report(Box<JobReport>, Vec<ChunkOutput>),
    /// Ctrl-C: the job keeps running.
    Interrupted,
}

/// Follows a job to its report with a progress bar on a terminal: searched of total,
/// rate and ETA (both from what was searched since this command attached, so that a
/// late `wait` does not average over time it did not see), workers on it, solutions
/// so far, and time since submission. If the coordinator goes away, says so in one
/// line on stderr and carries on once it is back. Ctrl-C stops following (the job
/// keeps running) when `interruptible`.
pub(super) async fn follow(
    client: &Client,
    job: JobId,
    interruptible: bool,
) -> Result<Followed, CliError> {
    let mut watch = client.watch(job).await?;
    let terminal = chatty();
    // The unit of the rate follows the job's kind; without it, plain indices.
    let kind = if terminal {
        client
            .show(job)
            .await
            .map(|d| d.summary.kind)
            .unwrap_or_default()
    } else {
        String::new()
    };
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(watch.initial.keyspace),
        if terminal {
            indicatif::ProgressDrawTarget::stderr()
        } else {
            indicatif::ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{prefix} [{bar:24}] {percent:>3}%  {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(job.to_string());
    let attached = (std::time::Instant::now(), watch.initial.hashes);
    let show = |p: &JobProgress| {
        bar.set_position(p.hashes);
        bar.set_message(bar_message(&kind, p, attached));
    };
    show(&watch.initial);
    let mut report = None;
    let mut outputs = Vec::new();
    let interrupt = async {
        if interruptible {
            let _ = tokio::signal::ctrl_c().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupt);
    loop {
        let event = tokio::select! {
            event = watch.next() => event,
            () = &mut interrupt => {
                bar.finish_and_clear();
                return Ok(Followed::Interrupted);
            }
        };
        let Some(event) = event else { break };
        match event {
            JobEvent::Progress(p) => show(&p),
            JobEvent::Outputs(batch) => outputs.extend(batch),
            JobEvent::Reconnecting => bar.suspend(|| {
                // A new watch sends every result again.
                outputs.clear();
                picluster_core::runtime::eprint_lossy(&format!(
                    "picluster: lost the connection to the coordinator at {}; reconnecting to follow {job}",
                    client.coordinator()
                ));
            }),
            JobEvent::Finished(r) => report = Some(r),
        }
    }
    bar.finish_and_clear();
    match report {
        Some(report) => Ok(Followed::Report(report, outputs)),
        None => Err(watch.finish(|_| {}).await.err().map_or(
            CliError::Client(crate::client::ClientError::Disconnected),
            CliError::Client,
        )),
    }
}

/// The progress bar's text: searched/total, rate and ETA since attaching, workers,
/// solutions, time since submission.
fn bar_message(kind: &str, p: &JobProgress, attached: (std::time::Instant, u64)) -> String {
    let seen = attached.0.elapsed().as_secs_f64();
    let rate = if seen > 0.5 {
        p.hashes.saturating_sub(attached.1) as f64 / seen
    } else {
        0.0
    };
    let left = p.keyspace.saturating_sub(p.hashes);
    let eta = if rate > 0.0 {
        duration_text(left as f64 / rate)
    } else {
        "?".to_string()
    };
    format!(
        "{}/{}  {}  ETA {eta}  {} worker{}  {} solution{}  {} elapsed",
        si(p.hashes),
        si(p.keyspace),
        if kind.is_empty() {
            format!("{:.2} M/s", rate / 1e6)
        } else {
            rate_text(kind, rate)
        },
        p.workers,
        if p.workers == 1 { "" } else { "s" },
        p.solutions,
        if p.solutions == 1 { "" } else { "s" },
        duration_text(p.elapsed_ms as f64 / 1000.0),
    )
}

/// `1.23 G` style.
fn si(n: u64) -> String {
    let n = n as f64;
    for (scale, unit) in [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")] {
        if n >= scale {
            return format!("{:.2} {unit}", n / scale);
        }
    }
    format!("{n}")
}

/// `1h02m`, `3m20s`, `12s`.
pub(super) fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// A rate in the unit of a job's kind: SHA-256d hashes per second (`MH/s`), or
/// keyspace indices per second for every other kind (their cost per index differs,
/// so they are never added to a hash rate).
pub(super) fn rate_text(kind: &str, per_second: f64) -> String {
    if kind == "sha256d" {
        format!("{:.2} MH/s", per_second / 1e6)
    } else if per_second >= 1e6 {
        format!("{:.2} M indices/s", per_second / 1e6)
    } else {
        format!("{:.0} indices/s", per_second)
    }
}

fn per_second(count: u64, elapsed_ms: u64) -> f64 {
    if elapsed_ms == 0 {
        0.0
    } else {
        count as f64 * 1000.0 / elapsed_ms as f64
    }
}

/// `1234567` as `1,234,567`.
pub(super) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn times_json(t: &JobTimes) -> Value {
    json!({
        "submitted_ms": t.submitted_ms,
        "started_ms": t.started_ms,
        "ended_ms": t.ended_ms,
    })
}

fn report_json(report: &JobReport) -> Value {
    let rate = per_second(report.hashes, report.elapsed_ms);
    json!({
        "job": report.job.to_string(),
        "state": report.state.as_str(),
        "kind": report.kind,
        "solutions": report.solutions.iter().map(|s| {
            let mut v = solution_json(s);
            v["worker"] = json!(report.finder(s));
            v
        }).collect::<Vec<_>>(),
        "others": report.others,
        "truncated": report.truncated,
        "hashes": report.hashes,
        "keyspace": report.keyspace,
        "seconds": report.elapsed_ms as f64 / 1000.0,
        "rate": rate,
        "rate_unit": if report.kind == "sha256d" { "H/s" } else { "indices/s" },
        "workers": report.contributions.iter().map(|c| json!({
            "name": c.worker,
            "hashes": c.hashes,
            "chunks": c.chunks,
        })).collect::<Vec<_>>(),
        "times": times_json(&report.times),
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

/// A job's end as a command shows it: its report, and for a custom job what its
/// results come to.
#[derive(Debug)]
pub(super) struct Finished {
    pub(super) report: JobReport,
    pub(super) custom: Option<CustomResult>,
}

/// A custom job's results.
#[derive(Debug)]
pub(super) struct CustomResult {
    /// The kernel's name.
    pub(super) kernel: String,
    /// Indices its results cover.
    pub(super) covered: u64,
    /// The merged result as JSON, when this command knows the kernel (`None` when
    /// nothing was computed).
    pub(super) output: Option<Value>,
    /// The results as they came, when it does not.
    pub(super) raw: Option<Vec<ChunkOutput>>,
}

fn custom_json(doc: &mut Value, c: &CustomResult) {
    doc["kernel"] = json!(c.kernel);
    doc["covered"] = json!(c.covered);
    doc["output"] = c.output.clone().unwrap_or(Value::Null);
    doc["kernel_known"] = json!(c.raw.is_none());
    if let Some(raw) = &c.raw {
        doc["results"] = json!(raw
            .iter()
            .map(|o| json!({"start": o.start, "end": o.end, "data_hex": hex::encode(&o.data)}))
            .collect::<Vec<_>>());
    }
}

fn finished_json(f: &Finished) -> Value {
    let mut doc = report_json(&f.report);
    if let Some(c) = &f.custom {
        custom_json(&mut doc, c);
    }
    doc
}

pub(super) fn print_report(
    out: &mut dyn Write,
    finished: &Finished,
    as_json: bool,
) -> Result<ExitCode, CliError> {
    if as_json {
        writeln!(out, "{}", finished_json(finished))?;
    } else {
        write_report(out, finished)?;
    }
    Ok(report_exit(finished.report.state))
}

/// The exit code a job's final state gives: 0 completed, 1 failed, 130 cancelled.
pub(super) fn report_exit(state: JobState) -> ExitCode {
    match state {
        JobState::Cancelled => ExitCode::from(EXIT_CANCELLED),
        JobState::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// Several reports: each in turn, or `{"jobs": [...]}`; the exit code of the worst
/// (failed, then cancelled).
pub(super) fn print_reports(
    out: &mut dyn Write,
    reports: &[Finished],
    as_json: bool,
) -> Result<ExitCode, CliError> {
    if let [one] = reports {
        return print_report(out, one, as_json);
    }
    if as_json {
        let list: Vec<Value> = reports.iter().map(finished_json).collect();
        writeln!(out, "{}", json!({ "jobs": list }))?;
    } else {
        for (i, report) in reports.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            write_report(out, report)?;
        }
    }
    let worst = |s: JobState| reports.iter().any(|r| r.report.state == s);
    Ok(if worst(JobState::Failed) {
        report_exit(JobState::Failed)
    } else if worst(JobState::Cancelled) {
        report_exit(JobState::Cancelled)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_report(out: &mut dyn Write, finished: &Finished) -> std::io::Result<()> {
    let report = &finished.report;
    if let Some(custom) = &finished.custom {
        return write_custom(out, report, custom);
    }
    let n = report.solutions.len();
    let others = if report.others > 0 {
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
            "  (more solutions were found; the lowest {n} are listed)"
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

/// A table whose columns are as wide as their widest cell (so long names and
/// states never break it); a header starting with `>` is right-aligned.
pub(super) fn table(
    out: &mut dyn Write,
    indent: &str,
    headers: &[&str],
    rows: &[Vec<String>],
) -> std::io::Result<()> {
    let names: Vec<&str> = headers.iter().map(|h| h.trim_start_matches('>')).collect();
    let mut widths: Vec<usize> = names.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut text = String::from(indent);
        for (i, cell) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(cell.chars().count());
            let last = i + 1 == cells.len();
            if headers[i].starts_with('>') {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
            if !last {
                text.push_str("  ");
            }
        }
        // An empty last cell leaves no trailing blanks.
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(&names))?;
    for row in rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    Ok(())
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
        "workers": p.workers,
        "seconds": p.elapsed_ms as f64 / 1000.0,
        "times": times_json(&j.times),
        "waiting": j.waiting,
    })
}

/// What `picluster jobs` lists: the filters of its flags.
#[derive(Debug, Default)]
pub(super) struct JobFilter {
    /// Finished jobs too.
    pub(super) all: bool,
    pub(super) state: Option<String>,
    pub(super) client: Option<String>,
    pub(super) last: Option<usize>,
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
pub(super) fn print_jobs(
    out: &mut dyn Write,
    jobs: &[JobSummary],
    filter: &JobFilter,
    pruned: Option<u64>,
    json: bool,
) -> std::io::Result<()> {
    let finished = jobs.iter().filter(|j| j.progress.state.is_final()).count();
    let shown = filter.apply(jobs);
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
        let what = if filter.state.is_some() || filter.client.is_some() {
            "no jobs match"
        } else if filter.all {
            "no jobs"
        } else {
            "no queued or running jobs"
        };
        writeln!(out, "{what}")?;
    } else {
        jobs_table(out, &shown)?;
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

/// `MM-DD HH:MM:SS` UTC, or `-`.
fn when(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| utc(ms)[5..].to_string())
}

fn jobs_table(out: &mut dyn Write, jobs: &[JobSummary]) -> std::io::Result<()> {
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
pub(super) fn print_detail(
    out: &mut dyn Write,
    detail: &JobDetail,
    json: bool,
) -> std::io::Result<()> {
    let j = &detail.summary;
    let p = &j.progress;
    let finder = |i: usize| {
        detail
            .found_by
            .get(i)
            .and_then(|w| detail.workers.get(*w as usize))
            .map(|w| w.worker.as_str())
    };
    if json {
        let mut doc = job_json(j);
        doc["workers"] = json!(detail
            .workers
            .iter()
            .map(
                |w| json!({"name": w.worker, "hashes": w.hashes, "chunks": w.chunks,
                "leases": w.leases, "solutions": w.solutions})
            )
            .collect::<Vec<_>>());
        doc["reassigned"] = json!(detail.reassigned);
        doc["steals"] = json!(detail.steals);
        doc["unassigned"] = json!(detail.unassigned);
        doc["solutions"] = json!(detail
            .solutions
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut v = solution_json(s);
                v["worker"] = json!(finder(i));
                v
            })
            .collect::<Vec<_>>());
        doc["solutions_found"] = json!(p.solutions);
        return writeln!(out, "{doc}");
    }
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

/// `picluster cancel`: each job's state afterwards (`{"job", "state"}` for one,
/// `{"jobs": [...]}` for several).
pub(super) fn print_cancelled(
    out: &mut dyn Write,
    summaries: &[JobSummary],
    json: bool,
) -> std::io::Result<()> {
    let one = |s: &JobSummary| json!({"job": s.progress.job.to_string(), "state": s.progress.state.as_str()});
    if json {
        return match summaries {
            [s] => writeln!(out, "{}", one(s)),
            _ => writeln!(
                out,
                "{}",
                json!({"jobs": summaries.iter().map(one).collect::<Vec<_>>()})
            ),
        };
    }
    if summaries.is_empty() {
        return writeln!(out, "no jobs to cancel");
    }
    for s in summaries {
        writeln!(out, "{} {}", s.progress.job, s.progress.state.as_str())?;
    }
    Ok(())
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
            json!({"worker": worker.name, "state": state, "leases": worker.leases,
                "connected": worker.worker.0 != 0, "reason": worker.drain_reason})
        )
    } else {
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
}

/// What a worker's rate is measured on: the kind of the job it works on (or
/// SHA-256d, its benchmark, when idle).
fn worker_kind<'a>(w: &WorkerStatus, status: &'a ClusterStatus) -> &'a str {
    w.jobs
        .first()
        .and_then(|id| status.jobs.iter().find(|j| j.progress.job == *id))
        .map_or("sha256d", |j| j.kind.as_str())
}

/// Whether a worker's rate counts in the cluster's: it is taking work.
fn counts_in_total(w: &WorkerStatus) -> bool {
    matches!(w.state, WorkerState::Idle | WorkerState::Busy)
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
            "kernels": w.kernels,
            "rate": w.rate_hps,
            "rate_unit": if worker_kind(w, status) == "sha256d" { "H/s" } else { "indices/s" },
            "mhs": w.rate_hps as f64 / 1e6,
            "hashes": w.hashes,
            "leases": w.leases,
            "jobs": w.jobs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "drain_reason": w.drain_reason,
            "temperature_celsius": w.millicelsius.map(|m| f64::from(m) / 1000.0),
            "throttled_flags": w.throttled,
            "silent_seconds": w.silent_ms as f64 / 1000.0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn progress(hashes: u64, elapsed_ms: u64) -> JobProgress {
        JobProgress {
            job: JobId(7),
            state: JobState::Running,
            hashes,
            keyspace: 1_000_000_000,
            elapsed_ms,
            solutions: 1,
            workers: 2,
        }
    }

    #[test]
    fn the_bar_s_rate_and_eta_come_from_what_was_searched_since_attaching() {
        // Attached 10 s ago at 400 M of 1 G, after the job had run for 10 minutes:
        // 100 M since then is 10 M/s, so 500 M left take 50 s, whatever the average
        // since submission says.
        let attached = (Instant::now() - Duration::from_secs(10), 400_000_000);
        let text = bar_message("sha256d", &progress(500_000_000, 610_000), attached);
        assert!(
            text.starts_with(
                "500.00 M/1.00 G  10.00 MH/s  ETA 50s  2 workers  1 solution  10m10s elapsed"
            ),
            "{text}"
        );
        // Other kinds in indices/s.
        let text = bar_message("hashcash", &progress(500_000_000, 610_000), attached);
        assert!(text.contains("  10.00 M indices/s  "), "{text}");
        // Nothing seen yet: no made-up ETA.
        let now = (Instant::now(), 500_000_000);
        assert!(bar_message("sha256d", &progress(500_000_000, 1), now).contains("ETA ?"));
    }

    #[test]
    fn tables_keep_their_columns_whatever_they_hold() {
        let long = "a-worker-name-of-the-longest-kind-that-a-cluster-may-issue-xyz12";
        let rows = vec![
            vec!["pi-1".to_string(), "busy".to_string(), "1".to_string()],
            vec![
                long.to_string(),
                "unresponsive".to_string(),
                "123456".to_string(),
            ],
            vec![
                "x".to_string(),
                "custom:org/very/long/kernel/name/7".to_string(),
                "7".to_string(),
            ],
        ];
        let mut out = Vec::new();
        table(&mut out, "", &["WORKER", "STATE", ">N"], &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        // Every row's second column starts where the header's does, and the
        // right-aligned last column ends at the same place.
        let at = lines[0].find("STATE").unwrap();
        for (line, row) in lines[1..].iter().zip(&rows) {
            assert_eq!(line.find(row[1].as_str()), Some(at), "{text}");
            assert_eq!(line.len(), lines[0].len(), "{text}");
        }
    }

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(10_236_893), "10,236,893");
        assert_eq!(duration_text(59.4), "59s");
        assert_eq!(duration_text(3600.0 + 125.0), "1h02m");
        assert_eq!(rate_text("sha256d", 24_750_000.0), "24.75 MH/s");
        assert_eq!(rate_text("preimage", 999.0), "999 indices/s");
    }
}
