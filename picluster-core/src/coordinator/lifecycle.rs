//! A job's life over the job table: submission, watchers and the progress pushed to
//! them, the end of a job (completed, cancelled, failed: its leases stopped, its
//! watchers told, its row recorded), and how long finished jobs are kept (retention,
//! `forget`, `prune`). It stops leases through `leasing` and never judges a worker.

use super::effects::Effects;
use super::journal::Record;
use super::leasing;
use super::report::Reporter;
use super::tables::Tables;
use super::transmit::Transmit;
use crate::ids::{ConnId, JobId, LeaseId, RequestId};
use crate::wire::{
    CoordToClient, CoordToWorker, JobFailure, JobRequest, JobState, JobSummary, Limit,
    LimitReached, Refusal, Stop, Submit, MAX_OUTPUT_BATCH_BYTES,
};
use std::time::Instant;

/// Solutions in one [`CoordToClient::Solutions`] frame sent to a new watcher (about
/// 150 bytes each).
const SOLUTIONS_PER_FRAME: usize = 1000;

/// A valid submission from client `client`: queued over its whole keyspace.
pub(super) fn submit(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    client: String,
    submit: &Submit,
) -> CoordToClient {
    let spec = match submit.spec() {
        Ok(spec) => spec,
        Err(e) => return CoordToClient::Refused(submit.request, Refusal::BadJob((&e).into())),
    };
    let live = t.jobs.live_of(&client);
    if live >= t.config.max_live_jobs_per_client {
        let reached = LimitReached {
            client: client.clone(),
            limit: Limit::LiveJobs,
            allowed: t.config.max_live_jobs_per_client as u64,
            used: live as u64,
        };
        tracing::info!(%client, live, "submit refused: {reached}");
        return CoordToClient::Refused(submit.request, Refusal::OverLimit(reached));
    }
    let (kind, keyspace, mode) = (
        spec.kind
            .custom_kernel()
            .map_or_else(|| spec.kind.name().to_string(), |k| format!("custom:{k}")),
        spec.kind.keyspace(),
        spec.mode,
    );
    let id = t.jobs.submit(now, spec, submit.priority, client.clone());
    fx.submitted += 1;
    tracing::info!(job = %id, %client, %kind, keyspace, ?mode, priority = submit.priority, "job submitted");
    fx.record(Record::NextJob(t.jobs.next_id()));
    fx.record_job(t, id);
    fx.note_content(&mut t.jobs, id);
    fx.schedule = true;
    CoordToClient::Submitted(JobRequest {
        request: submit.request,
        job: id,
    })
}

/// Starts sending `conn` a job's progress: its state now, every result so far (in
/// frames of bounded size), then pushes until the report; a finished job's report
/// at once.
pub(super) fn watch(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    conn: ConnId,
    request: RequestId,
    job_id: JobId,
) {
    let Some(job) = t.jobs.get_mut(job_id) else {
        fx.reply(
            &t.jobs,
            Transmit::ToClient(
                conn,
                CoordToClient::Refused(request, Refusal::UnknownJob(job_id)),
            ),
        );
        return;
    };
    let live = !job.record.state.is_final();
    if live {
        job.session.watchers.insert(conn);
    }
    let reporter = Reporter::new(t, now, fx.clock);
    let Some(job) = t.jobs.get(job_id) else {
        return;
    };
    let mut messages = vec![CoordToClient::Watching(
        request,
        reporter.progress(job_id, job),
    )];
    let mut batch = Vec::new();
    let mut bytes = 0;
    for output in &job.record.outputs {
        if bytes + output.data.len() > MAX_OUTPUT_BATCH_BYTES && !batch.is_empty() {
            messages.push(CoordToClient::Outputs(job_id, std::mem::take(&mut batch)));
            bytes = 0;
        }
        bytes += output.data.len();
        batch.push(output.clone());
    }
    if !batch.is_empty() {
        messages.push(CoordToClient::Outputs(job_id, batch));
    }
    // A watcher that takes solutions as they come first gets those kept so far.
    if t.conns
        .client(conn)
        .is_some_and(|c| c.minor >= crate::wire::MINOR_TEMPLATES)
    {
        let kept: Vec<_> = job.record.solutions.values().cloned().collect();
        for batch in kept.chunks(SOLUTIONS_PER_FRAME) {
            messages.push(CoordToClient::Solutions(job_id, batch.to_vec()));
        }
    }
    if !live {
        messages.push(CoordToClient::Finished(reporter.report(job_id, job)));
    }
    for message in messages {
        fx.reply(&t.jobs, Transmit::ToClient(conn, message));
    }
    if live {
        if let Some(client) = t.conns.client_mut(conn) {
            client.watching.insert(job_id);
        }
        arm_push(t, fx, now);
    }
}

/// Arms the progress push if a live job is watched and it is not armed.
pub(super) fn arm_push(t: &Tables, fx: &mut Effects, now: Instant) {
    let watched = t.jobs.live().any(|(_, j)| !j.session.watchers.is_empty());
    if watched && fx.timers.push.is_none() {
        fx.timers.push = Some(now + t.config.progress_interval);
    }
}

