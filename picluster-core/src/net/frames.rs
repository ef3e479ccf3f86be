//! Length-prefixed frames on QUIC streams (the codec itself is [`crate::wire`]).

use super::NetError;
use crate::wire::{self, FRAME_HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A buffer grown past this by a large frame is let go before the next frame.
const KEEP_CAPACITY: usize = 256 << 10;

/// Reads frames from a QUIC receive stream.
#[derive(Debug)]
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
    body_timeout: Option<std::time::Duration>,
    budget: Option<Arc<Semaphore>>,
}

/// A frame's place in a shared budget of frame memory (see
/// [`FrameReader::with_budget`]), held until dropped.
#[derive(Debug)]
pub struct FrameBytes {
    _place: Option<OwnedSemaphorePermit>,
}

/// The unit a frame budget counts in: one permit per started KiB.
pub const BUDGET_UNIT: usize = 1024;

/// The units of the largest frame: a budget smaller than this would hold one back
/// forever.
pub const MAX_FRAME_UNITS: usize = wire::MAX_FRAME_LEN.div_ceil(BUDGET_UNIT);

impl FrameReader {
    /// Wraps a stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: Vec::new(),
            body_timeout: None,
            budget: None,
        }
    }

    /// A frame whose first byte arrived must then be whole, header and body, within
    /// `timeout` ([`NetError::Timeout`] otherwise): a peer can hold neither a
    /// half-sent header nor a half-sent body open.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = Some(timeout);
        self
    }

    /// A frame's body is read only once its size has a place in `budget` (one
    /// permit per started [`BUDGET_UNIT`]), shared by the readers that take it: the
    /// memory their frames hold together is bounded, however many they are. Until
    /// then the body stays in QUIC's flow-control window, and waiting for a place
    /// is not the peer's delay (the body timeout starts after it). The place is
    /// held by the [`FrameBytes`] that [`FrameReader::next_budgeted`] returns.
    pub fn with_budget(mut self, budget: Arc<Semaphore>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The next frame's raw body, length-checked before it is read.
    pub async fn next_body(&mut self) -> Result<&[u8], NetError> {
        let (body, _place) = self.next_budgeted().await?;
        Ok(body)
    }

    /// The next frame's raw body and its place in the budget, if any.
    pub async fn next_budgeted(&mut self) -> Result<(&[u8], FrameBytes), NetError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        // Waiting for a frame takes as long as it takes; once one starts, the rest
        // must follow.
        self.recv.read_exact(&mut header[..1]).await?;
        let timeout = self.body_timeout;
        let recv = &mut self.recv;
        let len = within(timeout, async {
            recv.read_exact(&mut header[1..]).await?;
            Ok(wire::frame_body_len(header)?)
        })
        .await?;
        let place = match &self.budget {
            Some(budget) => {
                let units = len.div_ceil(BUDGET_UNIT).max(1);
                let units = u32::try_from(units).unwrap_or(u32::MAX);
                match budget.clone().acquire_many_owned(units).await {
                    Ok(permit) => Some(permit),
                    Err(_) => return Err(NetError::StreamEnded),
                }
            }
            None => None,
        };
        let (recv, buf) = (&mut self.recv, &mut self.buf);
        if buf.capacity() > KEEP_CAPACITY {
            // Do not keep a large frame's memory for the connection's life.
            *buf = Vec::new();
        }
        buf.clear();
        within(timeout, Self::read_body(recv, buf, len)).await?;
        Ok((&self.buf, FrameBytes { _place: place }))
    }

    async fn read_body(
        recv: &mut quinn::RecvStream,
        buf: &mut Vec<u8>,
        len: usize,
    ) -> Result<(), NetError> {
        // Memory goes to a frame as its bytes arrive (QUIC hands them over in the
        // chunks it received): a peer that announces a large frame and sends nothing
        // costs nothing.
        while buf.len() < len {
            match recv.read_chunk(len - buf.len(), true).await? {
                Some(chunk) => buf.extend_from_slice(&chunk.bytes),
                None => return Err(NetError::StreamEnded),
            }
        }
        Ok(())
    }

    /// The next message.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Result<T, NetError> {
        Ok(wire::decode_body(self.next_body().await?)?)
    }
}

/// `work`, within `timeout` if there is one ([`NetError::Timeout`] otherwise).
async fn within<T>(
    timeout: Option<std::time::Duration>,
    work: impl std::future::Future<Output = Result<T, NetError>>,
) -> Result<T, NetError> {
    match timeout {
        Some(timeout) => tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| NetError::Timeout(timeout))?,
        None => work.await,
    }
}

/// Writes frames to a QUIC send stream.
#[derive(Debug)]
pub struct FrameWriter {
    send: quinn::SendStream,
}

impl FrameWriter {
    /// Wraps a stream.
    pub fn new(send: quinn::SendStream) -> Self {
        FrameWriter { send }
    }

    /// Sends one message.
    pub async fn send<T: Serialize>(&mut self, message: &T) -> Result<(), NetError> {
        self.send_frame(&wire::encode_frame(message)?).await
    }

    /// Sends an encoded frame.
    pub async fn send_frame(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.send.write_all(frame).await?;
        Ok(())
    }
}
