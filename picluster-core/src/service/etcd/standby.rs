//! A standby's endpoint: every connection, once its handshake has checked the
//! peer's certificate, is closed with [`CloseCode::NotLeader`] and the leader's
//! address as the reason (empty when no coordinator leads), so a worker or client
//! moves to the leader at once. A standby holds no state and does no work.

use super::Leadership;
use crate::wire::CloseCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::debug;

/// Handshakes a standby completes at once; more are refused before any
/// cryptography.
const MAX_HANDSHAKES: usize = 64;

/// Answers connections on `endpoint` until this coordinator is elected (returns the
/// fencing revision) or the election stops (`None`).
pub(super) async fn stand_by(
    endpoint: &quinn::Endpoint,
    leadership: &mut watch::Receiver<Leadership>,
) -> Option<i64> {
    let handshakes = Arc::new(AtomicUsize::new(0));
    loop {
        let leader = match &*leadership.borrow_and_update() {
            Leadership::Leader { revision } => return Some(*revision),
            Leadership::Standby { leader } => leader.clone().unwrap_or_default(),
        };
        tokio::select! {
            changed = leadership.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            incoming = endpoint.accept() => {
                let incoming = incoming?;
                if handshakes.load(Ordering::Acquire) >= MAX_HANDSHAKES {
                    incoming.refuse();
                    continue;
                }
                handshakes.fetch_add(1, Ordering::AcqRel);
                let handshakes = handshakes.clone();
                tokio::spawn(async move {
                    let connecting = tokio::time::timeout(Duration::from_secs(5), async {
                        incoming.await
                    });
                    if let Ok(Ok(connection)) = connecting.await {
                        debug!(remote = %connection.remote_address(), %leader, "not the leader: pointing the peer there");
                        connection.close((CloseCode::NotLeader as u32).into(), leader.as_bytes());
                    }
                    handshakes.fetch_sub(1, Ordering::AcqRel);
                });
            }
        }
    }
}
