//! What the bridge tells of its pool: the connection, the current job and
//! difficulty, shares by verdict, blocks, and how soon the cluster took up new work.
//! Owned by the bridge, read by whoever reports it (the log, `picluster mine`'s
//! final line, tests).

use super::session::Verdict;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};

/// Latencies kept for the percentiles.
const LATENCIES: usize = 1000;

/// A bridge's pool statistics.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PoolStats {
    /// The pool in use or being connected to.
    pub pool: String,
    /// `connecting`, `mining` or `lost`.
    pub state: String,
    /// Why the last connection was lost.
    pub last_error: Option<String>,
    /// Connections made (the first included).
    pub connections: u64,
    /// The pool's current job id.
    pub job: Option<String>,
    /// The difficulty of the current job.
    pub difficulty: f64,
    /// Shares sent.
    pub submitted: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected as stale.
    pub stale: u64,
    /// Shares rejected for another reason, by the pool's reason.
    pub rejected: BTreeMap<String, u64>,
    /// Shares without an answer in time.
    pub timed_out: u64,
    /// Shares that also met the block's target.
    pub blocks: u64,
    /// The last of them (display order, hex).
    pub last_block: Option<String>,
    /// Milliseconds from a notify to the cluster's first chunk of its job, most
    /// recent last.
    #[serde(skip)]
    pub latencies_ms: VecDeque<u64>,
}

impl PoolStats {
    pub(super) fn connecting(&mut self, pool: &str) {
        self.pool = pool.to_string();
        self.state = "connecting".into();
        self.job = None;
    }

    pub(super) fn ready(&mut self, pool: &str) {
        self.pool = pool.to_string();
        self.state = "mining".into();
        self.connections += 1;
    }

    pub(super) fn lost(&mut self, why: &str) {
        self.state = "lost".into();
        self.last_error = Some(why.to_string());
    }

    pub(super) fn work(&mut self, job: &str, difficulty: f64) {
        self.job = Some(job.to_string());
        self.difficulty = difficulty;
    }

    pub(super) fn submitted(&mut self) {
        self.submitted += 1;
    }

    pub(super) fn block(&mut self, hash: &[u8; 32]) {
        self.blocks += 1;
        self.last_block = Some(picluster_core::hex::encode(hash));
    }

    pub(super) fn verdict(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Accepted => self.accepted += 1,
            Verdict::Stale(_) => self.stale += 1,
            Verdict::Rejected(reason) => *self.rejected.entry(reason.clone()).or_default() += 1,
            Verdict::TimedOut => self.timed_out += 1,
        }
    }

    pub(super) fn latency(&mut self, ms: u64) {
        if self.latencies_ms.len() == LATENCIES {
            self.latencies_ms.pop_front();
        }
        self.latencies_ms.push_back(ms);
    }

    /// The report the coordinator keeps (`picluster status`), after `running` of
    /// mining.
    pub fn report(&self, running: std::time::Duration) -> picluster_core::wire::MinerReport {
        picluster_core::wire::MinerReport {
            pool: self.pool.clone(),
            state: self.state.clone(),
            last_error: self.last_error.clone(),
            connections: self.connections,
            job: self.job.clone(),
            difficulty: format!("{}", self.difficulty),
            submitted: self.submitted,
            accepted: self.accepted,
            stale: self.stale,
            rejected: self.rejected.iter().map(|(r, n)| (r.clone(), *n)).collect(),
            timed_out: self.timed_out,
            blocks: self.blocks,
            last_block: self.last_block.clone(),
            latency_p50_ms: self.latency_quantile(0.5),
            running_ms: running.as_millis() as u64,
        }
    }

    /// Shares rejected for any reason but staleness.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// The `q` quantile (0 to 1) of the notify-to-work latencies kept, in ms.
    pub fn latency_quantile(&self, q: f64) -> Option<u64> {
        let mut v: Vec<u64> = self.latencies_ms.iter().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        Some(v[at])
    }
}
