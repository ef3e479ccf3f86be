//! Shares, as mining pools use them to know that their miners really hash: besides
//! its solutions, a worker reports every index whose digest has at least `bits`
//! leading zero bits (one in 2^bits indices, at random), for every built-in kernel.
//! The coordinator verifies each share with one hash, estimates the worker's real rate
//! from them, and compares how many it got with how many the worker's claimed
//! progress implies.
//!
//! **Vardiff.** A worker starts at [`INITIAL_SHARE_BITS`]; after [`RETARGET_SHARES`]
//! verified shares or [`RETARGET_AFTER`], whichever is first, `bits` is set so that its
//! verified rate yields one share per [`SHARE_SECONDS`]. The rate comes from verified
//! shares, never from what the worker claims; a worker that claims work and sends no
//! share gets an easier target, so the test below soon has enough evidence.
//!
//! **The test.** Claimed progress on share-bearing leases adds `indices / 2^bits` to
//! the expected number of shares in the current window. When a window expects
//! [`WINDOW_SHARES`] shares, the count observed is tested against a Poisson
//! distribution of that mean: if `P(X <= observed) <` [`FALSE_ALARM`], the worker did
//! not do the work it claims and is quarantined (its committed ranges are searched
//! again); otherwise a new window starts. For an honest worker each window is a false
//! alarm with probability below 10^-9 (at 32 expected shares, 4 or fewer observed:
//! 6.3 x 10^-10); at one share per 5 s that is one window per 160 s, so at most 0.013
//! false alarms per worker-century. A worker that hashes nothing is caught once it has
//! claimed 32 x 2^bits indices: 2^21 at the initial target.
//!
//! This file owns one worker's [`ShareAccount`] (the window, the retarget) and the
//! statistics; checking shares against their lease, weighing claimed progress and
//! quarantining a worker are operations in `verify`.

use std::time::{Duration, Instant};

/// Leading zero bits of a share at first.
pub const INITIAL_SHARE_BITS: u8 = 16;
/// The easiest share target vardiff sets (a 20 MH/s worker then sends 5,000 shares a
/// second until the next retarget).
pub const MIN_SHARE_BITS: u8 = 12;
/// The hardest share target vardiff sets.
pub const MAX_SHARE_BITS: u8 = 60;
/// Vardiff aims at one share per this many seconds.
pub const SHARE_SECONDS: f64 = 5.0;
/// Vardiff retargets after this many verified shares...
pub const RETARGET_SHARES: u32 = 16;
/// ...or this long, whichever comes first.
pub const RETARGET_AFTER: Duration = Duration::from_secs(10);
/// Shares a test window expects before its verdict.
pub const WINDOW_SHARES: f64 = 32.0;
/// The probability below which a share count is judged too low.
pub const FALSE_ALARM: f64 = 1e-9;

/// One worker's shares (this connection).
#[derive(Clone, Debug)]
pub(super) struct ShareAccount {
    /// The share target in force: leading zero bits.
    pub(super) bits: u8,
    window_expected: f64,
    window_observed: u32,
    since_retarget: u32,
    /// Shares the progress claimed since the last retarget implies.
    claimed_since: f64,
    retargeted_at: Instant,
    /// Shares verified this session.
    pub(super) verified: u64,
    /// Hash rate estimated from verified shares (0 until the first retarget).
    pub(super) rate_hps: f64,
}

/// A failed test: the shares expected and observed in the window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct TooFew {
    pub(super) expected: f64,
    pub(super) observed: u32,
}

impl ShareAccount {
    pub(super) fn new(now: Instant) -> ShareAccount {
        ShareAccount {
            bits: INITIAL_SHARE_BITS,
            window_expected: 0.0,
            window_observed: 0,
            since_retarget: 0,
            claimed_since: 0.0,
            retargeted_at: now,
            verified: 0,
            rate_hps: 0.0,
        }
    }

    /// The worker claims `indices` more of a lease whose shares are at `bits`.
    pub(super) fn claimed(&mut self, indices: u64, bits: u8) {
        let expected = indices as f64 / 2f64.powi(i32::from(bits));
        self.window_expected += expected;
        self.claimed_since += expected;
    }

    /// A share verified.
    pub(super) fn verified(&mut self) {
        self.window_observed += 1;
        self.since_retarget += 1;
        self.verified += 1;
    }

    /// The verdict when the window is full: `Err` if too few shares came.
    pub(super) fn judge(&mut self) -> Result<(), TooFew> {
        if self.window_expected < WINDOW_SHARES {
            return Ok(());
        }
        let verdict = TooFew {
            expected: self.window_expected,
            observed: self.window_observed,
        };
        self.window_expected = 0.0;
        self.window_observed = 0;
        if poisson_cdf(verdict.observed, verdict.expected) < FALSE_ALARM {
            Err(verdict)
        } else {
            Ok(())
        }
    }

    /// Vardiff: the new share target if it is time to retarget and it changes.
    /// Time in which the worker claimed no share-bearing work (idle, or on custom
    /// jobs) is no evidence either way and leaves the target alone.
    pub(super) fn retarget(&mut self, now: Instant) -> Option<u8> {
        let elapsed = now.saturating_duration_since(self.retargeted_at);
        if self.since_retarget < RETARGET_SHARES && elapsed < RETARGET_AFTER {
            return None;
        }
        let shares = self.since_retarget;
        let claimed = self.claimed_since;
        let seconds = elapsed.as_secs_f64().max(1e-3);
        self.since_retarget = 0;
        self.claimed_since = 0.0;
        self.retargeted_at = now;
        let wanted = if shares > 0 {
            self.rate_hps = f64::from(shares) * 2f64.powi(i32::from(self.bits)) / seconds;
            (self.rate_hps * SHARE_SECONDS)
                .log2()
                .floor()
                .clamp(f64::from(MIN_SHARE_BITS), f64::from(MAX_SHARE_BITS)) as u8
        } else if claimed >= 1.0 {
            // Work claimed and no share: an easier target, so evidence comes sooner
            // (an honest worker that was unlucky gets 4x the shares for a while).
            self.bits.saturating_sub(2).max(MIN_SHARE_BITS)
        } else {
            return None;
        };
        (wanted != self.bits).then(|| {
            self.bits = wanted;
            wanted
        })
    }
}

/// `P(X <= k)` for `X` Poisson with mean `lambda`.
pub fn poisson_cdf(k: u32, lambda: f64) -> f64 {
    let mut term = (-lambda).exp();
    let mut sum = term;
    for i in 1..=k {
        term *= lambda / f64::from(i);
        sum += term;
    }
    sum.min(1.0)
}
