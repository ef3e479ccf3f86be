//! Every command's output as a typed view: built once from what the coordinator
//! answered, serialized as the `--json` line (so the JSON schema is these types, with
//! golden tests below), and rendered as text by [`View::text`]. A view's `#[serde(skip)]`
//! fields carry what only the text shows.
//!
//! # Layout
//! - this file: [`View`], [`emit`], the pieces several views share (times,
//!   solutions) and the JSON error.
//! - `jobs`: reports, listings, a job's detail, cancellations, removals.
//! - `cluster`: status, drains, tokens, revocations, releases.
//! - `golden`: the JSON of every view, byte for byte.

mod cluster;
mod coordinators;
#[cfg(test)]
mod golden;
mod jobs;

pub(in crate::cli) use cluster::{
    ChangedView, DrainedView, RevocationView, StatusView, TokenCreatedView, TokensView,
};
pub(in crate::cli) use coordinators::{CoordinatorView, EtcdMemberView};
pub(in crate::cli) use jobs::{
    DetailView, ForgottenView, JobStatesView, JobsView, ReportView, ReportsView,
};

use picluster_core::hex;
use picluster_core::kernel::{Solution, SolutionDetail};
use picluster_core::wire::JobTimes;
use serde::Serialize;
use std::io::Write;

/// A command's output: one typed value, shown as text or as its JSON.
pub(in crate::cli) trait View: Serialize {
    /// The text form, for people.
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// Writes `view` as one JSON line (`--json`) or as its text.
pub(in crate::cli) fn emit(
    out: &mut dyn Write,
    view: &impl View,
    json: bool,
) -> std::io::Result<()> {
    if json {
        let line = serde_json::to_string(view).map_err(std::io::Error::other)?;
        writeln!(out, "{line}")
    } else {
        view.text(out)
    }
}

/// When a job was submitted, started and ended (Unix milliseconds).
#[derive(Clone, Copy, Debug, Serialize)]
pub(in crate::cli) struct TimesView {
    submitted_ms: u64,
    started_ms: Option<u64>,
    ended_ms: Option<u64>,
}

impl From<&JobTimes> for TimesView {
    fn from(t: &JobTimes) -> TimesView {
        TimesView {
            submitted_ms: t.submitted_ms,
            started_ms: t.started_ms,
            ended_ms: t.ended_ms,
        }
    }
}

/// A solution, by kind, and the worker that found it (`null` if unknown).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub(in crate::cli) enum SolutionView<'a> {
    Sha256d {
        nonce: u32,
        version: u32,
        hash: String,
        worker: Option<&'a str>,
    },
    Hashcash {
        counter: u64,
        hash: String,
        worker: Option<&'a str>,
    },
    Template {
        extranonce2: String,
        ntime: u32,
        version: u32,
        nonce: u32,
        block: bool,
        hash: String,
        worker: Option<&'a str>,
    },
    Preimage {
        index: u64,
        /// The candidate as text, when it is UTF-8.
        preimage: Option<&'a str>,
        preimage_hex: String,
        hash: String,
        worker: Option<&'a str>,
    },
}

impl<'a> SolutionView<'a> {
    pub(super) fn new(s: &'a Solution, worker: Option<&'a str>) -> SolutionView<'a> {
        let hash = hex::encode(&s.hash);
        match &s.detail {
            SolutionDetail::Sha256d { nonce, version } => SolutionView::Sha256d {
                nonce: *nonce,
                version: *version,
                hash,
                worker,
            },
            SolutionDetail::Hashcash { counter } => SolutionView::Hashcash {
                counter: *counter,
                hash,
                worker,
            },
            SolutionDetail::Template {
                extranonce2,
                ntime,
                version,
                nonce,
                block,
            } => SolutionView::Template {
                extranonce2: hex::encode(extranonce2),
                ntime: *ntime,
                version: *version,
                nonce: *nonce,
                block: *block,
                hash,
                worker,
            },
            SolutionDetail::Preimage { candidate } => SolutionView::Preimage {
                index: s.index,
                preimage: std::str::from_utf8(candidate).ok(),
                preimage_hex: hex::encode(candidate),
                hash,
                worker,
            },
        }
    }
}

/// The unit of a rate on a job of `kind`.
fn rate_unit(kind: &str) -> &'static str {
    if kind == "sha256d" {
        "H/s"
    } else {
        "indices/s"
    }
}

/// A command's error with `--json`: what went wrong, its kind, and whether trying
/// again can help.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct ErrorView<'a> {
    pub(in crate::cli) error: &'a str,
    pub(in crate::cli) kind: &'static str,
    pub(in crate::cli) retryable: bool,
}

impl View for ErrorView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "picluster: {}", self.error)
    }
}
