//! `picluster status` on coordinators sharing etcd: each coordinator a bundle names
//! is dialled (the leader welcomes, a standby names the leader), and each etcd member
//! the cluster directory names is asked for its status.

use crate::cli::output::{CoordinatorView, EtcdMemberView};
use crate::client::{Client, ClientError};
use picluster_core::net::NetError;
use picluster_core::service::etcd::EtcdOptions;
use picluster_core::trust::Bundle;
use std::time::Duration;

/// How long one coordinator or etcd member may take to answer.
const PROBE: Duration = Duration::from_secs(3);

/// Every coordinator of `bundle` (none when it names only one), as each answers.
pub(super) async fn coordinators(bundle: &Bundle) -> Vec<CoordinatorView> {
    let addresses = bundle.addresses();
    if addresses.len() < 2 {
        return Vec::new();
    }
    let probes = addresses.into_iter().map(|address| {
        let one = Bundle {
            coordinator: address.clone(),
            coordinators: Vec::new(),
            ..bundle.clone()
        };
        async move {
            let answer = tokio::time::timeout(PROBE, Client::connect(&one)).await;
            let (state, leader, error) = match answer {
                Ok(Ok(client)) => {
                    client.shutdown().await;
                    ("leading", None, None)
                }
                Ok(Err(ClientError::Net(NetError::NotLeader { leader }))) => {
                    ("standby", leader, None)
                }
                Ok(Err(e)) => ("unreachable", None, Some(e.to_string())),
                Err(_) => ("unreachable", None, Some(format!("no answer in {PROBE:?}"))),
            };
            CoordinatorView {
                address,
                state,
                leader,
                error,
            }
        }
    });
    join_all(probes).await
}

/// Every member of `etcd`, as each answers.
pub(super) async fn etcd_members(etcd: &EtcdOptions) -> Vec<EtcdMemberView> {
    let probes = etcd.endpoints.clone().into_iter().map(|endpoint| {
        // One member at a time, with the cluster's TLS if it has any.
        let one = EtcdOptions {
            endpoints: vec![endpoint.clone()],
            ..etcd.clone()
        };
        async move {
            let answer = tokio::time::timeout(PROBE, async {
                let mut client = one.connect().await.map_err(|e| e.to_string())?;
                client.status().await.map_err(|e| e.to_string())
            })
            .await;
            match answer {
                Ok(Ok(status)) => EtcdMemberView {
                    endpoint: endpoint.clone(),
                    state: if status
                        .header()
                        .is_some_and(|h| h.member_id() == status.leader())
                    {
                        "leader"
                    } else {
                        "follower"
                    },
                    version: Some(status.version().to_string()),
                    db_bytes: Some(status.db_size()),
                    raft_term: Some(status.raft_term()),
                    error: None,
                },
                Ok(Err(e)) => unreachable_member(&endpoint, e),
                Err(_) => unreachable_member(&endpoint, format!("no answer in {PROBE:?}")),
            }
        }
    });
    join_all(probes).await
}

fn unreachable_member(endpoint: &str, error: String) -> EtcdMemberView {
    EtcdMemberView {
        endpoint: endpoint.to_string(),
        state: "unreachable",
        version: None,
        db_bytes: None,
        raft_term: None,
        error: Some(error),
    }
}

/// Runs every future at once; their outputs in order.
async fn join_all<T: Send + 'static>(
    futures: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}
