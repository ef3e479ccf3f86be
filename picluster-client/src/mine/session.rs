//! One connection to a pool, as a synchronous state machine: lines in
//! ([`Session::handle_line`]), lines out ([`Session::poll_transmit`]), what the
//! bridge must act on out ([`Session::poll_event`]), driven with `now` and
//! [`Session::handle_timeout`]. No socket, no clock: the bridge owns those.
//!
//! The session says `mining.subscribe` and `mining.authorize` at once, then, once
//! both are answered, `mining.configure` (BIP 310 version rolling, mask 1fffe000)
//! and `mining.extranonce.subscribe`: pools that predate them drop a connection
//! that sends anything but those two first (ckpool before BIP 310 does), and ignore
//! them once it is authorized. Version bits roll from the first job after the
//! configure reply. It turns each
//! notify into [`Work`] with the difficulty then in force (a `set_difficulty` applies
//! from the next job, as pools count it) and keeps each submitted share until the
//! pool answers. Shares found before the authorize reply wait for it (ckpool drops
//! a submit sent earlier without a word). Every request has a timeout; a
//! subscribe or authorize that times out or is refused ends the session.

use super::protocol::{self, difficulty_target, Incoming, Malformed, Notify};
use picluster_core::hex;
use picluster_core::kernel::sha256d::{Target, BIP320_MASK};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Work from the pool, ready to become a picluster job.
#[derive(Clone, Debug, PartialEq)]
pub struct Work {
    /// The pool's job.
    pub notify: Notify,
    /// Extranonce1 of this connection.
    pub extranonce1: Vec<u8>,
    /// Extranonce2 size.
    pub extranonce2_size: u8,
    /// Version bits the pool lets us roll (0: none).
    pub version_mask: u32,
    /// The share target of the job (the difficulty in force when it came).
    pub target: Target,
    /// That difficulty.
    pub difficulty: f64,
}

/// A share to send: a solution of a template job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Share {
    /// The pool's job id.
    pub job_id: String,
    /// Extranonce2 as written into the coinbase.
    pub extranonce2: Vec<u8>,
    /// Header time.
    pub ntime: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The full header version (its rolled bits are sent when rolling).
    pub version: u32,
}

/// What the pool said of a share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Accepted,
    /// Rejected as stale (the job is gone or a new block came).
    Stale(String),
    /// Rejected for another reason (duplicate, low difficulty, bad ntime, ...).
    Rejected(String),
    /// No answer within [`REQUEST_TIMEOUT`].
    TimedOut,
}

/// What the bridge must act on.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Subscribed and authorized: shares are sent from now on.
    Ready,
    /// New work; with `clean_jobs`, earlier work is void at once.
    Work(Box<Work>),
    /// The pool's answer to a share.
    Verdict(Share, Verdict),
    /// The pool asks to reconnect (to another address when given), after a wait.
    Reconnect {
        /// Host, if another.
        host: Option<String>,
        /// Port, if another.
        port: Option<u16>,
        /// Seconds to wait first.
        wait_s: u64,
    },
}

/// Why a session ended. The bridge reconnects (or falls back to the next pool) after
/// any of them but a refused authorization, which a retry cannot mend.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The pool sent a line that is not Stratum.
    #[error(transparent)]
    Malformed(#[from] Malformed),
    /// The pool refused the subscription.
    #[error("the pool refused the subscription: {0}")]
    Subscribe(String),
    /// The pool refused the user name and password.
    #[error("the pool refused user {user}: {reason}")]
    Unauthorized {
        /// The user name.
        user: String,
        /// What the pool said.
        reason: String,
    },
    /// A subscribe or authorize had no answer.
    #[error("the pool did not answer {0} within 30 s")]
    TimedOut(&'static str),
}

impl SessionError {
    /// Whether connecting again may help.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, SessionError::Unauthorized { .. })
    }
}

#[derive(Clone, Debug)]
enum Pending {
    Configure,
    Subscribe,
    Authorize,
    Submit(Share),
}

impl Pending {
    fn name(&self) -> &'static str {
        match self {
            Pending::Configure => "mining.configure",
            Pending::Subscribe => "mining.subscribe",
            Pending::Authorize => "mining.authorize",
            Pending::Submit(_) => "mining.submit",
        }
    }
}