/// At the push's time, sends each watched job that moved its progress.
pub(super) fn push_progress(t: &mut Tables, fx: &mut Effects, now: Instant) {
    if fx.timers.push.is_none_or(|at| now < at) {
        return;
    }
    fx.timers.push = None;
    let mut due = Vec::new();
    for id in t.jobs.live_ids().collect::<Vec<_>>() {
        let Some(job) = t.jobs.get_mut(id) else {
            continue;
        };
        if job.session.dirty && !job.session.watchers.is_empty() {
            job.session.dirty = false;
            due.push(id);
        }
    }
    let mut pushes = Vec::new();
    let reporter = Reporter::new(t, now, fx.clock);
    for id in due {
        if let Some(job) = t.jobs.get(id) {
            let progress = reporter.progress(id, job);
            pushes.extend(job.session.watchers.iter().map(|c| (*c, progress)));
        }
    }
    for (conn, progress) in pushes {
        fx.reply(
            &t.jobs,
            Transmit::ToClient(conn, CoordToClient::Progress(progress)),
        );
    }
    arm_push(t, fx, now);
}

/// Drops the finished jobs past their retention at `now`.
pub(super) fn expire_finished(t: &mut Tables, fx: &mut Effects, now: Instant) {
    for dropped in t.jobs.expire(now, &t.config) {
        fx.record(Record::Forget(dropped));
    }
}

/// A lease reached its end; its job completes if that was its last searched range.
pub(super) fn lease_done(t: &mut Tables, fx: &mut Effects, now: Instant, lease: LeaseId) {
    if let Some(job) = leasing::finish(t, fx, now, lease) {
        end_job(t, fx, now, job, JobState::Completed);
    }
}

/// Cancels a live job; the job's summary afterwards (a finished job keeps its
/// final state). `None` if no such job is kept.
pub(super) fn cancel(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    job_id: JobId,
) -> Option<JobSummary> {
    let live = !t.jobs.get(job_id)?.record.state.is_final();
    if live {
        end_job(t, fx, now, job_id, JobState::Cancelled);
    }
    Some(Reporter::new(t, now, fx.clock).summary(job_id, t.jobs.get(job_id)?))
}

/// Ends a job as failed, with the reason in its report.
pub(super) fn fail_job(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    job_id: JobId,
    failure: JobFailure,
) {
    let Some(job) = t.jobs.get_mut(job_id) else {
        return;
    };
    if job.record.state.is_final() {
        return;
    }
    tracing::warn!(job = %job_id, reason = %failure, "job failed");
    job.record.failure = Some(failure);
    end_job(t, fx, now, job_id, JobState::Failed);
}

/// Ends a job: its leases are stopped, its watchers get the report, and it leaves
/// the live set for the finished jobs kept.
pub(super) fn end_job(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    job_id: JobId,
    state: JobState,
) {
    let Some(job) = t.jobs.get_mut(job_id) else {
        return;
    };
    job.record.state = state;
    job.session.finished = Some(now);
    let seconds = now
        .saturating_duration_since(job.session.submitted)
        .as_secs_f64();
    tracing::info!(
        job = %job_id,
        state = state.as_str(),
        searched = job.record.hashes,
        keyspace = job.record.keyspace,
        solutions = job.record.solutions.len(),
        found_this_run = job.session.solution_log.found,
        seconds = format_args!("{seconds:.3}"),
        "job {}", state.as_str()
    );
    if state == JobState::Completed {
        // What made it complete (its solutions, its committed ranges) is durable
        // or on its way; the row saying so goes with the next checkpoint, so a
        // finished job costs no commit of its own (a crash before it costs the
        // rework of the job's tail, as any checkpoint does).
        fx.mark_dirty(now, job_id);
    } else {
        fx.record_job(t, job_id);
    }
    let Some(job) = t.jobs.get_mut(job_id) else {
        return;
    };
    job.record.pending.clear();
    job.session.orphans.clear();
    job.session.lost.clear();
    fx.stats.audits_dropped += job.session.audits.len() as u64;
    job.session.audits.clear();
    let leases: Vec<LeaseId> = job.session.leases.iter().copied().collect();
    for lease_id in leases {
        if let Some(lease) = leasing::detach(t, lease_id) {
            fx.push(Transmit::ToWorker(
                lease.worker,
                CoordToWorker::Stop(Stop { lease: lease_id }),
            ));
        }
    }
    t.workers.forget_job(job_id);
    t.rates.forget(job_id);
    if let Some(job) = t.jobs.get(job_id) {
        let report = Reporter::new(t, now, fx.clock).report(job_id, job);
        for conn in job.session.watchers.iter().copied().collect::<Vec<_>>() {
            fx.reply(
                &t.jobs,
                Transmit::ToClient(conn, CoordToClient::Finished(report.clone())),
            );
            t.conns.unwatch(conn, job_id, now);
        }
    }
    for dropped in t.jobs.finish(job_id, now, &t.config) {
        fx.record(Record::Forget(dropped));
    }
    fx.schedule = true;
}

/// A client forgets a finished job.
pub(super) fn forget(
    t: &mut Tables,
    fx: &mut Effects,
    request: RequestId,
    job: JobId,
) -> CoordToClient {
    match t.jobs.forget(job) {
        Ok(()) => {
            fx.record(Record::Forget(job));
            CoordToClient::Forgotten(JobRequest { request, job })
        }
        Err(true) => CoordToClient::Refused(request, Refusal::NotFinished(job)),
        Err(false) => CoordToClient::Refused(request, Refusal::UnknownJob(job)),
    }
}

/// An admin removes every finished job.
pub(super) fn prune(t: &mut Tables, fx: &mut Effects, request: RequestId) -> CoordToClient {
    let dropped = t.jobs.prune();
    let count = dropped.len() as u64;
    for id in dropped {
        fx.record(Record::Forget(id));
    }
    CoordToClient::Pruned(request, count)
}
