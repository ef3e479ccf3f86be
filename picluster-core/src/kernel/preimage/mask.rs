//! The mask syntax (hashcat's) and the meaning of an index: candidate `i` is `i`
//! written in the mixed radix of the positions' charset sizes, the last position
//! varying fastest.

use super::{PreimageError, MAX_CANDIDATE_LEN};

const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const SYMBOLS: &[u8] = b" !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A parsed mask: the charset of each candidate position, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    positions: Vec<Vec<u8>>,
}

impl Mask {
    /// Parses a mask with up to four custom charsets (`?1`..`?4`).
    pub fn parse(mask: &str, custom: &[Option<&str>; 4]) -> Result<Mask, PreimageError> {
        let mut sets: [Option<Vec<u8>>; 4] = Default::default();
        for (i, def) in custom.iter().enumerate() {
            let n = i as u8 + 1;
            if let Some(def) = def {
                let mut set = Vec::new();
                let positions = parse_positions(def, None).map_err(|e| match e {
                    // It names the charset being defined (not the one used).
                    PreimageError::NestedCustom(_) => PreimageError::NestedCustom(n),
                    reason => PreimageError::InCustomCharset {
                        charset: n,
                        reason: Box::new(reason),
                    },
                })?;
                for pos in positions {
                    for b in pos {
                        if !set.contains(&b) {
                            set.push(b);
                        }
                    }
                }
                if set.is_empty() {
                    return Err(PreimageError::EmptyCustom(n));
                }
                sets[i] = Some(set);
            }
        }
        let positions = parse_positions(mask, Some(&sets))?;
        Mask::from_positions(positions)
    }

    /// A mask from explicit per-position charsets (as carried on the wire).
    pub fn from_positions(positions: Vec<Vec<u8>>) -> Result<Mask, PreimageError> {
        if positions.is_empty() {
            return Err(PreimageError::EmptyMask);
        }
        if positions.len() > MAX_CANDIDATE_LEN {
            return Err(PreimageError::TooLong(positions.len()));
        }
        let mut keyspace: u64 = 1;
        for (i, set) in positions.iter().enumerate() {
            if set.is_empty() {
                return Err(PreimageError::EmptyPosition(i));
            }
            let mut seen = [false; 256];
            for b in set {
                if std::mem::replace(&mut seen[*b as usize], true) {
                    return Err(PreimageError::DuplicateInPosition(i));
                }
            }
            keyspace = keyspace
                .checked_mul(set.len() as u64)
                .ok_or(PreimageError::KeyspaceOverflow)?;
        }
        Ok(Mask { positions })
    }

    /// The charset of each position.
    pub fn positions(&self) -> &[Vec<u8>] {
        &self.positions
    }

    /// Candidate length in bytes.
    pub fn len(&self) -> usize {
        self.positions.len()
    }

    /// Whether the mask has no positions (never true for a parsed mask).
    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Number of candidates.
    pub fn keyspace(&self) -> u64 {
        self.positions.iter().map(|s| s.len() as u64).product()
    }

    /// Candidate `index` (which must be below the keyspace).
    pub fn candidate(&self, index: u64) -> Vec<u8> {
        let mut out = vec![0u8; self.positions.len()];
        let mut rest = index;
        for (slot, set) in out.iter_mut().zip(&self.positions).rev() {
            let radix = set.len() as u64;
            *slot = set[(rest % radix) as usize];
            rest /= radix;
        }
        out
    }
}

fn parse_positions(
    mask: &str,
    custom: Option<&[Option<Vec<u8>>; 4]>,
) -> Result<Vec<Vec<u8>>, PreimageError> {
    let bytes = mask.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'?' {
            out.push(vec![bytes[i]]);
            i += 1;
            continue;
        }
        let Some(&c) = bytes.get(i + 1) else {
            return Err(PreimageError::TrailingQuestionMark);
        };
        let set: Vec<u8> = match c {
            b'l' => LOWER.to_vec(),
            b'u' => UPPER.to_vec(),
            b'd' => DIGITS.to_vec(),
            b'h' => b"0123456789abcdef".to_vec(),
            b'H' => b"0123456789ABCDEF".to_vec(),
            b's' => SYMBOLS.to_vec(),
            b'a' => [LOWER, UPPER, DIGITS, SYMBOLS].concat(),
            b'b' => (0..=255u8).collect(),
            b'?' => vec![b'?'],
            b'1'..=b'4' => {
                let n = c - b'0';
                match custom {
                    None => return Err(PreimageError::NestedCustom(n)),
                    Some(sets) => sets[usize::from(n - 1)]
                        .clone()
                        .ok_or(PreimageError::UndefinedCustom(n))?,
                }
            }
            _ => {
                return Err(PreimageError::UnknownCharset {
                    position: i,
                    ch: mask[i + 1..].chars().next().unwrap_or('?'),
                })
            }
        };
        out.push(set);
        i += 2;
    }
    Ok(out)
}
