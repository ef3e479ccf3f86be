//! Stratum V1 messages: one JSON object per line, parsed into what the session acts on,
//! and the requests a miner sends. Serde types of our own over `serde_json::Value`:
//! the Stratum Reference Implementation's `sv1_api` pulls in its own framing and
//! async stack for a dozen message shapes, and pools differ in the details it fixes
//! (ckpool sends `client.reconnect` with string ports, some pools numbers).
//!
//! Numbers in Stratum are hex strings: version, nBits and ntime as the 8 hex digits
//! of the 32-bit value, prevhash as 32 bytes whose 4-byte words are each
//! byte-swapped against the header's order, coinbase parts and branch hashes as raw
//! bytes.

use picluster_core::hex;
use picluster_core::kernel::sha256d::Target;
use serde_json::{json, Value};

/// A line from the pool that could not be used, and why. Not retryable as it is:
/// the session drops the connection (a pool that sends garbage is not mined on).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pool sent {what}: {line}")]
pub struct Malformed {
    /// What was wrong.
    pub what: String,
    /// The line, cut to 200 characters.
    pub line: String,
}

fn malformed(what: impl Into<String>, line: &str) -> Malformed {
    Malformed {
        what: what.into(),
        line: line.chars().take(200).collect(),
    }
}

/// A pool's job (`mining.notify`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notify {
    /// The pool's job id.
    pub job_id: String,
    /// The previous block hash as the header holds it.
    pub prevhash: [u8; 32],
    /// Coinbase before extranonce1.
    pub coinbase1: Vec<u8>,
    /// Coinbase after extranonce2.
    pub coinbase2: Vec<u8>,
    /// The merkle branch.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Header version.
    pub version: u32,
    /// Header nBits.
    pub bits: u32,
    /// Header time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean_jobs: bool,
}

/// What a line from the pool says.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    /// A reply to request `id`: its result, or its error (code and message).
    Reply {
        /// The request's id.
        id: u64,
        /// `result` when there was no error.
        result: Result<Value, (i64, String)>,
    },
    /// New work.
    Notify(Box<Notify>),
    /// The share difficulty from the next job on.
    SetDifficulty(f64),
    /// Reconnect to another address (or the same one when `None`), after `wait_s`.
    Reconnect {
        /// Host, if given.
        host: Option<String>,
        /// Port, if given.
        port: Option<u16>,
        /// Seconds to wait first.
        wait_s: u64,
    },
    /// New extranonce1 and extranonce2 size (`mining.set_extranonce`), from the next
    /// job on.
    SetExtranonce {
        /// Extranonce1.
        extranonce1: Vec<u8>,
        /// Extranonce2 size.
        size: u8,
    },
    /// A new version rolling mask (`mining.set_version_mask`).
    SetVersionMask(u32),
    /// Anything else the pool sends (`client.show_message`, ...): its method.
    Other(String),
}

fn hex_field(v: &Value, what: &str, line: &str) -> Result<Vec<u8>, Malformed> {
    let s = v
        .as_str()
        .ok_or_else(|| malformed(format!("{what} that is not a string"), line))?;
    hex::decode(s).map_err(|e| malformed(format!("{what} that is not hex ({e})"), line))
}

fn word(v: &Value, what: &str, line: &str) -> Result<u32, Malformed> {
    let bytes = hex_field(v, what, line)?;
    let array: [u8; 4] = bytes
        .try_into()
        .map_err(|_| malformed(format!("{what} that is not 8 hex digits"), line))?;
    Ok(u32::from_be_bytes(array))
}

fn hash32(v: &Value, what: &str, line: &str) -> Result<[u8; 32], Malformed> {
    hex_field(v, what, line)?
        .try_into()
        .map_err(|_| malformed(format!("{what} that is not 32 bytes"), line))
}

/// The header's order of a notify's prevhash: each 4-byte word byte-swapped.
pub fn prevhash_from_stratum(words: [u8; 32]) -> [u8; 32] {
    let mut out = words;
    for chunk in out.chunks_exact_mut(4) {
        chunk.reverse();
    }
    out
}

