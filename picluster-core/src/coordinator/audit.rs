//! Redundant execution on a sample (BOINC's idea, on a fraction of the work): a
//! finished lease is chosen for an audit with probability `audit_fraction`, by a
//! secret draw its worker cannot predict, and its range is searched again by another
//! worker. What the two found must agree: every solution in the range, and every
//! share at the harder of their two share targets. Shares catch a worker that
//! claims more than it hashes; only an audit catches one that hashes honestly but
//! keeps the solutions it finds. The one who missed what the other found (both
//! findings are verified) claimed work it did not do and is quarantined, and a
//! hidden solution joins its job.
//!
//! An audit is a lease like any other to its worker, but commits nothing: the job's
//! counts do not move, it is never stolen from and never written in the job's row,
//! and an audit not finished goes back to the job's audit queue whole. A job ends
//! only once its audits are searched, or dropped when no worker but their subject
//! is left to run them. Audits are session state: a coordinator restart forgets
//! those not yet run (like the per-session record of who committed what).

use super::effects::Effects;
use super::jobs::AuditSample;
use super::lifecycle;
use super::peers;
use super::tables::Tables;
use super::verify::{self, Claim};
use super::violation::{CloseReason, ProtocolViolation};
use crate::ids::{ConnId, JobId, LeaseId};
use crate::kernel::digest_zero_bits;
use crate::wire::MAX_SOLUTIONS;
use std::time::Instant;

type Handled = Result<(), ProtocolViolation>;

/// Lease `lease_id` reached its end (its last position committed): an audit is
/// judged; any other lease may be chosen for one. Then it ends.
pub(super) fn lease_ended(
    t: &mut Tables,
    fx: &mut Effects,
    now: Instant,
    lease_id: LeaseId,
) -> Handled {
    if t.leases.get(lease_id).is_some_and(|l| l.audit.is_some()) {
        conclude(t, fx, now, lease_id)?;
    } else {
        choose(t, fx, lease_id);
    }
    lifecycle::lease_done(t, fx, now, lease_id);
    Ok(())
}

