//! Watching a job: the events a watch yields ([`JobEvent`]), the watch itself
//! ([`JobWatch`], which reconnects and re-attaches by itself when the connection is
//! lost), and a custom job's results merged in index order ([`merge_outputs`]).

use super::{Client, ClientError, KernelError};
use picluster_core::ids::JobId;
use picluster_core::kernel::custom::{self, Kernel};
use picluster_core::net::NetError;
use picluster_core::wire::{ChunkOutput, JobProgress, JobReport, JobState};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// An update about a watched job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobEvent {
    /// The job progressed.
    Progress(JobProgress),
    /// Results of a custom job's committed ranges (all of them come before
    /// `Finished`; a new watch first gets every one so far).
    Outputs(Vec<ChunkOutput>),
    /// Solutions of a built-in job as the coordinator verifies them, each once (a
    /// new watch first gets those kept so far; after [`JobEvent::Reconnecting`] they
    /// come again from the start).
    Solutions(Vec<picluster_core::kernel::Solution>),
    /// The job ended; no more events follow.
    Finished(Box<JobReport>),
    /// The connection to the coordinator was lost before the report: the watch is
    /// reconnecting (with backoff, up to [`Client::set_reconnect_timeout`]) and will
    /// go on where the coordinator's job stands. Results of a custom job are sent
    /// again from the start after it.
    Reconnecting,
}

/// Events a [`JobWatch`] holds before its reader falls behind. Then progress updates
/// are skipped (the next one supersedes them), and results and the report wait: the
/// connection stops being read, and the coordinator's flow control holds it back.
pub(super) const WATCH_EVENTS: usize = 64;

/// A watched job: progress events, then the final report. If the connection is lost
/// first, the watch reconnects and re-attaches to the job by itself.
#[derive(Debug)]
pub struct JobWatch {
    /// The job's state when the watch started.
    pub initial: JobProgress,
    pub(super) events: mpsc::Receiver<JobEvent>,
    pub(super) client: Client,
    pub(super) job: JobId,
    /// Reconnecting has been announced for the current loss.
    pub(super) announced: bool,
    /// The report arrived, or reconnecting failed.
    pub(super) done: bool,
    /// Why reconnecting failed.
    pub(super) error: Option<ClientError>,
}

impl JobWatch {
    /// The next event; `None` after `Finished`, or once reconnecting has failed
    /// ([`JobWatch::finish`] then says why).
    pub async fn next(&mut self) -> Option<JobEvent> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.events.recv().await {
                self.done = matches!(event, JobEvent::Finished(_));
                return Some(event);
            }
            if !self.announced {
                self.announced = true;
                return Some(JobEvent::Reconnecting);
            }
            match self.reattach().await {
                Ok(()) => self.announced = false,
                Err(e) => {
                    self.done = true;
                    self.error = Some(e);
                }
            }
        }
    }

    /// Reconnects (if no clone did already) and watches the job again, with backoff,
    /// until the client's reconnect timeout.
    async fn reattach(&mut self) -> Result<(), ClientError> {
        let deadline = Instant::now() + self.client.reconnect_timeout();
        let mut delay = Duration::from_millis(250);
        loop {
            let attempt = async {
                self.client.reconnect_if_lost().await?;
                self.client.attach(self.job).await
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let result = tokio::time::timeout(left, attempt)
                .await
                .unwrap_or(Err(ClientError::Net(NetError::Timeout(left))));
            match result {
                Ok((_, events)) => {
                    self.events = events;
                    return Ok(());
                }
                // No coordinator leads yet: an election ends within seconds, so
                // ask again soon rather than back off.
                Err(ClientError::Net(NetError::NotLeader { .. }))
                    if Instant::now() + NOT_LEADER_RETRY < deadline =>
                {
                    tokio::time::sleep(NOT_LEADER_RETRY).await;
                }
                Err(e) if e.is_retryable() && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits for the final report, passing every progress event to `on_progress`.
    pub async fn finish(
        mut self,
        mut on_progress: impl FnMut(&JobProgress),
    ) -> Result<JobReport, ClientError> {
        on_progress(&self.initial);
        while let Some(event) = self.next().await {
            match event {
                JobEvent::Progress(p) => on_progress(&p),
                JobEvent::Outputs(_) | JobEvent::Solutions(_) | JobEvent::Reconnecting => {}
                JobEvent::Finished(report) => return Ok(*report),
            }
        }
        Err(self.error.take().unwrap_or(ClientError::Disconnected))
    }

    /// Waits for the final report of a custom job of kernel `K`, merging its
    /// results in index order.
    pub async fn finish_kernel<K: Kernel>(
        mut self,
        params: &K::Params,
    ) -> Result<KernelReport<K::Output>, ClientError> {
        let mut outputs: Vec<ChunkOutput> = Vec::new();
        let report = loop {
            match self.next().await {
                Some(JobEvent::Progress(_) | JobEvent::Solutions(_)) => {}
                Some(JobEvent::Outputs(batch)) => outputs.extend(batch),
                // A new watch sends every result again.
                Some(JobEvent::Reconnecting) => outputs.clear(),
                Some(JobEvent::Finished(report)) => break *report,
                None => return Err(self.error.take().unwrap_or(ClientError::Disconnected)),
            }
        };
        merge_outputs::<K>(params, outputs, report)
    }
}

/// Merges a custom job's results (as [`JobEvent::Outputs`] delivered them, in any
/// order) in index order with kernel `K`, checking that they do not overlap and that
/// a completed job's cover its keyspace.
pub fn merge_outputs<K: Kernel>(
    params: &K::Params,
    mut outputs: Vec<ChunkOutput>,
    report: JobReport,
) -> Result<KernelReport<K::Output>, ClientError> {
    outputs.sort_by_key(|o| o.start);
    let mut covered = 0;
    let mut expected_start = 0;
    let mut gaps = false;
    let mut output: Option<K::Output> = None;
    for chunk in &outputs {
        if chunk.start < expected_start || chunk.end <= chunk.start {
            return Err(KernelError::Overlap {
                start: chunk.start,
                end: chunk.end,
            }
            .into());
        }
        gaps |= chunk.start != expected_start;
        expected_start = chunk.end;
        covered += chunk.end - chunk.start;
        let part =
            custom::decode_output::<K>(&chunk.data).map_err(|source| KernelError::Decode {
                start: chunk.start,
                end: chunk.end,
                source,
            })?;
        output = Some(match output {
            Some(earlier) => K::merge(params, earlier, part),
            None => part,
        });
    }
    if report.state == JobState::Completed
        && (gaps || covered != report.keyspace || expected_start != report.keyspace)
    {
        return Err(KernelError::Coverage {
            job: report.job,
            covered,
            keyspace: report.keyspace,
        }
        .into());
    }
    Ok(KernelReport {
        output,
        covered,
        report,
    })
}

/// The outcome of a custom job: its results merged in index order, and its report.
#[derive(Clone, Debug)]
pub struct KernelReport<T> {
    /// The merged result; `None` if no index was computed (a job cancelled or failed
    /// before any result).
    pub output: Option<T>,
    /// How many indices the result covers: the whole keyspace for a completed job.
    pub covered: u64,
    /// The job's report (its state, `error` if it failed, contributions).
    pub report: JobReport,
}

/// How soon a client asks again when no coordinator leads (an election under way).
const NOT_LEADER_RETRY: Duration = Duration::from_millis(200);
