//! Carrying out the schedule: rounds of decisions (`schedule::decide`) handed out
//! as leases and audits, the leases held back after a restart given to a worker
//! that would otherwise sit idle, audits no worker is left to run dropped, and
//! steals asked for. It runs once per batch of inputs, at the first `poll_transmit`.

use super::audit;
use super::effects::Effects;
use super::leasing;
use super::lifecycle;
use super::schedule::{self, Decision};
use super::steal;
use super::tables::Tables;
use super::transmit::Transmit;
use super::worker_msgs;
use crate::ids::JobId;
use crate::wire::{CoordToWorker, JobState, Trim};
use std::collections::BTreeMap;
use std::time::Instant;

/// Hands out leases round-robin, one per worker per pass, until every worker holds
/// what it may or no live job has unassigned work; then, if a worker found nothing
/// to run, gives it the leases still held back after a restart (once their
/// grace is over), and steals.
pub(super) fn schedule(t: &mut Tables, fx: &mut Effects, now: Instant) {
    let mut left_at_start: BTreeMap<JobId, u64> = BTreeMap::new();
    let mut steal = hand_out(t, fx, now, &mut left_at_start);
    if steal && fx.timers.adopt_until.is_some() && fx.timers.adopt_grace.is_none() {
        // A worker would sit idle while ranges wait for workers that have not
        // come back for a lease timeout: it gets them.
        tracing::info!("a worker has nothing to do: the chunks held for workers not back since the restart go to others");
        worker_msgs::release_orphans(t, fx, None);
        fx.timers.adopt_until = None;
        left_at_start.clear();
        steal = hand_out(t, fx, now, &mut left_at_start);
    }
    for job in audit::drop_stranded(t, fx) {
        lifecycle::end_job(t, fx, now, job, JobState::Completed);
    }
    if steal {
        while let Some(s) = steal::next_steal(t.view(), now) {
            if let Some(l) = t.leases.get_mut(s.victim) {
                l.trim = Some((s.at, s.thief));
            }
            fx.timers
                .trims
                .insert((now + t.config.lease_timeout, s.victim));
            fx.push(Transmit::ToWorker(
                s.owner,
                CoordToWorker::Trim(Trim {
                    lease: s.victim,
                    end: s.at,
                }),
            ));
        }
    }
}

/// One scheduling round: leases handed out round-robin, one per worker per pass,
/// until every worker holds what it may or nothing is left to hand out. Returns
/// whether a worker found nothing to run (a steal may help).
fn hand_out(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    left_at_start: &mut BTreeMap<JobId, u64>,
) -> bool {
    let mut steal = false;
    loop {
        let mut assigned = false;
        for conn in t.workers.wanting() {
            let view = schedule::View {
                config: &t.config,
                jobs: &t.jobs,
                leases: &t.leases,
                workers: &t.workers,
            };
            match schedule::decide(view, &mut t.rates, left_at_start, now, conn) {
                Decision::NotReady | Decision::Full => t.workers.unwant(conn),
                Decision::NothingToRun => steal = true,
                Decision::Assign { job, range } => {
                    if let Some(j) = t.jobs.get_mut(job) {
                        j.record.take_front(&range);
                    }
                    leasing::assign(t, fx, now, conn, job, range);
                    assigned = true;
                }
                Decision::Audit { job, index, size } => {
                    let sample = t.jobs.get_mut(job).and_then(|j| {
                        let mut sample = j.session.audits.remove(index)?;
                        let at = sample.range.start.saturating_add(size.max(1));
                        if at < sample.range.end {
                            j.session.audits.insert(index, sample.split_off(at));
                        }
                        Some(sample)
                    });
                    if let Some(sample) = sample {
                        leasing::assign_audit(t, fx, now, conn, job, sample);
                        assigned = true;
                    }
                }
            }
        }
        if !assigned {
            return steal;
        }
    }
}
