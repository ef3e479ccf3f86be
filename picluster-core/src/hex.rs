//! Hex encoding and decoding with errors that name the problem. Small enough not to
//! warrant a dependency; the errors are what users see for a mistyped `--header`.

use std::fmt::Write as _;

/// Why a hex string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HexError {
    /// Hex strings encode whole bytes, two digits each.
    #[error("odd-length hex ({len} digits): every byte takes two hex digits")]
    OddLength {
        /// Number of digits given.
        len: usize,
    },
    /// A character outside 0-9, a-f, A-F.
    #[error("invalid hex character {ch:?} at position {position}")]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its position (0-based, in characters).
        position: usize,
    },
}

/// Decodes a hex string (upper or lower case, optional `0x` prefix).
pub fn decode(s: &str) -> Result<Vec<u8>, HexError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let chars: Vec<char> = s.chars().collect();
    if !chars.len().is_multiple_of(2) {
        return Err(HexError::OddLength { len: chars.len() });
    }
    let digit = |position: usize| -> Result<u8, HexError> {
        let ch = chars[position];
        ch.to_digit(16)
            .map(|d| d as u8)
            .ok_or(HexError::InvalidChar { ch, position })
    };
    (0..chars.len() / 2)
        .map(|i| Ok(digit(2 * i)? << 4 | digit(2 * i + 1)?))
        .collect()
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors_name_the_problem() {
        assert_eq!(decode("00ffA0").unwrap(), vec![0x00, 0xff, 0xa0]);
        assert_eq!(decode("0x0102").unwrap(), vec![1, 2]);
        assert_eq!(encode(&[0xde, 0xad, 0x01]), "dead01");
        assert_eq!(decode("abc"), Err(HexError::OddLength { len: 3 }));
        assert_eq!(
            decode("zz").unwrap_err().to_string(),
            "invalid hex character 'z' at position 0"
        );
    }
}
