//! The views of cluster commands: `status`, `drain` and `undrain`, `token create`
//! and `token list`, `revoke`, `release`, `token revoke`.

use super::super::cluster::{worker_kind, write_drained, write_status, write_tokens};
use super::{rate_unit, View};
use picluster_core::wire::{
    ClusterStatus, CredentialReport, MinerStatus, Revocation, TokenInfo, WorkerStatus,
};
use serde::Serialize;
use std::io::Write;

/// `picluster drain` and `undrain`: the worker's state afterwards.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct DrainedView<'a> {
    worker: &'a str,
    state: &'static str,
    leases: u32,
    connected: bool,
    reason: Option<&'a str>,
    #[serde(skip)]
    status: &'a WorkerStatus,
}

impl<'a> From<&'a WorkerStatus> for DrainedView<'a> {
    fn from(w: &'a WorkerStatus) -> DrainedView<'a> {
        DrainedView {
            worker: &w.name,
            state: w.state.as_str(),
            leases: w.leases,
            connected: w.worker.0 != 0,
            reason: w.drain_reason.as_deref(),
            status: w,
        }
    }
}

impl View for DrainedView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_drained(out, self.status)
    }
}

/// A connected peer's certificate.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct CertificateView<'a> {
    name: &'a str,
    role: &'static str,
    issued_ms: u64,
    expires_ms: u64,
}

/// A revoked name.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct RevokedNameView<'a> {
    name: &'a str,
    state: &'static str,
    revoked_ms: u64,
}

/// A worker as `status` shows it.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct WorkerView<'a> {
    name: &'a str,
    id: String,
    state: &'static str,
    threads: u32,
    arch: &'a str,
    #[serde(rename = "impl")]
    implementation: &'a str,
    kernels: &'a [String],
    rate: u64,
    rate_unit: &'static str,
    mhs: f64,
    hashes: u64,
    leases: u32,
    jobs: Vec<String>,
    drain_reason: Option<&'a str>,
    temperature_celsius: Option<f64>,
    throttled_flags: Option<u32>,
    silent_seconds: f64,
    connected_seconds: f64,
}

/// `picluster status`: certificates, revoked names, workers and jobs.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct StatusView<'a> {
    certificates: Vec<CertificateView<'a>>,
    revoked: Vec<RevokedNameView<'a>>,
    workers: Vec<WorkerView<'a>>,
    jobs: Vec<super::jobs::JobView<'a>>,
    /// Mining bridges (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    miners: Vec<MinerView<'a>>,
    /// Every coordinator, when several share etcd (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    coordinators: Vec<super::CoordinatorView>,
    /// etcd's members, when the cluster's state is in etcd (absent otherwise).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    etcd: Vec<super::EtcdMemberView>,
    #[serde(skip)]
    status: &'a ClusterStatus,
    #[serde(skip)]
    credentials: &'a CredentialReport,
}

impl<'a> StatusView<'a> {
    pub(in crate::cli) fn new(
        status: &'a ClusterStatus,
        credentials: &'a CredentialReport,
    ) -> StatusView<'a> {
        StatusView {
            certificates: credentials
                .connected
                .iter()
                .map(|c| CertificateView {
                    name: &c.name,
                    role: c.role.as_str(),
                    issued_ms: c.issued_ms,
                    expires_ms: c.expires_ms,
                })
                .collect(),
            revoked: credentials
                .revoked
                .iter()
                .map(|r| RevokedNameView {
                    name: &r.name,
                    state: "revoked",
                    revoked_ms: r.revoked_ms,
                })
                .collect(),
            workers: status
                .workers
                .iter()
                .map(|w| WorkerView {
                    name: &w.name,
                    id: w.worker.to_string(),
                    state: w.state.as_str(),
                    threads: w.threads,
                    arch: &w.arch,
                    implementation: &w.kernel_impl,
                    kernels: &w.kernels,
                    rate: w.rate_hps,
                    rate_unit: rate_unit(worker_kind(w, status)),
                    mhs: w.rate_hps as f64 / 1e6,
                    hashes: w.hashes,
                    leases: w.leases,
                    jobs: w.jobs.iter().map(ToString::to_string).collect(),
                    drain_reason: w.drain_reason.as_deref(),
                    temperature_celsius: w.millicelsius.map(|m| f64::from(m) / 1000.0),
                    throttled_flags: w.throttled,
                    silent_seconds: w.silent_ms as f64 / 1000.0,
                    connected_seconds: w.connected_ms as f64 / 1000.0,
                })
                .collect(),
            jobs: status.jobs.iter().map(super::jobs::JobView::from).collect(),
            miners: Vec::new(),
            coordinators: Vec::new(),
            etcd: Vec::new(),
            status,
            credentials,
        }
    }

    /// With the coordinators sharing etcd, and etcd's members, as they answered.
    pub(in crate::cli) fn with_ha(
        mut self,
        coordinators: Vec<super::CoordinatorView>,
        etcd: Vec<super::EtcdMemberView>,
    ) -> StatusView<'a> {
        self.coordinators = coordinators;
        self.etcd = etcd;
        self
    }

    /// With the mining bridges' reports.
    pub(in crate::cli) fn with_miners(mut self, miners: &'a [MinerStatus]) -> StatusView<'a> {
        let cluster_hps: u64 = self.status.workers.iter().map(|w| w.rate_hps).sum();
        self.miners = miners
            .iter()
            .map(|m| MinerView::new(m, cluster_hps))
            .collect();
        self
    }
}

