//! One peer's outgoing side: the driver's handle on a connection ([`Peer`]: a queue
//! bounded in frames and in bytes, and the connection to close when it is full) and
//! the task that writes what is queued, coalescing frames into one write
//! ([`write_loop`]).

use crate::net::FrameWriter;
use crate::wire::CloseCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// What the driver asks of a peer's writer.
pub(super) enum WriterCommand {
    Frame(Vec<u8>),
    Close(CloseCode, String),
}

/// The driver's handle on one connection: its writer's queue, bounded in frames and
/// in bytes, and the connection itself, to close it when the queue is full.
pub(super) struct Peer {
    pub(super) writer: mpsc::Sender<WriterCommand>,
    /// Bytes queued and not yet written.
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) connection: quinn::Connection,
}

impl Peer {
    /// Queues a frame if it fits within `limit` queued bytes.
    pub(super) fn try_queue(&self, frame: Vec<u8>, limit: usize) -> bool {
        let len = frame.len();
        // Only the driver adds: the check and the add cannot race with another add.
        if self.queued.load(Ordering::Acquire) + len > limit {
            return false;
        }
        self.queued.fetch_add(len, Ordering::AcqRel);
        match self.writer.try_send(WriterCommand::Frame(frame)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                false
            }
            // The connection is gone and its Disconnected event follows: nothing to do.
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.queued.fetch_sub(len, Ordering::AcqRel);
                true
            }
        }
    }

    /// Closes after what is queued, or at once if the queue is full.
    pub(super) fn close(&self, code: CloseCode, reason: String) {
        if let Err(mpsc::error::TrySendError::Full(WriterCommand::Close(code, reason))) =
            self.writer.try_send(WriterCommand::Close(code, reason))
        {
            self.connection
                .close((code as u32).into(), reason.as_bytes());
        }
    }
}

/// Writes what the driver queues for one peer, until the driver drops its sender or
/// queues a close.
pub(super) async fn write_loop(
    connection: quinn::Connection,
    mut writer: FrameWriter,
    mut commands: mpsc::Receiver<WriterCommand>,
    queued: Arc<AtomicUsize>,
    drained: Arc<tokio::sync::Notify>,
) {
    // However it ends, the connection's reader must not wait for replies that will
    // never be written.
    struct Wake(Arc<tokio::sync::Notify>);
    impl Drop for Wake {
        fn drop(&mut self) {
            self.0.notify_waiters();
        }
    }
    let _wake = Wake(drained.clone());
    let mut batch = Vec::new();
    while let Some(command) = commands.recv().await {
        // Coalesce whatever else is queued into one write.
        let mut next = Some(command);
        let mut close = None;
        while let Some(command) = next.take() {
            match command {
                WriterCommand::Frame(frame) => batch.extend_from_slice(&frame),
                WriterCommand::Close(code, reason) => {
                    close = Some((code, reason));
                    break;
                }
            }
            next = commands.try_recv().ok();
        }
        if !batch.is_empty() {
            if writer.send_frame(&batch).await.is_err() {
                return;
            }
            queued.fetch_sub(batch.len(), Ordering::AcqRel);
            batch.clear();
            drained.notify_waiters();
        }
        if let Some((code, reason)) = close {
            connection.close((code as u32).into(), reason.as_bytes());
            return;
        }
    }
}
