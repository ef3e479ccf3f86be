//! What `picluster status` shows of coordinators sharing etcd: each coordinator as
//! it answers a connection (leading, standing by, or not answering), and each etcd
//! member as it answers a status request.

use serde::Serialize;
use std::io::Write;

/// One coordinator, as it answered.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct CoordinatorView {
    pub(in crate::cli) address: String,
    /// `leading`, `standby` or `unreachable`.
    pub(in crate::cli) state: &'static str,
    /// A standby's word on who leads.
    pub(in crate::cli) leader: Option<String>,
    /// Why it did not answer.
    pub(in crate::cli) error: Option<String>,
}

/// One etcd member, as it answered.
#[derive(Clone, Debug, Serialize)]
pub(in crate::cli) struct EtcdMemberView {
    pub(in crate::cli) endpoint: String,
    /// `leader`, `follower` or `unreachable`.
    pub(in crate::cli) state: &'static str,
    pub(in crate::cli) version: Option<String>,
    pub(in crate::cli) db_bytes: Option<i64>,
    pub(in crate::cli) raft_term: Option<u64>,
    pub(in crate::cli) error: Option<String>,
}

pub(super) fn write_coordinators(
    out: &mut dyn Write,
    coordinators: &[CoordinatorView],
    etcd: &[EtcdMemberView],
) -> std::io::Result<()> {
    if !coordinators.is_empty() {
        writeln!(out, "\nCoordinators:")?;
    }
    for c in coordinators {
        let detail = match (c.state, &c.leader, &c.error) {
            ("standby", Some(leader), _) => format!(" (the leader is at {leader})"),
            ("standby", None, _) => " (no coordinator leads right now)".to_string(),
            (_, _, Some(e)) => format!(" ({e})"),
            _ => String::new(),
        };
        writeln!(out, "  {:<24} {}{detail}", c.address, c.state)?;
    }
    if etcd.is_empty() {
        return Ok(());
    }
    let healthy = etcd.iter().filter(|m| m.state != "unreachable").count();
    writeln!(
        out,
        "etcd: {healthy} of {} members answer{}",
        etcd.len(),
        if healthy * 2 > etcd.len() {
            ""
        } else {
            " (no majority: the cluster cannot write)"
        }
    )?;
    for m in etcd {
        match &m.error {
            Some(e) => writeln!(out, "  {:<32} unreachable ({e})", m.endpoint)?,
            None => writeln!(
                out,
                "  {:<32} {}, etcd {}, {:.1} MiB, raft term {}",
                m.endpoint,
                m.state,
                m.version.as_deref().unwrap_or("?"),
                m.db_bytes.unwrap_or(0) as f64 / 1_048_576.0,
                m.raft_term.unwrap_or(0)
            )?,
        }
    }
    Ok(())
}