impl View for StatusView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_status(out, self.status, self.credentials)?;
        if !self.miners.is_empty() {
            writeln!(out, "\nMining:")?;
        }
        for m in &self.miners {
            m.text(out)?;
        }
        super::coordinators::write_coordinators(out, &self.coordinators, &self.etcd)
    }
}

/// A mining bridge in `picluster status`.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct MinerView<'a> {
    client: &'a str,
    pool: &'a str,
    state: &'a str,
    last_error: Option<&'a str>,
    job: Option<&'a str>,
    difficulty: &'a str,
    submitted: u64,
    accepted: u64,
    stale: u64,
    rejected: std::collections::BTreeMap<&'a str, u64>,
    timed_out: u64,
    blocks: u64,
    last_block: Option<&'a str>,
    notify_to_work_p50_ms: Option<u64>,
    /// Shares sent per minute since the bridge started.
    shares_per_minute: f64,
    /// What an honest cluster sends at the difficulty: its hash rate ÷ (difficulty
    /// × 2^32), per minute (while it mines only the pool's work).
    expected_per_minute: Option<f64>,
    running_seconds: f64,
    report_age_seconds: f64,
}

impl<'a> MinerView<'a> {
    fn new(m: &'a MinerStatus, cluster_hps: u64) -> MinerView<'a> {
        let r = &m.report;
        let minutes = r.running_ms as f64 / 60_000.0;
        let expected = r
            .difficulty
            .parse::<f64>()
            .ok()
            .filter(|d| *d > 0.0)
            .map(|d| cluster_hps as f64 * 60.0 / (d * 4_294_967_296.0));
        MinerView {
            client: &m.client,
            pool: &r.pool,
            state: &r.state,
            last_error: r.last_error.as_deref(),
            job: r.job.as_deref(),
            difficulty: &r.difficulty,
            submitted: r.submitted,
            accepted: r.accepted,
            stale: r.stale,
            rejected: r.rejected.iter().map(|(k, n)| (k.as_str(), *n)).collect(),
            timed_out: r.timed_out,
            blocks: r.blocks,
            last_block: r.last_block.as_deref(),
            notify_to_work_p50_ms: r.latency_p50_ms,
            shares_per_minute: if minutes > 0.0 {
                r.submitted as f64 / minutes
            } else {
                0.0
            },
            expected_per_minute: expected,
            running_seconds: r.running_ms as f64 / 1000.0,
            report_age_seconds: m.age_ms as f64 / 1000.0,
        }
    }

    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "  {} on {}: {}{}, job {}, difficulty {}",
            self.client,
            self.pool,
            self.state,
            self.last_error
                .filter(|_| self.state != "mining")
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
            self.job.unwrap_or("-"),
            self.difficulty
        )?;
        let rejected: u64 = self.rejected.values().sum();
        writeln!(
            out,
            "    shares: {} accepted, {} rejected, {} stale, {} unanswered; {} blocks{}",
            self.accepted,
            rejected,
            self.stale,
            self.timed_out,
            self.blocks,
            self.last_block
                .map(|b| format!(" (last {b})"))
                .unwrap_or_default()
        )?;
        for (reason, n) in &self.rejected {
            writeln!(out, "      rejected {n}: {reason}")?;
        }
        writeln!(
            out,
            "    {:.1} shares/min sent{}; new work on the cluster {} after a notify (median)",
            self.shares_per_minute,
            self.expected_per_minute
                .map(|e| format!(", {e:.1}/min expected at the cluster's hash rate"))
                .unwrap_or_default(),
            self.notify_to_work_p50_ms
                .map_or_else(|| "-".to_string(), |ms| format!("{ms} ms"))
        )
    }
}

