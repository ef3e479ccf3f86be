//! One connection to the coordinator: the hello and welcome ([`open`]), the reader
//! task that routes replies by request id and pushed job events by job id, and a
//! request sent and its reply awaited ([`Inner::request`]).

use super::watch::JobEvent;
use super::ClientError;
use picluster_core::ids::{JobId, RequestId};
use picluster_core::net::{self, FrameReader, FrameWriter, Session};
use picluster_core::sync::lock;
use picluster_core::trust::Bundle;
use picluster_core::wire::{
    ClientHello, ClientToCoord, CloseCode, CoordToClient, JobRequest, MINOR_CLIENT_REPORTS,
    PROTOCOL_MINOR,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

type Pending = Mutex<HashMap<RequestId, oneshot::Sender<CoordToClient>>>;
type Watchers = Mutex<HashMap<JobId, Vec<mpsc::Sender<JobEvent>>>>;

pub(super) struct Inner {
    pub(super) _endpoint: quinn::Endpoint,
    pub(super) connection: quinn::Connection,
    pub(super) writer: tokio::sync::Mutex<FrameWriter>,
    pub(super) pending: Pending,
    pub(super) watchers: Watchers,
    pub(super) next_request: AtomicU32,
    /// The protocol minor version negotiated.
    pub(super) minor: u16,
    /// The reader stopped: the stream or the connection is gone, whether or not QUIC
    /// has noticed yet.
    pub(super) ended: AtomicBool,
}

impl Inner {
    /// Sends the request `make` builds with a fresh id and waits for its reply; a
    /// refusal is an error.
    pub(super) async fn request(
        &self,
        make: impl FnOnce(RequestId) -> ClientToCoord,
    ) -> Result<CoordToClient, ClientError> {
        let id = RequestId(self.next_request.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        self.writer.lock().await.send(&make(id)).await?;
        match rx.await.map_err(|_| ClientError::Disconnected)? {
            CoordToClient::Refused(_, refusal) => Err(ClientError::Refused(refusal)),
            reply => Ok(reply),
        }
    }

    /// The reader stopped or the connection closed.
    pub(super) fn is_lost(&self) -> bool {
        self.ended.load(Ordering::Acquire) || self.connection.close_reason().is_some()
    }

    /// Registers a watcher of `job`'s pushed events.
    pub(super) fn watch(&self, job: JobId, tx: mpsc::Sender<JobEvent>) {
        lock(&self.watchers).entry(job).or_default().push(tx);
    }

    /// Forgets the watchers of `job`.
    pub(super) fn unwatch(&self, job: JobId) {
        lock(&self.watchers).remove(&job);
    }
}

/// Dials the coordinator with `bundle`, says hello and starts the reader.
pub(super) async fn open(bundle: &Bundle) -> Result<Arc<Inner>, ClientError> {
    let hello = ClientToCoord::Hello(ClientHello {
        minor: PROTOCOL_MINOR,
        client_version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let Session {
        endpoint,
        connection,
        reader,
        writer,
        welcome,
    } = net::connect::<ClientToCoord, CoordToClient>(bundle, &hello).await?;
    let CoordToClient::Welcome(welcome) = welcome else {
        connection.close((CloseCode::Protocol as u32).into(), b"expected a welcome");
        return Err(ClientError::UnexpectedReply("expected a welcome"));
    };
    if welcome.minor < MINOR_CLIENT_REPORTS {
        // Its replies have the older layout, which this build cannot decode.
        connection.close(
            (CloseCode::Protocol as u32).into(),
            b"client messages of minor 3 or later needed",
        );
        return Err(ClientError::CoordinatorTooOld {
            coordinator: welcome.minor,
            needed: MINOR_CLIENT_REPORTS,
        });
    }
    let inner = Arc::new(Inner {
        _endpoint: endpoint,
        connection,
        writer: tokio::sync::Mutex::new(writer),
        pending: Mutex::new(HashMap::new()),
        watchers: Mutex::new(HashMap::new()),
        next_request: AtomicU32::new(1),
        minor: welcome.minor,
        ended: AtomicBool::new(false),
    });
    tokio::spawn(read_loop(reader, Arc::downgrade(&inner)));
    Ok(inner)
}

async fn read_loop(mut reader: FrameReader, inner: std::sync::Weak<Inner>) {
    while let Ok(message) = reader.next::<CoordToClient>().await {
        let Some(inner) = inner.upgrade() else { return };
        let request = match &message {
            CoordToClient::Submitted(JobRequest { request, .. })
            | CoordToClient::Watching(request, _)
            | CoordToClient::Cancelled(request, _)
            | CoordToClient::Jobs(request, _)
            | CoordToClient::Status(request, _)
            | CoordToClient::Refused(request, _)
            | CoordToClient::Drained(request, _)
            | CoordToClient::Forgotten(JobRequest { request, .. })
            | CoordToClient::Pruned(request, _)
            | CoordToClient::ReleasedWorker(request, _)
            | CoordToClient::Revoked(request, _)
            | CoordToClient::Credentials(request, _)
            | CoordToClient::TokenCreated(request, _)
            | CoordToClient::Tokens(request, _)
            | CoordToClient::TokenRevoked(request, _)
            | CoordToClient::Detail(request, _)
            | CoordToClient::MinerNoted(request)
            | CoordToClient::Miners(request, _) => Some(*request),
            CoordToClient::Welcome(_)
            | CoordToClient::Progress(_)
            | CoordToClient::Finished(_)
            | CoordToClient::Outputs(..)
            | CoordToClient::Solutions(..) => None,
        };
        if let Some(request) = request {
            if let Some(tx) = lock(&inner.pending).remove(&request) {
                let _ = tx.send(message);
            }
            continue;
        }
        match message {
            CoordToClient::Progress(p) => {
                if let Some(list) = lock(&inner.watchers).get_mut(&p.job) {
                    list.retain(|tx| match tx.try_send(JobEvent::Progress(p)) {
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    });
                }
            }
            CoordToClient::Outputs(job, outputs) => {
                let list = lock(&inner.watchers).get(&job).cloned().unwrap_or_default();
                for tx in list {
                    let _ = tx.send(JobEvent::Outputs(outputs.clone())).await;
                }
            }
            CoordToClient::Solutions(job, solutions) => {
                let list = lock(&inner.watchers).get(&job).cloned().unwrap_or_default();
                for tx in list {
                    let _ = tx.send(JobEvent::Solutions(solutions.clone())).await;
                }
            }
            CoordToClient::Finished(report) => {
                let list = lock(&inner.watchers)
                    .remove(&report.job)
                    .unwrap_or_default();
                for tx in list {
                    let _ = tx.send(JobEvent::Finished(Box::new(report.clone()))).await;
                }
            }
            _ => {}
        }
    }
    // Connection gone: waking every waiter with a closed channel.
    if let Some(inner) = inner.upgrade() {
        inner.ended.store(true, Ordering::Release);
        lock(&inner.pending).clear();
        lock(&inner.watchers).clear();
    }
}
