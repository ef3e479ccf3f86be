//! The worker's own metrics for Prometheus (`picluster-worker --metrics ADDR`):
//! its benchmark per kernel implementation, threads configured and running, indices
//! computed, CPU temperature and the firmware's throttling flags, connection and
//! reconnections. Served by `picluster_core::runtime::serve_metrics`.

use crate::compute::Compute;
use crate::thermal::Thermal;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// What the metrics read, shared with the daemon.
#[derive(Debug)]
pub(crate) struct WorkerState {
    pub(crate) compute: Arc<Compute>,
    pub(crate) kernel_impl: String,
    pub(crate) bench_hps: u64,
    pub(crate) thermal: Thermal,
    pub(crate) max_temp: Option<f64>,
    pub(crate) connected: AtomicBool,
    pub(crate) reconnects: AtomicU64,
}

type Labels = Vec<(&'static str, String)>;

/// The metrics in the OpenMetrics text format.
pub(crate) fn encode_worker(state: &WorkerState) -> String {
    let mut registry = Registry::with_prefix("picluster_worker");
    let bench = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    bench
        .get_or_create(&vec![("impl", state.kernel_impl.clone())])
        .set(state.bench_hps as f64);
    registry.register(
        "benchmark_hashes_per_second",
        "SHA-256d hashes per second of the kernel implementation in use, all threads, measured at start",
        bench,
    );
    let gauge = |registry: &mut Registry, name: &str, help: &str, value: i64| {
        let g = Gauge::<i64>::default();
        g.set(value);
        registry.register(name, help, g);
    };
    gauge(
        &mut registry,
        "configured_threads",
        "Compute threads configured",
        state.compute.threads() as i64,
    );
    gauge(
        &mut registry,
        "active_threads",
        "Compute threads running now (fewer while the board is too hot)",
        state.compute.active() as i64,
    );
    gauge(
        &mut registry,
        "connected",
        "Whether the worker has a session with the coordinator",
        i64::from(state.connected.load(Ordering::Relaxed)),
    );
    let counter = |registry: &mut Registry, name: &str, help: &str, value: u64| {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        registry.register(name, help, c);
    };
    counter(
        &mut registry,
        "computed_indices",
        "Keyspace indices searched (its start-up benchmark not counted)",
        state.compute.computed(),
    );
    counter(
        &mut registry,
        "reconnects",
        "Sessions with the coordinator that ended and were dialled again",
        state.reconnects.load(Ordering::Relaxed),
    );
    if let Some(celsius) = state.thermal.celsius() {
        let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        g.set(celsius);
        registry.register_with_unit(
            "cpu_temperature",
            "The CPU's temperature (the hottest CPU thermal zone)",
            Unit::Celsius,
            g,
        );
    }
    if let Some(max) = state.max_temp {
        let g = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        g.set(max);
        registry.register_with_unit(
            "max_temperature",
            "The temperature at which the worker runs fewer threads (--max-temp)",
            Unit::Celsius,
            g,
        );
    }
    if let Some(flags) = crate::thermal::throttled_flags() {
        gauge(
            &mut registry,
            "throttled",
            "Whether the firmware throttles or caps the clock now (vcgencmd get_throttled bits 1-3)",
            i64::from(flags & 0b1110 != 0),
        );
        gauge(
            &mut registry,
            "throttled_flags",
            "The firmware's throttling flags as vcgencmd get_throttled prints them",
            i64::from(flags),
        );
    }
    let mut text = String::new();
    let _ = encode(&mut text, &registry);
    text
}