/// A join token, without its secret.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct TokenView<'a> {
    id: &'a str,
    role: &'static str,
    created_by: &'a str,
    created_ms: u64,
    expires_ms: u64,
    uses_left: u32,
    replace: bool,
}

/// `picluster token list`.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct TokensView<'a> {
    tokens: Vec<TokenView<'a>>,
    #[serde(skip)]
    source: &'a [TokenInfo],
}

impl<'a> From<&'a [TokenInfo]> for TokensView<'a> {
    fn from(tokens: &'a [TokenInfo]) -> TokensView<'a> {
        TokensView {
            tokens: tokens
                .iter()
                .map(|t| TokenView {
                    id: &t.id,
                    role: t.role.as_str(),
                    created_by: &t.created_by,
                    created_ms: t.created_ms,
                    expires_ms: t.expires_ms,
                    uses_left: t.uses_left,
                    replace: t.replace,
                })
                .collect(),
            source: tokens,
        }
    }
}

impl View for TokensView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_tokens(out, self.source)
    }
}

/// `picluster token create`: the token to give the new machine, and its terms.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct TokenCreatedView<'a> {
    token: String,
    id: &'a str,
    role: &'static str,
    expires_ms: u64,
    uses: u32,
    replace: bool,
    #[serde(skip)]
    info: &'a TokenInfo,
}

impl<'a> TokenCreatedView<'a> {
    pub(in crate::cli) fn new(token: String, info: &'a TokenInfo) -> TokenCreatedView<'a> {
        TokenCreatedView {
            token,
            id: &info.id,
            role: info.role.as_str(),
            expires_ms: info.expires_ms,
            uses: info.uses_left,
            replace: info.replace,
            info,
        }
    }
}

impl View for TokenCreatedView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let (token, info) = (&self.token, self.info);
        writeln!(out, "{token}")?;
        writeln!(
            out,
            "  {} token {}, {} use{}, valid until {}{}; on the new machine:\n  picluster-worker --join '{token}' --name NAME --state-dir /var/lib/picluster-worker",
            info.role,
            info.id,
            info.uses_left,
            if info.uses_left == 1 { "" } else { "s" },
            super::super::text::utc(info.expires_ms),
            if info.replace { ", may replace an enrolled name" } else { "" },
        )
    }
}

/// `picluster revoke`: the name, when it was revoked, and the connections closed.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct RevocationView<'a> {
    name: &'a str,
    state: &'static str,
    revoked_ms: u64,
    closed: u32,
}

impl<'a> RevocationView<'a> {
    pub(in crate::cli) fn new(name: &'a str, r: &Revocation) -> RevocationView<'a> {
        RevocationView {
            name,
            state: "revoked",
            revoked_ms: r.revoked_ms,
            closed: r.closed,
        }
    }
}

impl View for RevocationView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{} revoked: certificates issued before {} are refused; {} connection{} closed",
            self.name,
            super::super::text::utc(self.revoked_ms),
            self.closed,
            if self.closed == 1 { "" } else { "s" }
        )
    }
}

/// A change to one named thing (`release`: a worker; `token revoke`: a token): its
/// name under `key`, and its state afterwards.
#[derive(Clone, Debug)]
pub(in crate::cli) struct ChangedView<'a> {
    key: &'static str,
    name: &'a str,
    state: &'static str,
    text: String,
}

impl<'a> ChangedView<'a> {
    /// A worker released from quarantine.
    pub(in crate::cli) fn released(worker: &'a str) -> ChangedView<'a> {
        ChangedView {
            key: "worker",
            name: worker,
            state: "released",
            text: format!("{worker} released"),
        }
    }

    /// A join token withdrawn.
    pub(in crate::cli) fn token_revoked(id: &'a str) -> ChangedView<'a> {
        ChangedView {
            key: "token",
            name: id,
            state: "revoked",
            text: format!("token {id} revoked"),
        }
    }
}

impl Serialize for ChangedView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(self.key, self.name)?;
        map.serialize_entry("state", self.state)?;
        map.end()
    }
}

impl View for ChangedView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "{}", self.text)
    }
}
