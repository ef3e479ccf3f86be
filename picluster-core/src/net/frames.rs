//! Length-prefixed frames on QUIC streams (the codec itself is [`crate::wire`]).

use super::NetError;
use crate::wire::{self, FRAME_HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};

/// A buffer grown past this by a large frame is let go before the next frame.
const KEEP_CAPACITY: usize = 256 << 10;

/// Reads frames from a QUIC receive stream.
#[derive(Debug)]
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
    body_timeout: Option<std::time::Duration>,
}

impl FrameReader {
    /// Wraps a stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: Vec::new(),
            body_timeout: None,
        }
    }

    /// A frame whose first byte arrived must then be whole, header and body, within
    /// `timeout` ([`NetError::Timeout`] otherwise): a peer can hold neither a
    /// half-sent header nor a half-sent body open.
    pub fn with_body_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.body_timeout = Some(timeout);
        self
    }

    /// The next frame's raw body, length-checked before it is read.
    pub async fn next_body(&mut self) -> Result<&[u8], NetError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        // Waiting for a frame takes as long as it takes; once one starts, the rest
        // must follow.
        self.recv.read_exact(&mut header[..1]).await?;
        let (recv, buf) = (&mut self.recv, &mut self.buf);
        let rest = async move {
            recv.read_exact(&mut header[1..]).await?;
            let len = wire::frame_body_len(header)?;
            if buf.capacity() > KEEP_CAPACITY {
                // Do not keep a large frame's memory for the connection's life.
                *buf = Vec::new();
            }
            buf.clear();
            Self::read_body(recv, buf, len).await
        };
        match self.body_timeout {
            Some(timeout) => tokio::time::timeout(timeout, rest)
                .await
                .map_err(|_| NetError::Timeout(timeout))??,
            None => rest.await?,
        }
        Ok(&self.buf)
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
