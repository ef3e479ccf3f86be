//! The views of cluster commands: `status`, `drain` and `undrain`, `token create`
//! and `token list`, `revoke`, `release`, `token revoke`.

use super::super::cluster::{worker_kind, write_drained, write_status, write_tokens};
use super::{rate_unit, View};
use picluster_core::wire::{ClusterStatus, CredentialReport, Revocation, TokenInfo, WorkerStatus};
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
            status,
            credentials,
        }
    }
}

impl View for StatusView<'_> {
    fn text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        write_status(out, self.status, self.credentials)
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