/// Parses one line from the pool.
pub fn parse(line: &str) -> Result<Incoming, Malformed> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| malformed(format!("a line that is not JSON ({e})"), line))?;
    let method = v.get("method").and_then(Value::as_str);
    let Some(method) = method else {
        let id = v
            .get("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("a reply without a numeric id", line))?;
        let error = v.get("error").filter(|e| !e.is_null());
        let result = match error {
            None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            Some(e) => Err(reply_error(e)),
        };
        return Ok(Incoming::Reply { id, result });
    };
    let params = v.get("params").cloned().unwrap_or(Value::Null);
    let p = params.as_array().map(Vec::as_slice).unwrap_or_default();
    match method {
        "mining.notify" => {
            if p.len() < 9 {
                return Err(malformed("a notify with fewer than 9 parameters", line));
            }
            let job_id = match &p[0] {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(malformed("a notify whose job id is not a string", line)),
            };
            let branch = p[4]
                .as_array()
                .ok_or_else(|| malformed("a notify whose merkle branch is not a list", line))?
                .iter()
                .map(|h| hash32(h, "a merkle branch hash", line))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Incoming::Notify(Box::new(Notify {
                job_id,
                prevhash: prevhash_from_stratum(hash32(&p[1], "a prevhash", line)?),
                coinbase1: hex_field(&p[2], "a coinbase1", line)?,
                coinbase2: hex_field(&p[3], "a coinbase2", line)?,
                merkle_branch: branch,
                version: word(&p[5], "a version", line)?,
                bits: word(&p[6], "an nBits", line)?,
                ntime: word(&p[7], "an ntime", line)?,
                clean_jobs: p[8].as_bool().unwrap_or(false),
            })))
        }
        "mining.set_difficulty" => {
            let d = p
                .first()
                .and_then(Value::as_f64)
                .filter(|d| *d > 0.0 && d.is_finite());
            d.map(Incoming::SetDifficulty)
                .ok_or_else(|| malformed("a difficulty that is not a positive number", line))
        }
        "client.reconnect" => {
            let host = p
                .first()
                .and_then(Value::as_str)
                .filter(|h| !h.is_empty())
                .map(str::to_string);
            let number = |v: Option<&Value>| -> Option<u64> {
                match v? {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.parse().ok(),
                    _ => None,
                }
            };
            let port = number(p.get(1)).and_then(|n| u16::try_from(n).ok());
            Ok(Incoming::Reconnect {
                host,
                port,
                wait_s: number(p.get(2)).unwrap_or(0).min(3600),
            })
        }
        "mining.set_extranonce" => {
            let extranonce1 = hex_field(p.first().unwrap_or(&Value::Null), "an extranonce1", line)?;
            let size = p
                .get(1)
                .and_then(Value::as_u64)
                .and_then(|s| u8::try_from(s).ok())
                .ok_or_else(|| malformed("an extranonce2 size that is not a number", line))?;
            Ok(Incoming::SetExtranonce { extranonce1, size })
        }
        "mining.set_version_mask" => Ok(Incoming::SetVersionMask(word(
            p.first().unwrap_or(&Value::Null),
            "a version mask",
            line,
        )?)),
        other => Ok(Incoming::Other(other.to_string())),
    }
}

/// A reply's error as (code, message): `[code, "message", traceback]` as most pools
/// send it, or a bare string or object.
fn reply_error(e: &Value) -> (i64, String) {
    match e {
        Value::Array(a) => (
            a.first().and_then(Value::as_i64).unwrap_or(0),
            a.get(1)
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string(),
        ),
        Value::String(s) => (0, s.clone()),
        Value::Object(o) => (
            o.get("code").and_then(Value::as_i64).unwrap_or(0),
            o.get("message")
                .and_then(Value::as_str)
                .unwrap_or("no reason given")
                .to_string(),
        ),
        other => (0, other.to_string()),
    }
}

/// A request line (without its newline).
pub fn request(id: u64, method: &str, params: Value) -> String {
    json!({"id": id, "method": method, "params": params}).to_string()
}

/// The share target of pool difficulty `difficulty`: difficulty 1 is
/// 0x00000000ffff0000...0000 (as Bitcoin pools count it), difficulty d that ÷ d.
pub fn difficulty_target(difficulty: f64) -> Target {
    // 0xffff × 2^208 / d, written as a 256-bit number from its float value.
    let value = 65535.0 / difficulty;
    if !(value.is_finite()) || value >= 2f64.powi(48) {
        return Target([0xff; 32]);
    }
    let mut target = [0u8; 32];
    // value × 2^208: bytes 32 - 26 - k hold the integer part of value's byte k.
    let mut rest = value;
    // The integer part first (up to 6 bytes above 2^208), then 26 bytes of fraction.
    let int = rest.floor() as u64;
    rest -= int as f64;
    for k in 0..6 {
        target[5 - k] = (int >> (8 * k)) as u8;
    }
    for byte in target.iter_mut().skip(6) {
        rest *= 256.0;
        let b = rest.floor();
        *byte = b as u8;
        rest -= b;
    }
    if target == [0; 32] {
        target[31] = 1;
    }
    Target(target)
}
