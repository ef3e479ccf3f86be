//! The views of job commands: `wait` and `submit` (reports), `jobs`, `show`,
//! `cancel`, `submit --detach`, `forget`.

use super::super::jobs::{
    write_cancelled, write_detail, write_forgotten, write_jobs, write_report, JobFilter,
};
use super::super::text::{mode_str, per_second};
use super::super::{CustomResult, Finished};
use super::{rate_unit, SolutionView, TimesView, View};
use picluster_core::hex;
use picluster_core::wire::{JobDetail, JobReport, JobSummary};
use serde::Serialize;
use std::io::Write;

/// What one worker searched of a job.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct ContributionView<'a> {
    name: &'a str,
    hashes: u64,
    chunks: u64,
}

/// A custom job's results: merged when this program knows the kernel, else as they
/// came (`results`).
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct CustomView<'a> {
    kernel: &'a str,
    covered: u64,
    output: &'a serde_json::Value,
    kernel_known: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<RawResultView>>,
}

/// One range's result of a kernel this program does not know.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct RawResultView {
    start: u64,
    end: u64,
    data_hex: String,
}

static NULL: serde_json::Value = serde_json::Value::Null;

impl<'a> From<&'a CustomResult> for CustomView<'a> {
    fn from(c: &'a CustomResult) -> CustomView<'a> {
        CustomView {
            kernel: &c.kernel,
            covered: c.covered,
            output: c.output.as_ref().unwrap_or(&NULL),
            kernel_known: c.raw.is_none(),
            results: c.raw.as_ref().map(|raw| {
                raw.iter()
                    .map(|o| RawResultView {
                        start: o.start,
                        end: o.end,
                        data_hex: hex::encode(&o.data),
                    })
                    .collect()
            }),
        }
    }
}

/// A finished job: `wait`, `submit` without `--detach`.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct ReportView<'a> {
    job: String,
    state: &'static str,
    kind: &'a str,
    solutions: Vec<SolutionView<'a>>,
    others: u64,
    truncated: bool,
    hashes: u64,
    keyspace: u64,
    seconds: f64,
    rate: f64,
    rate_unit: &'static str,
    workers: Vec<ContributionView<'a>>,
    times: TimesView,
    error: Option<&'a str>,
    #[serde(flatten)]
    custom: Option<CustomView<'a>>,
    #[serde(skip)]
    finished: &'a Finished,
}

impl<'a> From<&'a Finished> for ReportView<'a> {
    fn from(f: &'a Finished) -> ReportView<'a> {
        let r: &'a JobReport = &f.report;
        ReportView {
            job: r.job.to_string(),
            state: r.state.as_str(),
            kind: &r.kind,
            solutions: r
                .solutions
                .iter()
                .map(|s| SolutionView::new(s, r.finder(s)))
                .collect(),
            others: r.others,
            truncated: r.truncated,
            hashes: r.hashes,
            keyspace: r.keyspace,
            seconds: r.elapsed_ms as f64 / 1000.0,
            rate: per_second(r.hashes, r.elapsed_ms),
            rate_unit: rate_unit(&r.kind),
            workers: r
                .contributions
                .iter()
                .map(|c| ContributionView {
                    name: &c.worker,
                    hashes: c.hashes,
                    chunks: c.chunks,
                })
                .collect(),
            times: (&r.times).into(),
            error: r.error.as_deref(),
            custom: f.custom.as_ref().map(CustomView::from),
            finished: f,
        }
    }
}

impl View for ReportView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_report(out, self.finished)
    }
}

/// Several finished jobs: `{"jobs": [...]}`, or each report in turn.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct ReportsView<'a> {
    jobs: Vec<ReportView<'a>>,
}

impl<'a> From<&'a [Finished]> for ReportsView<'a> {
    fn from(reports: &'a [Finished]) -> ReportsView<'a> {
        ReportsView {
            jobs: reports.iter().map(ReportView::from).collect(),
        }
    }
}

impl View for ReportsView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for (i, report) in self.jobs.iter().enumerate() {
            if i > 0 {
                writeln!(out)?;
            }
            report.text(out)?;
        }
        Ok(())
    }
}

/// What a job's listing and its detail both begin with.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct JobHeadView<'a> {
    job: String,
    state: &'static str,
    kind: &'a str,
    mode: &'static str,
    priority: i32,
    client: &'a str,
    hashes: u64,
    keyspace: u64,
}

impl<'a> From<&'a JobSummary> for JobHeadView<'a> {
    fn from(j: &'a JobSummary) -> JobHeadView<'a> {
        let p = &j.progress;
        JobHeadView {
            job: p.job.to_string(),
            state: p.state.as_str(),
            kind: &j.kind,
            mode: mode_str(j.mode),
            priority: j.priority,
            client: &j.client,
            hashes: p.hashes,
            keyspace: p.keyspace,
        }
    }
}

/// A job as listings show it.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct JobView<'a> {
    #[serde(flatten)]
    head: JobHeadView<'a>,
    solutions: u32,
    workers: u32,
    seconds: f64,
    times: TimesView,
    waiting: Option<&'a str>,
}

impl<'a> From<&'a JobSummary> for JobView<'a> {
    fn from(j: &'a JobSummary) -> JobView<'a> {
        let p = &j.progress;
        JobView {
            head: j.into(),
            solutions: p.solutions,
            workers: p.workers,
            seconds: p.elapsed_ms as f64 / 1000.0,
            times: (&j.times).into(),
            waiting: j.waiting.as_deref(),
        }
    }
}

