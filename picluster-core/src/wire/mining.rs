//! What a mining bridge (`picluster mine`) tells the coordinator of its pool, and
//! what `picluster status` and the metrics show of it (minor 6). The coordinator
//! keeps each bridge's last report with its connection and forgets it with it.

use super::MAX_REASON_LEN;
use serde::{Deserialize, Serialize};

/// Rejection reasons a report carries at most (the most frequent first).
pub const MAX_REJECT_REASONS: usize = 16;

/// A bridge's pool statistics, as it last reported them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerReport {
    /// The pool in use or being connected to (`stratum+tcp://HOST:PORT`).
    pub pool: String,
    /// `connecting`, `mining` or `lost`.
    pub state: String,
    /// Why the last pool connection was lost.
    pub last_error: Option<String>,
    /// Pool connections made.
    pub connections: u64,
    /// The pool's current job id.
    pub job: Option<String>,
    /// The share difficulty of the current job, as a decimal.
    pub difficulty: String,
    /// Shares sent.
    pub submitted: u64,
    /// Shares accepted.
    pub accepted: u64,
    /// Shares rejected as stale.
    pub stale: u64,
    /// Shares rejected for other reasons: (the pool's reason, count).
    pub rejected: Vec<(String, u64)>,
    /// Shares without an answer in time.
    pub timed_out: u64,
    /// Shares that also met the block's target.
    pub blocks: u64,
    /// The last of them, display order, hex.
    pub last_block: Option<String>,
    /// Median milliseconds from a notify to the cluster's first chunk of its job.
    pub latency_p50_ms: Option<u64>,
    /// How long the bridge has run, in milliseconds.
    pub running_ms: u64,
}

impl MinerReport {
    /// The report cut to the sizes the coordinator keeps: texts to
    /// [`MAX_REASON_LEN`] bytes, reasons to [`MAX_REJECT_REASONS`].
    pub fn bounded(mut self) -> MinerReport {
        for text in [&mut self.pool, &mut self.state, &mut self.difficulty]
            .into_iter()
            .chain(self.last_error.as_mut())
            .chain(self.job.as_mut())
            .chain(self.last_block.as_mut())
        {
            cut(text);
        }
        self.rejected.sort_by_key(|r| std::cmp::Reverse(r.1));
        self.rejected.truncate(MAX_REJECT_REASONS);
        for (reason, _) in &mut self.rejected {
            cut(reason);
        }
        self
    }
}

fn cut(text: &mut String) {
    if text.len() > MAX_REASON_LEN {
        let mut at = MAX_REASON_LEN;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
    }
}

/// A bridge as `picluster status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinerStatus {
    /// The bridge's client name.
    pub client: String,
    /// Its last report.
    pub report: MinerReport,
    /// Milliseconds since that report.
    pub age_ms: u64,
}
