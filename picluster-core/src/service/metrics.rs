//! The coordinator's metrics for Prometheus, in the OpenMetrics text format
//! (prometheus-client), built from a [`MetricsSnapshot`] and what the driver adds
//! ([`DriverMetrics`]). The HTTP endpoint that serves them, shared with the worker,
//! is [`crate::runtime::serve_metrics`].
//!
//! Names follow the Prometheus conventions: a `picluster_` prefix, base units
//! (seconds, indices), `_total` on counters, and no label beyond `worker`, `kind`,
//! `state`, `role`, `impl`, and for mining bridges `client`, `pool` and `verdict`.

use crate::coordinator::MetricsSnapshot;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// What the coordinator's driver adds to the state machine's snapshot.
#[derive(Clone, Debug, Default)]
pub struct DriverMetrics {
    /// Seconds the event loop spent handling inputs, timers and effects.
    pub busy_seconds: f64,
    /// Turns of the event loop.
    pub turns: u64,
    /// Store commits and the records they wrote (`None`: no store).
    pub journal: Option<(u64, u64)>,
    /// The leader's term, when coordinators share etcd (`None`: one coordinator).
    pub term: Option<u64>,
}

type Labels = Vec<(&'static str, String)>;

fn gauge_f64() -> Gauge<f64, AtomicU64> {
    Gauge::default()
}

/// Whether this coordinator leads (1) or stands by (0), and its term while it leads:
/// for coordinators sharing etcd.
fn register_leadership(registry: &mut Registry, term: Option<u64>) {
    let leading = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
    leading.set(i64::from(term.is_some()));
    registry.register(
        "coordinator_leading",
        "1 while this coordinator leads, 0 while it stands by (coordinators sharing etcd)",
        leading,
    );
    if let Some(term) = term {
        let t = Gauge::<i64, std::sync::atomic::AtomicI64>::default();
        t.set(i64::try_from(term).unwrap_or(i64::MAX));
        registry.register(
            "coordinator_term",
            "The leader's term: counted up by each coordinator elected",
            t,
        );
    }
}

/// A standby's metrics (coordinators sharing etcd): `picluster_coordinator_leading 0`.
pub fn encode_standby() -> String {
    let mut registry = Registry::with_prefix("picluster");
    register_leadership(&mut registry, None);
    let mut text = String::new();
    let _ = encode(&mut text, &registry);
    text
}

/// The coordinator's metrics in the OpenMetrics text format.
pub fn encode_coordinator(snapshot: &MetricsSnapshot, driver: &DriverMetrics) -> String {
    let mut registry = Registry::with_prefix("picluster");
    let worker = |name: &str| vec![("worker", name.to_string())];

    let rate = Family::<Labels, Gauge<f64, AtomicU64>>::new_with_constructor(gauge_f64);
    let up = Family::<Labels, Gauge>::default();
    let threads = Family::<Labels, Gauge>::default();
    let indices = Family::<Labels, Counter>::default();
    let chunks = Family::<Labels, Counter>::default();
    let expired = Family::<Labels, Counter>::default();
    let stolen = Family::<Labels, Counter>::default();
    let lost = Family::<Labels, Counter>::default();
    let solutions = Family::<Labels, Counter>::default();
    let rejected = Family::<Labels, Counter>::default();
    let by_state = Family::<Labels, Gauge>::default();
    for state in [
        "idle",
        "busy",
        "draining",
        "drained",
        "unresponsive",
        "quarantined",
    ] {
        let _ = by_state.get_or_create(&vec![("state", state.to_string())]);
    }
    for w in &snapshot.workers {
        let labels = worker(&w.name);
        rate.get_or_create(&vec![("worker", w.name.clone()), ("kind", w.kind.clone())])
            .set(if w.connected { w.rate } else { 0.0 });
        up.get_or_create(&labels).set(i64::from(w.connected));
        threads.get_or_create(&labels).set(i64::from(w.threads));
        let t = &w.totals;
        indices.get_or_create(&labels).inc_by(t.indices);
        chunks.get_or_create(&labels).inc_by(t.chunks);
        expired.get_or_create(&labels).inc_by(t.expired);
        stolen.get_or_create(&labels).inc_by(t.stolen);
        lost.get_or_create(&labels).inc_by(t.lost);
        solutions.get_or_create(&labels).inc_by(t.solutions);
        rejected.get_or_create(&labels).inc_by(t.rejected);
        if let Some(state) = w.state {
            by_state
                .get_or_create(&vec![("state", state.as_str().to_string())])
                .inc();
        }
    }
    registry.register(
        "worker_rate_per_second",
        "Each connected worker's measured rate (its benchmark until measured): SHA-256d hashes per second, or indices per second for other kinds",
        rate,
    );
    registry.register(
        "worker_up",
        "Whether the worker is connected (1) or not (0)",
        up,
    );
    registry.register("worker_threads", "The worker's compute threads", threads);
    registry.register(
        "worker_indices",
        "Keyspace indices the worker committed (this coordinator run)",
        indices,
    );
    registry.register(
        "worker_chunks",
        "Chunks (leases) the worker was given",
        chunks,
    );
    registry.register(
        "worker_leases_expired",
        "The worker's leases that expired (it went silent or stopped moving)",
        expired,
    );
    registry.register(
        "worker_leases_stolen",
        "The worker's leases cut short to give their tail to an idle worker",
        stolen,
    );
    registry.register(
        "worker_leases_lost",
        "The worker's leases returned to the queue when its connection ended",
        lost,
    );
    registry.register(
        "worker_solutions",
        "Verified solutions the worker found",
        solutions,
    );
    registry.register(
        "worker_rejected_claims",
        "The worker's claims refused as false (each quarantines it)",
        rejected,
    );
    registry.register(
        "workers",
        "Connected and quarantined workers by state",
        by_state,
    );

    let jobs = Family::<Labels, Gauge>::default();
    for (state, n) in &snapshot.jobs {
        jobs.get_or_create(&vec![("state", state.to_string())])
            .set(*n as i64);
    }
    registry.register("jobs", "Jobs the coordinator keeps, by state", jobs);
    let submitted = Counter::<u64>::default();
    submitted.inc_by(snapshot.submitted);
    registry.register("jobs_submitted", "Jobs submitted (this run)", submitted);
    // Floats: a default hashcash job's keyspace (2^64 - 1) does not fit an i64.
    let done = Family::<Labels, Gauge<f64, AtomicU64>>::new_with_constructor(gauge_f64);
    let total = Family::<Labels, Gauge<f64, AtomicU64>>::new_with_constructor(gauge_f64);
    for (kind, p) in &snapshot.progress {
        let labels = vec![("kind", kind.clone())];
        done.get_or_create(&labels).set(p.done as f64);
        total.get_or_create(&labels).set(p.total as f64);
    }
    registry.register(
        "live_job_indices_done",
        "Indices searched of the queued and running jobs, by kind",
        done,
    );
    registry.register(
        "live_job_indices",
        "Keyspace of the queued and running jobs, by kind",
        total,
    );
    let connections = Family::<Labels, Gauge>::default();
    for (role, n) in &snapshot.connections {
        connections
            .get_or_create(&vec![("role", role.to_string())])
            .set(*n as i64);
    }
    registry.register("connections", "Connected peers by role", connections);

    let stats = &snapshot.stats;
    for (name, help, value) in [
        (
            "leases_expired",
            "Leases taken back from silent workers",
            stats.expired_leases,
        ),
        (
            "leases_lost",
            "Leases taken back because their worker disconnected",
            stats.lost_leases,
        ),
        (
            "steals",
            "Ranges stolen from one lease for another worker",
            stats.steals,
        ),
        (
            "violations",
            "Connections closed for breaking the protocol or false claims",
            stats.violations,
        ),
        (
            "leases_untrimmed",
            "Leases taken back because their worker did not honour a trim",
            stats.unhonoured_trims,
        ),
        (
            "leases_stalled",
            "Leases taken back because they moved far slower than their worker can",
            stats.stalled_leases,
        ),
        ("shares_verified", "Shares verified", stats.shares),
        (
            "audited_indices",
            "Indices searched again by audits of other workers' ranges",
            stats.audited_indices,
        ),
        (
            "stale_reports",
            "Reports naming a lease that had ended",
            stats.stale_reports,
        ),
    ] {
        let counter = Counter::<u64>::default();
        counter.inc_by(value);
        registry.register(name, help, counter);
    }
    let audits = Family::<Labels, Counter>::default();
    for (result, n) in [
        ("passed", stats.audits_passed),
        ("failed", stats.audits_failed),
        ("dropped", stats.audits_dropped),
    ] {
        audits
            .get_or_create(&vec![("result", result.to_string())])
            .inc_by(n);
    }
    registry.register(
        "audits",
        "Audits (a finished range searched again by another worker), by result",
        audits,
    );
    let busy = Counter::<f64, AtomicU64>::default();
    busy.inc_by(driver.busy_seconds);
    registry.register_with_unit(
        "event_loop_busy",
        "Time the coordinator's event loop spent working (not waiting)",
        prometheus_client::registry::Unit::Seconds,
        busy,
    );
    let turns = Counter::<u64>::default();
    turns.inc_by(driver.turns);
    registry.register(
        "event_loop_turns",
        "Turns of the coordinator's event loop",
        turns,
    );
    if let Some((commits, records)) = driver.journal {
        let c = Counter::<u64>::default();
        c.inc_by(commits);
        registry.register("journal_commits", "Job store transactions committed", c);
        let r = Counter::<u64>::default();
        r.inc_by(records);
        registry.register("journal_records", "Records written to the job store", r);
    }
    if let Some(term) = driver.term {
        register_leadership(&mut registry, Some(term));
    }
    register_miners(&mut registry, &snapshot.miners);
    let mut text = String::new();
    // Writing into a String does not fail.
    let _ = encode(&mut text, &registry);
    text
}

/// The mining bridges' pool statistics, by `client` and `pool`: counts of their
/// run (a restarted bridge starts again from 0, as a restarted process's counters
/// do).
fn register_miners(registry: &mut Registry, miners: &[(String, crate::wire::MinerReport)]) {
    let shares = Family::<Labels, Counter>::default();
    let blocks = Family::<Labels, Counter>::default();
    let up = Family::<Labels, Gauge>::default();
    let difficulty = Family::<Labels, Gauge<f64, AtomicU64>>::new_with_constructor(gauge_f64);
    let latency = Family::<Labels, Gauge<f64, AtomicU64>>::new_with_constructor(gauge_f64);
    for (client, r) in miners {
        let labels = vec![("client", client.clone()), ("pool", r.pool.clone())];
        let with = |key: &'static str, value: &str| {
            let mut l = labels.clone();
            l.push((key, value.to_string()));
            l
        };
        for (verdict, n) in [
            ("accepted", r.accepted),
            ("stale", r.stale),
            ("rejected", r.rejected.iter().map(|(_, n)| n).sum()),
            ("unanswered", r.timed_out),
        ] {
            shares.get_or_create(&with("verdict", verdict)).inc_by(n);
        }
        blocks.get_or_create(&labels).inc_by(r.blocks);
        up.get_or_create(&labels)
            .set(i64::from(r.state == "mining"));
        difficulty
            .get_or_create(&labels)
            .set(r.difficulty.parse().unwrap_or(0.0));
        if let Some(ms) = r.latency_p50_ms {
            latency.get_or_create(&labels).set(ms as f64 / 1000.0);
        }
    }
    registry.register(
        "pool_shares",
        "Shares a mining bridge sent its pool, by the pool's verdict",
        shares,
    );
    registry.register(
        "pool_blocks",
        "Shares a mining bridge found that met the block's own target",
        blocks,
    );
    registry.register(
        "pool_up",
        "Whether a mining bridge is authorized at its pool and mining",
        up,
    );
    registry.register(
        "pool_difficulty",
        "The share difficulty of a mining bridge's current pool job",
        difficulty,
    );
    registry.register_with_unit(
        "pool_notify_to_work",
        "Median time from a pool's notify to the cluster's first chunk of its job",
        prometheus_client::registry::Unit::Seconds,
        latency,
    );
}
