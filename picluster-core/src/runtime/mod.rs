//! What every picluster program needs around its async work, on the IO side and
//! apart from the coordinator service, so that a worker or a client build carries no
//! coordinator: a shutdown signal, a small runtime, a stderr a lost log sink cannot
//! turn into a crash, and the HTTP endpoint that serves metrics to Prometheus; and,
//! for the command-line programs (feature `cli`), configuration files and man pages.
//!
//! # Layout
//! - `process`: [`shutdown_signal`], [`background_runtime`], [`LossyStderr`],
//!   [`eprint_lossy`], [`EXIT_BROKEN_PIPE`].
//! - `http`: [`bind_metrics`], [`serve_metrics`], [`OPENMETRICS`] (feature `http`).
//! - `config`: TOML configuration files (feature `cli`).
//! - `manpages`: [`write_manpages`] (feature `cli`).

#[cfg(feature = "cli")]
pub mod config;
#[cfg(feature = "http")]
mod http;
#[cfg(feature = "cli")]
mod manpages;
mod process;

#[cfg(feature = "cli")]
pub use manpages::write_manpages;

#[cfg(feature = "http")]
pub use http::{
    bind_metrics, serve_metrics, MAX_METRICS_CONNECTIONS, METRICS_CONNECTION_LIFETIME,
    METRICS_HEADER_TIMEOUT, OPENMETRICS,
};
pub use process::{
    background_runtime, eprint_lossy, shutdown_signal, LossyStderr, EXIT_BROKEN_PIPE,
};