/// `picluster jobs`: the jobs its filters pass, and how many `--prune` removed
/// (`{"jobs": [...], "pruned": N}`, `pruned` only with `--prune`).
#[derive(Debug)]
pub(in crate::cli) struct JobsView<'a> {
    shown: Vec<JobSummary>,
    pruned: Option<u64>,
    /// Finished jobs kept (the text says how to list them).
    finished: usize,
    filter: &'a JobFilter,
}

impl<'a> JobsView<'a> {
    pub(in crate::cli) fn new(
        jobs: &[JobSummary],
        filter: &'a JobFilter,
        pruned: Option<u64>,
    ) -> JobsView<'a> {
        JobsView {
            shown: filter.apply(jobs),
            pruned,
            finished: jobs.iter().filter(|j| j.progress.state.is_final()).count(),
            filter,
        }
    }
}

impl Serialize for JobsView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Doc<'b> {
            jobs: Vec<JobView<'b>>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pruned: Option<u64>,
        }
        Doc {
            jobs: self.shown.iter().map(JobView::from).collect(),
            pruned: self.pruned,
        }
        .serialize(serializer)
    }
}

impl View for JobsView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_jobs(out, &self.shown, self.finished, self.filter, self.pruned)
    }
}

/// One job in detail: its listing's fields, with the workers and solutions listed
/// rather than counted.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct DetailView<'a> {
    #[serde(flatten)]
    head: JobHeadView<'a>,
    solutions: Vec<SolutionView<'a>>,
    workers: Vec<JobWorkerView<'a>>,
    seconds: f64,
    times: TimesView,
    waiting: Option<&'a str>,
    reassigned: u64,
    steals: u64,
    unassigned: u64,
    /// Solutions found so far (more than `solutions` lists, past the listing's limit).
    solutions_found: u32,
    #[serde(skip)]
    detail: &'a JobDetail,
}

/// What one worker did and holds of a job.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct JobWorkerView<'a> {
    name: &'a str,
    hashes: u64,
    chunks: u64,
    leases: u32,
    solutions: u32,
}

impl<'a> From<&'a JobDetail> for DetailView<'a> {
    fn from(d: &'a JobDetail) -> DetailView<'a> {
        let j = &d.summary;
        let p = &j.progress;
        let finder = |i: usize| {
            d.found_by
                .get(i)
                .and_then(|w| d.workers.get(*w as usize))
                .map(|w| w.worker.as_str())
        };
        DetailView {
            head: j.into(),
            solutions: d
                .solutions
                .iter()
                .enumerate()
                .map(|(i, s)| SolutionView::new(s, finder(i)))
                .collect(),
            workers: d
                .workers
                .iter()
                .map(|w| JobWorkerView {
                    name: &w.worker,
                    hashes: w.hashes,
                    chunks: w.chunks,
                    leases: w.leases,
                    solutions: w.solutions,
                })
                .collect(),
            seconds: p.elapsed_ms as f64 / 1000.0,
            times: (&j.times).into(),
            waiting: j.waiting.as_deref(),
            reassigned: d.reassigned,
            steals: d.steals,
            unassigned: d.unassigned,
            solutions_found: p.solutions,
            detail: d,
        }
    }
}

impl View for DetailView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_detail(out, self.detail)
    }
}

/// `picluster forget`: the jobs removed.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct ForgottenView {
    forgotten: Vec<String>,
}

impl ForgottenView {
    pub(in crate::cli) fn new(jobs: &[picluster_core::ids::JobId]) -> ForgottenView {
        ForgottenView {
            forgotten: jobs.iter().map(ToString::to_string).collect(),
        }
    }
}

impl View for ForgottenView {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_forgotten(out, &self.forgotten)
    }
}

/// A job and its state.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct JobStateView {
    job: String,
    state: &'static str,
}

/// `picluster cancel` (each job's state afterwards) and `submit --detach` (each
/// queued job): one job as `{"job", "state"}`, several as `{"jobs": [...]}`.
#[derive(Clone, Debug)]
pub(in crate::cli) struct JobStatesView {
    states: Vec<JobStateView>,
    /// Submitted with `--detach`: the text is the ids, one per line.
    queued: bool,
}

impl JobStatesView {
    /// The states of cancelled jobs.
    pub(in crate::cli) fn cancelled(summaries: &[JobSummary]) -> JobStatesView {
        let states = summaries
            .iter()
            .map(|s| JobStateView {
                job: s.progress.job.to_string(),
                state: s.progress.state.as_str(),
            })
            .collect();
        JobStatesView {
            states,
            queued: false,
        }
    }

    /// Jobs submitted and queued (`--detach`).
    pub(in crate::cli) fn queued(ids: &[String]) -> JobStatesView {
        let states = ids
            .iter()
            .map(|id| JobStateView {
                job: id.clone(),
                state: "queued",
            })
            .collect();
        JobStatesView {
            states,
            queued: true,
        }
    }
}

impl Serialize for JobStatesView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Many<'b> {
            jobs: &'b [JobStateView],
        }
        match &self.states[..] {
            [one] => one.serialize(serializer),
            many => Many { jobs: many }.serialize(serializer),
        }
    }
}

impl View for JobStatesView {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.queued {
            let ids: Vec<&str> = self.states.iter().map(|s| s.job.as_str()).collect();
            return writeln!(out, "{}", ids.join("\n"));
        }
        let lines: Vec<(&str, &str)> = self
            .states
            .iter()
            .map(|s| (s.job.as_str(), s.state))
            .collect();
        write_cancelled(out, &lines)
    }
}