/// The secret draw for lease `lease`: splitmix64 of the seed and the lease id, as
/// a number in [0, 1).
fn draw(seed: u64, lease: LeaseId) -> f64 {
    let mut z = seed ^ lease.0.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The summed rate on `job_id` of the ready workers other than `subject` that can
/// run it: who could audit `subject` (0: nobody).
fn auditors_rate(t: &Tables, job_id: JobId, subject: &str) -> f64 {
    let view = t.view();
    t.workers
        .iter()
        .filter(|(conn, w)| {
            w.name != subject && t.workers.is_ready(*conn) && view.can_run(*conn, job_id)
        })
        .map(|(conn, _)| view.rate(conn, job_id))
        .sum()
}

/// A regular lease ended: if drawn, its range goes to the job's audit queue with
/// what its worker reported in it. A worker is audited at `audit_fraction`, or less
/// when it is faster than every other worker together: the others would otherwise
/// spend more than that fraction of their time on its audits.
fn choose(t: &mut Tables, fx: &mut Effects, lease_id: LeaseId) {
    let fraction = t.config.audit_fraction;
    let drawn = draw(t.config.audit_seed, lease_id);
    if fraction.is_nan() || drawn >= fraction {
        return;
    }
    let Some(l) = t.leases.get(lease_id) else {
        return;
    };
    let job_id = l.job;
    let range = l.start..l.position;
    if range.is_empty() {
        return;
    }
    let live = t.jobs.get(job_id).is_some_and(|j| {
        !j.record.state.is_final() && j.session.kernel.is_some() && !j.found_enough()
    });
    let Some(subject) = t.workers.get(l.worker).map(|w| w.name.clone()) else {
        return;
    };
    if !live {
        return;
    }
    let others = auditors_rate(t, job_id, &subject);
    let own = t.view().rate(l.worker, job_id);
    if others <= 0.0 || drawn >= fraction * (others / own).min(1.0) {
        return;
    }
    // A lease adopted after a restart lost the shares its worker sent before: only
    // its solutions (durable) can be compared.
    let share_bits = l.share_bits.filter(|_| l.whole_shares);
    let shares = l.shares.range(range.clone()).copied().collect();
    let sample = AuditSample {
        range,
        subject,
        share_bits,
        shares,
    };
    if let Some(job) = t.jobs.get_mut(job_id) {
        job.session.audits.push_back(sample);
        fx.schedule = true;
    }
}

/// Solutions the worker on `conn` found in its audit lease `lease_id`: each must
/// verify within the part not yet searched; they are kept for the verdict.
pub(super) fn on_found(
    t: &mut Tables,
    conn: ConnId,
    lease_id: LeaseId,
    indices: &[u64],
) -> Handled {
    let Some(lease) = t.leases.get(lease_id) else {
        return Ok(());
    };
    let range = lease.position..lease.end;
    let kernel = t.jobs.get(lease.job).and_then(|j| j.session.kernel.clone());
    for &index in indices {
        let verified =
            range.contains(&index) && kernel.as_ref().is_some_and(|k| k.verify(index).is_some());
        if !verified {
            return Err(ProtocolViolation::FalseSolution {
                lease: lease_id,
                index,
            });
        }
    }
    let Some(run) = t
        .leases
        .get_mut(lease_id)
        .filter(|l| l.worker == conn)
        .and_then(|l| l.audit.as_mut())
    else {
        return Ok(());
    };
    for &index in indices {
        if run.found.len() >= MAX_SOLUTIONS {
            run.overflow = true;
            break;
        }
        run.found.insert(index);
    }
    Ok(())
}

/// What an audit found against what its subject reported.
struct Verdict {
    /// Solutions the auditor found that the job does not have (the subject hid them).
    hidden: Vec<u64>,
    /// A share the auditor found that the subject did not report.
    subject_missed: Option<u64>,
    /// A share the subject reported that the auditor did not.
    auditor_missed: Option<u64>,
    /// A solution of the job in the range that the auditor did not report.
    unreported: Option<u64>,
}

fn compare(t: &Tables, lease_id: LeaseId) -> Option<(JobId, Verdict)> {
    let lease = t.leases.get(lease_id)?;
    let run = lease.audit.as_deref()?;
    let job = t.jobs.get(lease.job)?;
    let kernel = job.session.kernel.as_ref()?;
    let sample = &run.sample;
    let (mut subject_missed, mut auditor_missed) = (None, None);
    if let (Some(subject_bits), Some(auditor_bits)) = (sample.share_bits, lease.share_bits) {
        // Each reported every share at its own target: both sets hold every share
        // at the harder one.
        let bits = u32::from(subject_bits.max(auditor_bits));
        let meets = |i: &&u64| {
            kernel
                .digest(**i)
                .is_some_and(|d| digest_zero_bits(&d) >= bits)
        };
        subject_missed = lease
            .shares
            .range(sample.range.clone())
            .filter(meets)
            .find(|i| !sample.shares.contains(i))
            .copied();
        auditor_missed = sample
            .shares
            .iter()
            .filter(meets)
            .find(|i| !lease.shares.contains(i))
            .copied();
    }
    // A job's solutions past the kept maximum are dropped, and so are an audit's:
    // then solutions cannot be compared.
    let comparable = !job.record.truncated && !run.overflow;
    let (hidden, unreported) = if comparable {
        let solutions = &job.record.solutions;
        let hidden = run
            .found
            .iter()
            .filter(|i| !solutions.contains_key(i))
            .copied()
            .collect();
        let unreported = solutions
            .range(sample.range.clone())
            .map(|(i, _)| *i)
            .find(|i| !run.found.contains(i));
        (hidden, unreported)
    } else {
        (Vec::new(), None)
    };
    let verdict = Verdict {
        hidden,
        subject_missed,
        auditor_missed,
        unreported,
    };
    Some((lease.job, verdict))
}

/// An audit lease reached its end: the auditor's findings against its subject's.
/// The subject missing one quarantines it (wherever it is) and adds the solutions
/// it hid to the job; the auditor missing one is the auditor's violation (its audit
/// goes back to the queue for another).
fn conclude(t: &mut Tables, fx: &mut Effects, now: Instant, lease_id: LeaseId) -> Handled {
    let Some((job_id, verdict)) = compare(t, lease_id) else {
        return Ok(());
    };
    let Some((auditor, subject, range)) = t.leases.get(lease_id).and_then(|l| {
        let run = l.audit.as_deref()?;
        Some((
            l.worker,
            run.sample.subject.clone(),
            run.sample.range.clone(),
        ))
    }) else {
        return Ok(());
    };
    let auditor_name = t
        .workers
        .get(auditor)
        .map(|w| w.name.clone())
        .unwrap_or_default();
    let against_subject = verdict
        .hidden
        .first()
        .map(|&index| ProtocolViolation::HiddenSolution { job: job_id, index })
        .or(verdict
            .subject_missed
            .map(|index| ProtocolViolation::MissedShare { job: job_id, index }));
    if let Some(violation) = against_subject {
        fx.stats.audits_failed += 1;
        if !t.workers.is_quarantined(&subject) {
            tracing::warn!(job = %job_id, worker = %subject, auditor = %auditor_name, start = range.start, end = range.end, %violation, "audit failed: the range's worker did not report what it found");
            fx.stats.violations += 1;
            verify::condemn(t, fx, now, &subject, &violation, true);
            if let Some(conn) = t.workers.named(&subject) {
                let reason = CloseReason::Quarantined {
                    name: subject.clone(),
                    violation,
                };
                peers::drop_peer(t, fx, conn, reason);
            }
        }
        if !verdict.hidden.is_empty() {
            let claim = Claim {
                job: job_id,
                lease: lease_id,
                range,
                indices: &verdict.hidden,
                finder: &auditor_name,
            };
            verify::record_found(t, fx, now, claim)?;
        }
        return Ok(());
    }
    let against_auditor = verdict
        .auditor_missed
        .map(|index| ProtocolViolation::MissedShare { job: job_id, index })
        .or(verdict
            .unreported
            .map(|index| ProtocolViolation::MissedSolution { job: job_id, index }));
    if let Some(violation) = against_auditor {
        fx.stats.audits_failed += 1;
        tracing::warn!(job = %job_id, worker = %auditor_name, subject = %subject, start = range.start, end = range.end, %violation, "audit failed: the auditor did not report what the range's worker found");
        return Err(violation);
    }
    fx.stats.audits_passed += 1;
    tracing::debug!(job = %job_id, worker = %subject, auditor = %auditor_name, start = range.start, end = range.end, "audit passed");
    Ok(())
}

/// Audits that no worker but their subject is left to run, in jobs with nothing
/// else queued, are dropped (counted). Returns the jobs that, without them, have
/// searched everything: the caller completes them.
pub(super) fn drop_stranded(t: &mut Tables, fx: &mut Effects) -> Vec<JobId> {
    let waiting: Vec<JobId> = t
        .jobs
        .live()
        .filter(|(_, j)| j.record.pending.is_empty() && !j.session.audits.is_empty())
        .map(|(id, _)| id)
        .collect();
    let mut done = Vec::new();
    for id in waiting {
        let keep: Vec<bool> = t.jobs.get(id).map_or_else(Vec::new, |j| {
            j.session
                .audits
                .iter()
                .map(|s| auditors_rate(t, id, &s.subject) > 0.0)
                .collect()
        });
        let Some(job) = t.jobs.get_mut(id) else {
            continue;
        };
        let mut keep = keep.into_iter();
        let before = job.session.audits.len();
        job.session.audits.retain(|_| keep.next().unwrap_or(false));
        fx.stats.audits_dropped += (before - job.session.audits.len()) as u64;
        if !job.record.state.is_final() && job.searched_all() {
            done.push(id);
        }
    }
    done
}