/// One pool connection's protocol state.
#[derive(Debug)]
pub struct Session {
    user: String,
    next_id: u64,
    pending: BTreeMap<u64, (Instant, Pending)>,
    outbox: VecDeque<String>,
    events: VecDeque<Event>,
    subscribed: Option<(Vec<u8>, u8)>,
    authorized: bool,
    version_mask: u32,
    difficulty: f64,
    /// Shares found before the authorize reply.
    waiting: Vec<Share>,
    /// Notifies that came before the subscription reply.
    early: Vec<Notify>,
    /// The pool's id of this subscription (its `mining.notify` one), to resume it.
    subscription: Option<String>,
}

impl Session {
    /// A session that says subscribe and authorize at once. `agent` names the miner
    /// to the pool; `resume` is the subscription id of an earlier session with the
    /// same pool, which asks it to resume that session (same extranonce1) where it
    /// can.
    pub fn new(
        now: Instant,
        user: &str,
        password: &str,
        agent: &str,
        resume: Option<&str>,
    ) -> Session {
        let mut s = Session {
            user: user.to_string(),
            next_id: 1,
            pending: BTreeMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            subscribed: None,
            authorized: false,
            version_mask: 0,
            difficulty: 1.0,
            waiting: Vec::new(),
            early: Vec::new(),
            subscription: None,
        };
        let params = match resume {
            Some(id) => json!([agent, id]),
            None => json!([agent]),
        };
        s.send(now, "mining.subscribe", params, Pending::Subscribe);
        s.send(
            now,
            "mining.authorize",
            json!([user, password]),
            Pending::Authorize,
        );
        s
    }

    fn send(&mut self, now: Instant, method: &str, params: Value, what: Pending) {
        let id = self.next_id;
        self.next_id += 1;
        self.outbox.push_back(protocol::request(id, method, params));
        self.pending.insert(id, (now, what));
    }

