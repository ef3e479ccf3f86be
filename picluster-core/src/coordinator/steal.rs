//! Work stealing as a pure function over the tables: when no job has unassigned work,
//! the worker that will be free soonest takes the back part of the lease that will end
//! last, split so that both end together. [`next_steal`] names one such steal; the
//! coordinator sends the owner a `Trim` and waits for its `Trimmed`, which says where
//! the owner really stops, before anything is handed out, so no index is ever searched
//! under two live leases. One steal per thief at a time.

use super::schedule::View;
use crate::ids::{ConnId, LeaseId};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// Take the range from `at` to the end of lease `victim` (held by `owner`) for
/// `thief`.
pub(super) struct Steal {
    pub(super) victim: LeaseId,
    pub(super) owner: ConnId,
    pub(super) at: u64,
    pub(super) thief: ConnId,
}

/// The next steal worth making at `now`, if any.
pub(super) fn next_steal(view: View<'_>, now: Instant) -> Option<Steal> {
    if !view.config.steal {
        return None;
    }
    // Seconds until each worker has done everything it holds, and until each lease
    // is done (a worker runs its leases in the order it got them). The lease a worker
    // is on has moved on since its last report: extrapolate.
    let mut free_at: BTreeMap<ConnId, f64> = BTreeMap::new();
    let mut lease_done_at: BTreeMap<LeaseId, f64> = BTreeMap::new();
    let mut estimated: BTreeMap<LeaseId, u64> = BTreeMap::new();
    let mut started: BTreeSet<LeaseId> = BTreeSet::new();
    for (conn, w) in view.workers.iter() {
        let mut t = 0.0;
        for (i, lease_id) in w.leases().iter().enumerate() {
            if let Some(l) = view.leases.get(*lease_id) {
                let rate = view.rate(conn, l.job);
                if i == 0 {
                    started.insert(*lease_id);
                }
                let position = if i == 0 {
                    let moved = now.saturating_duration_since(l.reported_at).as_secs_f64() * rate;
                    // Saturating: a claimed rate may be absurd.
                    l.position.saturating_add(moved as u64).min(l.end)
                } else {
                    l.position
                };
                estimated.insert(*lease_id, position);
                t += (l.end - position) as f64 / rate;
                lease_done_at.insert(*lease_id, t);
            }
        }
        free_at.insert(conn, t);
    }
    let busy_thieves: BTreeSet<ConnId> = view
        .leases
        .iter()
        .filter_map(|(_, l)| l.trim.map(|(_, thief)| thief))
        .collect();
    let (thief, thief_free) = free_at
        .iter()
        .filter(|(conn, _)| {
            view.workers.is_ready(**conn)
                && !busy_thieves.contains(conn)
                && view
                    .workers
                    .get(**conn)
                    .is_some_and(|w| w.leases().len() < view.config.leases_per_worker)
                && view.next_job_to_serve(**conn).is_none()
        })
        .min_by(|a, b| a.1.total_cmp(b.1))
        .map(|(conn, t)| (*conn, *t))?;
    let (victim, lease, victim_done) = view
        .leases
        .iter()
        // Splitting a running lease is only worth it for a big enough piece; a
        // queued one can move whole, however small (one stolen down to nothing just
        // waits for its worker to reach it).
        .filter(|(id, l)| {
            let left = l.end - estimated.get(id).copied().unwrap_or(l.position);
            l.trim.is_none()
                && l.kept_at.is_none_or(|at| {
                    now.saturating_duration_since(at) >= view.config.progress_interval
                })
                && l.worker != thief
                && l.audit.as_ref().is_none_or(|a| {
                    view.workers
                        .get(thief)
                        .is_some_and(|w| w.name != a.sample.subject)
                })
                && left > 0
                && (left >= view.min_steal(l.job) || !started.contains(id))
                && view.can_run(thief, l.job)
        })
        .filter(|(_, l)| {
            view.jobs
                .get(l.job)
                .is_some_and(|j| !j.record.state.is_final())
        })
        .filter_map(|(id, l)| lease_done_at.get(&id).map(|t| (id, l, *t)))
        .max_by(|a, b| a.2.total_cmp(&b.2))?;
    let gap = victim_done - thief_free;
    if gap <= view.config.steal_gap.as_secs_f64() {
        return None;
    }
    let (owner_rate, thief_rate) = (
        view.rate(lease.worker, lease.job),
        view.rate(thief, lease.job),
    );
    let min_steal = view.min_steal(lease.job);
    // Both end together: thief_free + p / thief_rate = victim_done - p / owner_rate.
    let share = gap * owner_rate * thief_rate / (owner_rate + thief_rate);
    let left = lease.end - estimated.get(&victim).copied().unwrap_or(lease.position);
    let stolen = (share as u64).min(left);
    let worth = if started.contains(&victim) {
        min_steal
    } else {
        min_steal.min(left)
    };
    if stolen < worth {
        return None;
    }
    Some(Steal {
        victim,
        owner: lease.worker,
        at: lease.end - stolen,
        thief,
    })
}
