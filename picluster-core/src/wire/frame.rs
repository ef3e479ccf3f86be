//! Frames: a little-endian `u32` body length, then a postcard body of at most
//! [`MAX_FRAME_LEN`] bytes holding exactly one message.

use super::{FRAME_HEADER_LEN, MAX_FRAME_LEN};
use serde::{de::DeserializeOwned, Serialize};

/// Why a frame could not be encoded or decoded. A peer that sends such a frame is
/// disconnected; retrying the same bytes cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix exceeds [`MAX_FRAME_LEN`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge(u64),
    /// The body is not a valid message of the expected kind (unknown variant,
    /// truncated field, invalid value).
    #[error("malformed message: {0}")]
    Malformed(postcard::Error),
    /// The body holds a valid message followed by extra bytes.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

/// Encodes `message` as one frame (length prefix and body).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; FRAME_HEADER_LEN];
    let mut frame =
        postcard::to_extend(message, std::mem::take(&mut frame)).map_err(FrameError::Malformed)?;
    let len = frame.len() - FRAME_HEADER_LEN;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(len as u64));
    }
    frame[..FRAME_HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(frame)
}

/// Reads the body length from a frame header, rejecting oversized frames before any
/// body is read.
pub fn frame_body_len(header: [u8; FRAME_HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len as usize > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge(u64::from(len)));
    }
    Ok(len as usize)
}

/// Decodes a frame body; the whole body must be one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (message, rest) = postcard::take_from_bytes(body).map_err(FrameError::Malformed)?;
    if !rest.is_empty() {
        return Err(FrameError::TrailingBytes(rest.len()));
    }
    Ok(message)
}

/// Decodes one complete frame (header and body), as a test or tool would hold it.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let header: [u8; FRAME_HEADER_LEN] = frame
        .get(..FRAME_HEADER_LEN)
        .and_then(|h| h.try_into().ok())
        .ok_or(FrameError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        ))?;
    let len = frame_body_len(header)?;
    let body = &frame[FRAME_HEADER_LEN..];
    match body.len().cmp(&len) {
        std::cmp::Ordering::Less => Err(FrameError::Malformed(
            postcard::Error::DeserializeUnexpectedEnd,
        )),
        std::cmp::Ordering::Greater => Err(FrameError::TrailingBytes(body.len() - len)),
        std::cmp::Ordering::Equal => decode_body(body),
    }
}
