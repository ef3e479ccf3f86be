//! Length-prefixed frames on QUIC streams (the codec itself is [`crate::wire`]).

use super::NetError;
use crate::wire::{self, FRAME_HEADER_LEN};
use serde::{de::DeserializeOwned, Serialize};

/// Reads frames from a QUIC receive stream.
#[derive(Debug)]
pub struct FrameReader {
    recv: quinn::RecvStream,
    buf: Vec<u8>,
}

impl FrameReader {
    /// Wraps a stream.
    pub fn new(recv: quinn::RecvStream) -> Self {
        FrameReader {
            recv,
            buf: Vec::new(),
        }
    }

    /// The next frame's raw body, length-checked before it is read.
    pub async fn next_body(&mut self) -> Result<&[u8], NetError> {
        let mut header = [0u8; FRAME_HEADER_LEN];
        self.recv.read_exact(&mut header).await?;
        let len = wire::frame_body_len(header)?;
        self.buf.resize(len, 0);
        self.recv.read_exact(&mut self.buf).await?;
        Ok(&self.buf)
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
