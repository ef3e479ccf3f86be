//! Output for people (tables, a progress bar on a terminal) and for scripts
//! (`--json`: the last line of stdout is one JSON object). Every command's output is a
//! typed view (`views`): its JSON is that type serialized, its text rendered from it.
//!
//! # Layout
//! - this file: `-q`, the connecting spinner, following a job with a progress bar,
//!   a finished job ([`Finished`]) and the exit code its state gives.
//! - `views`: every command's output as a `#[derive(Serialize)]` view, with golden
//!   tests of the JSON.
//! - `jobs`, `cluster`: the text of jobs (reports, tables, detail) and of the
//!   cluster (status, drains, tokens).
//! - `text`: numbers, times, rates, solutions and tables as text.

mod cluster;
mod jobs;
mod text;
mod views;

pub(in crate::cli) use jobs::JobFilter;
pub(in crate::cli) use text::utc;
pub(super) use views::{
    emit, ChangedView, CoordinatorView, DetailView, DrainedView, ErrorView, EtcdMemberView,
    ForgottenView, JobStatesView, JobsView, ReportView, ReportsView, RevocationView, StatusView,
    TokenCreatedView, TokensView,
};

use super::{CliError, EXIT_CANCELLED};
use crate::client::{Client, JobEvent};
use picluster_core::ids::JobId;
use picluster_core::wire::{ChunkOutput, JobProgress, JobReport, JobState};
use serde_json::Value;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use text::{duration_text, rate_text, si};

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
    // A running job's progress comes four times a second while it moves: silence
    // from a job that was moving means the coordinator may be away (a lost
    // connection is only known after QUIC's 10 s idle timeout), and the bar says so.
    let mut moving = watch.initial.state == picluster_core::wire::JobState::Running;
    let mut last_word = std::time::Instant::now();
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        let event = tokio::select! {
            event = watch.next() => event,
            () = &mut interrupt => {
                bar.finish_and_clear();
                return Ok(Followed::Interrupted);
            }
            _ = tick.tick() => {
                let silent = last_word.elapsed();
                if moving && silent >= SILENCE_SHOWN {
                    bar.set_message(format!(
                        "no word from the coordinator for {} s",
                        silent.as_secs()
                    ));
                }
                continue;
            }
        };
        last_word = std::time::Instant::now();
        let Some(event) = event else { break };
        match event {
            JobEvent::Progress(p) => {
                moving = p.state == picluster_core::wire::JobState::Running;
                show(&p);
            }
            JobEvent::Outputs(batch) => outputs.extend(batch),
            // The report lists them.
            JobEvent::Solutions(_) => {}
            JobEvent::Reconnecting => {
                bar.suspend(|| {
                    // A new watch sends every result again.
                    outputs.clear();
                    picluster_core::runtime::eprint_lossy(&format!(
                        "picluster: lost the connection to the coordinator at {}; reconnecting to follow {job}",
                        client.coordinator()
                    ));
                });
                // Until the next progress: the rate and ETA shown are stale.
                bar.set_message("coordinator unreachable, reconnecting");
            }
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

/// How long a moving job's bar waits for a word from the coordinator before it
/// says there was none.
const SILENCE_SHOWN: std::time::Duration = std::time::Duration::from_secs(3);

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

/// The exit code a job's final state gives: 0 completed, 1 failed, 130 cancelled.
pub(super) fn report_exit(state: JobState) -> ExitCode {
    match state {
        JobState::Cancelled => ExitCode::from(EXIT_CANCELLED),
        JobState::Failed => ExitCode::FAILURE,
        _ => ExitCode::SUCCESS,
    }
}

/// The finished jobs a command followed: each report in turn, or `{"jobs": [...]}`
/// for several (one alone is its report); the exit code of the worst (failed, then
/// cancelled).
pub(super) fn print_reports(
    out: &mut dyn Write,
    reports: &[Finished],
    json: bool,
) -> Result<ExitCode, CliError> {
    match reports {
        [one] => emit(out, &ReportView::from(one), json)?,
        _ => emit(out, &ReportsView::from(reports), json)?,
    }
    let worst = |s: JobState| reports.iter().any(|r| r.report.state == s);
    Ok(if worst(JobState::Failed) {
        report_exit(JobState::Failed)
    } else if worst(JobState::Cancelled) {
        report_exit(JobState::Cancelled)
    } else {
        report_exit(JobState::Completed)
    })
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
}