    /// The next line to send.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.outbox.pop_front()
    }

    /// The next thing the bridge must act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The difficulty in force for the next job.
    pub fn difficulty(&self) -> f64 {
        self.difficulty
    }

    /// Whether shares are sent now.
    pub fn is_ready(&self) -> bool {
        self.authorized && self.subscribed.is_some()
    }

    /// The version bits the pool lets us roll.
    pub fn version_mask(&self) -> u32 {
        self.version_mask
    }

    /// The pool's id of this subscription, once subscribed (what a later session
    /// gives to resume it).
    pub fn subscription(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// Sends a share now, or once authorized.
    pub fn submit(&mut self, now: Instant, share: Share) {
        if !self.is_ready() {
            self.waiting.push(share);
            return;
        }
        let mut params = vec![
            json!(self.user),
            json!(share.job_id),
            json!(hex::encode(&share.extranonce2)),
            json!(format!("{:08x}", share.ntime)),
            json!(format!("{:08x}", share.nonce)),
        ];
        if self.version_mask != 0 {
            params.push(json!(format!("{:08x}", share.version & self.version_mask)));
        }
        self.send(
            now,
            "mining.submit",
            Value::Array(params),
            Pending::Submit(share),
        );
    }

    /// When the oldest request times out, if any is waiting.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|(at, _)| *at + REQUEST_TIMEOUT)
            .min()
    }

    /// Requests past their timeout: a share's is a verdict, a subscribe's or
    /// authorize's ends the session (a configure's only means no rolling).
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), SessionError> {
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (at, _))| now >= *at + REQUEST_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some((_, what)) = self.pending.remove(&id) else {
                continue;
            };
            match what {
                Pending::Submit(share) => {
                    self.events
                        .push_back(Event::Verdict(share, Verdict::TimedOut));
                }
                Pending::Configure => {}
                other => return Err(SessionError::TimedOut(other.name())),
            }
        }
        Ok(())
    }

    /// A line from the pool.
    pub fn handle_line(&mut self, now: Instant, line: &str) -> Result<(), SessionError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(());
        }
        match protocol::parse(line)? {
            Incoming::Reply { id, result } => self.on_reply(now, id, result, line)?,
            Incoming::Notify(notify) => match self.subscribed {
                Some(_) => self.work(*notify),
                None => self.early.push(*notify),
            },
            Incoming::SetDifficulty(d) => self.difficulty = d,
            Incoming::SetExtranonce { extranonce1, size } => {
                if (1..=8).contains(&size) {
                    self.subscribed = Some((extranonce1, size));
                }
            }
            Incoming::SetVersionMask(mask) => self.version_mask = mask & BIP320_MASK,
            Incoming::Reconnect { host, port, wait_s } => {
                self.events
                    .push_back(Event::Reconnect { host, port, wait_s })
            }
            Incoming::Other(_) => {}
        }
        Ok(())
    }

    fn work(&mut self, notify: Notify) {
        let Some((extranonce1, size)) = self.subscribed.clone() else {
            return;
        };
        self.events.push_back(Event::Work(Box::new(Work {
            notify,
            extranonce1,
            extranonce2_size: size,
            version_mask: self.version_mask,
            target: difficulty_target(self.difficulty),
            difficulty: self.difficulty,
        })));
    }

    fn on_reply(
        &mut self,
        now: Instant,
        id: u64,
        result: Result<Value, (i64, String)>,
        line: &str,
    ) -> Result<(), SessionError> {
        let Some((_, what)) = self.pending.remove(&id) else {
            return Ok(()); // an answer to a request that timed out
        };
        match what {
            Pending::Configure => {
                if let Ok(r) = &result {
                    let granted = r.get("version-rolling").and_then(Value::as_bool) == Some(true);
                    let mask = r
                        .get("version-rolling.mask")
                        .and_then(Value::as_str)
                        .and_then(|m| u32::from_str_radix(m, 16).ok());
                    if granted {
                        self.version_mask = mask.unwrap_or(BIP320_MASK) & BIP320_MASK;
                    }
                }
            }
            Pending::Subscribe => {
                let r = result.map_err(|(_, m)| SessionError::Subscribe(m))?;
                let a = r.as_array().map(Vec::as_slice).unwrap_or_default();
                let extranonce1 = a
                    .get(1)
                    .and_then(Value::as_str)
                    .and_then(|s| hex::decode(s).ok())
                    .ok_or_else(|| {
                        SessionError::Malformed(Malformed {
                            what: "a subscription without a hex extranonce1".into(),
                            line: line.chars().take(200).collect(),
                        })
                    })?;
                let size = a
                    .get(2)
                    .and_then(Value::as_u64)
                    .and_then(|s| u8::try_from(s).ok())
                    .filter(|s| (1..=8).contains(s))
                    .ok_or_else(|| {
                        SessionError::Malformed(Malformed {
                            what: "a subscription whose extranonce2 size is not 1 to 8".into(),
                            line: line.chars().take(200).collect(),
                        })
                    })?;
                // [[["mining.notify", ID], ...], extranonce1, size]: the notify
                // subscription's id resumes the session.
                self.subscription = a.first().and_then(Value::as_array).and_then(|subs| {
                    subs.iter().find_map(|sub| {
                        let pair = sub.as_array()?;
                        (pair.first()?.as_str()? == "mining.notify")
                            .then(|| pair.get(1)?.as_str().map(str::to_string))?
                    })
                });
                self.subscribed = Some((extranonce1, size));
                for notify in std::mem::take(&mut self.early) {
                    self.work(notify);
                }
                self.ready(now);
            }
            Pending::Authorize => match result {
                Ok(Value::Bool(true)) => {
                    self.authorized = true;
                    self.ready(now);
                }
                Ok(other) => {
                    return Err(SessionError::Unauthorized {
                        user: self.user.clone(),
                        reason: format!("it answered {other}"),
                    })
                }
                Err((_, reason)) => {
                    return Err(SessionError::Unauthorized {
                        user: self.user.clone(),
                        reason,
                    })
                }
            },
            Pending::Submit(share) => {
                let verdict = match result {
                    Ok(Value::Bool(true)) => Verdict::Accepted,
                    Ok(other) => Verdict::Rejected(format!("it answered {other}")),
                    Err((code, reason)) => {
                        // cpuminer-opt's rule: a reason that names the job is stale.
                        let lower = reason.to_ascii_lowercase();
                        if code == 21 || lower.contains("stale") || lower.contains("job") {
                            Verdict::Stale(reason)
                        } else {
                            Verdict::Rejected(reason)
                        }
                    }
                };
                self.events.push_back(Event::Verdict(share, verdict));
            }
        }
        Ok(())
    }

    fn ready(&mut self, now: Instant) {
        if !self.is_ready() {
            return;
        }
        self.events.push_back(Event::Ready);
        self.send(
            now,
            "mining.configure",
            json!([["version-rolling"], {"version-rolling.mask": format!("{BIP320_MASK:08x}"), "version-rolling.min-bit-count": 2}]),
            Pending::Configure,
        );
        // Offer to take new extranonces without reconnecting, where the pool
        // supports it (an error reply, or none, is harmless).
        let id = self.next_id;
        self.next_id += 1;
        self.outbox.push_back(protocol::request(
            id,
            "mining.extranonce.subscribe",
            json!([]),
        ));
        for share in std::mem::take(&mut self.waiting) {
            self.submit(now, share);
        }
    }
}
