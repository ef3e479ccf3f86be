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

/// One worker's shares, kept by its name across its connections (a worker that
/// reconnects carries on its window and its target; it cannot start afresh).
#[derive(Clone, Debug)]
pub(super) struct ShareAccount {
    /// The share target in force: leading zero bits.
    pub(super) bits: u8,
    window_expected: f64,
    window_observed: u32,
    since_retarget: u32,
    /// Shares the progress claimed since the last retarget implies.
    claimed_since: f64,
    /// Indices claimed on share-bearing leases since the last retarget.
    claimed_indices: f64,
    /// Hashes the shares verified since the last retarget stand for: each share
    /// weighs 2^(the bits of the lease it was found in), whatever the target now.
    verified_work: f64,
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
            claimed_indices: 0.0,
            verified_work: 0.0,
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
        self.claimed_indices += indices as f64;
    }

    /// A share verified, found in a lease whose shares are at `bits`.
    pub(super) fn verified(&mut self, bits: u8) {
        self.window_observed += 1;
        self.since_retarget += 1;
        self.verified += 1;
        self.verified_work += 2f64.powi(i32::from(bits));
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
        let (work, indices) = (self.verified_work, self.claimed_indices);
        self.since_retarget = 0;
        self.claimed_since = 0.0;
        self.verified_work = 0.0;
        self.claimed_indices = 0.0;
        self.retargeted_at = now;
        let wanted = if shares > 0 {
            self.rate_hps = work / seconds;
            // Aimed at the lower of what the shares show and what the progress
            // claims: a worker at its claimed rate still finds shares at the aimed
            // pace, so the test keeps its evidence for the whole session.
            let claimed_hps = indices / seconds;
            let rate = if claimed_hps > 0.0 {
                self.rate_hps.min(claimed_hps)
            } else {
                self.rate_hps
            };
            (rate * SHARE_SECONDS)
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

/// `P(X <= k)` for `X` Poisson with mean `lambda`. Summed in logarithms: `e^-lambda`
/// underflows to 0 past a mean of about 708 (a fast worker's first claim at the
/// initial target), which would judge every count too low.
pub fn poisson_cdf(k: u32, lambda: f64) -> f64 {
    if lambda <= 0.0 {
        return 1.0;
    }
    let ln_lambda = lambda.ln();
    let mut log_term = -lambda;
    let mut log_sum = log_term;
    for i in 1..=k {
        log_term += ln_lambda - f64::from(i).ln();
        let (hi, lo) = if log_sum > log_term {
            (log_sum, log_term)
        } else {
            (log_term, log_sum)
        };
        log_sum = hi + (lo - hi).exp().ln_1p();
    }
    log_sum.exp().min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small seeded generator: the runs below replay exactly.
    struct Rng(u64);

    impl Rng {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A Poisson draw of mean `lambda`: Knuth's method, or the normal
        /// approximation for a large mean.
        fn poisson(&mut self, lambda: f64) -> u32 {
            if lambda > 30.0 {
                let (u, v) = (self.uniform().max(1e-300), self.uniform());
                let gauss = (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos();
                return (lambda + lambda.sqrt() * gauss).round().max(0.0) as u32;
            }
            let limit = (-lambda).exp();
            let (mut k, mut p) = (0, 1.0);
            loop {
                p *= self.uniform();
                if p <= limit {
                    return k;
                }
                k += 1;
            }
        }
    }

    const STEP: Duration = Duration::from_millis(250);

    /// A worker hashing at `rate` for `seconds` (none after `lazy_from`, while it
    /// claims the same progress), with leases of 2 s stamped with the target in force
    /// when each began, as the real agent does. Returns the shares verified per 5 s
    /// over the last 100 s before `lazy_from`, the target bits seen, and when (in
    /// seconds) the test caught the worker, if it did.
    fn run(
        rate: f64,
        seconds: u64,
        lazy_from: Option<u64>,
        seed: u64,
    ) -> (f64, Vec<u8>, Option<f64>) {
        let t0 = Instant::now();
        let mut rng = Rng(seed);
        let mut account = ShareAccount::new(t0);
        let mut lease_bits = account.bits;
        let (mut bits_seen, mut late_shares) = (Vec::new(), 0u32);
        let honest_until = lazy_from.unwrap_or(seconds);
        let steps = seconds * 4;
        for step in 1..=steps {
            let now = t0 + STEP * step as u32;
            let t = step as f64 / 4.0;
            if step % 8 == 1 {
                lease_bits = account.bits;
            }
            let claimed = (rate * STEP.as_secs_f64()) as u64;
            let hashed = if t <= honest_until as f64 { claimed } else { 0 };
            let shares = rng.poisson(hashed as f64 / 2f64.powi(i32::from(lease_bits)));
            for _ in 0..shares {
                account.verified(lease_bits);
            }
            if t > honest_until as f64 - 100.0 && t <= honest_until as f64 {
                late_shares += shares;
            }
            account.claimed(claimed, lease_bits);
            if account.judge().is_err() {
                return (f64::from(late_shares) / 20.0, bits_seen, Some(t));
            }
            if let Some(bits) = account.retarget(now) {
                bits_seen.push(bits);
            }
        }
        (f64::from(late_shares) / 20.0, bits_seen, None)
    }

    #[test]
    fn the_poisson_test_holds_for_large_means() {
        // At the mean, about half the mass lies at or below it, whatever the mean.
        for lambda in [32.0, 700.0, 1_144.0, 50_000.0] {
            let p = poisson_cdf(lambda as u32, lambda);
            assert!((0.45..0.6).contains(&p), "P(X <= {lambda}) = {p}");
        }
        // Far below the mean is still judged too low.
        assert!(poisson_cdf(900, 1_144.0) < FALSE_ALARM);
        assert!((poisson_cdf(0, 2.0) - (-2f64).exp()).abs() < 1e-15);
    }

    #[test]
    fn an_honest_worker_keeps_sending_shares_at_the_aimed_pace_for_the_whole_session() {
        for (rate, seed) in [(20e6, 1), (1e6, 2), (300e6, 3)] {
            let (per_5s, bits, caught) = run(rate, 1_200, None, seed);
            assert_eq!(caught, None, "an honest worker at {rate} H/s was flagged");
            // The target settles where the rate gives a share per 5 s, and never
            // runs away from it (before: 60 bits within two seconds, then silence).
            let aimed = (rate * SHARE_SECONDS).log2().floor() as u8;
            assert!(
                bits.iter().all(|&b| b <= aimed + 1),
                "{rate} H/s: targets {bits:?}, aimed {aimed}"
            );
            assert!(bits.last().is_some_and(|&b| b + 2 >= aimed), "{bits:?}");
            // 100 s at one share per 5 s: 20 expected; Poisson bounds far outside
            // that (P < 1e-6) would mean the pace is wrong.
            assert!(
                (0.25..=2.5).contains(&per_5s),
                "{rate} H/s: {per_5s} shares per 5 s"
            );
        }
    }

    #[test]
    fn a_worker_that_turns_lazy_at_any_moment_is_caught_within_a_window() {
        for (lazy_from, seed) in [(30, 4), (200, 5), (777, 6)] {
            let (_, _, caught) = run(20e6, 2_000, Some(lazy_from), seed);
            let caught = caught.expect("a lazy worker is caught");
            // A window expects 32 shares, at one per 5 s: 160 s; the window in
            // progress when it turned lazy may have most of its span left.
            assert!(
                caught > lazy_from as f64 && caught <= lazy_from as f64 + 2.0 * 160.0,
                "turned lazy at {lazy_from} s, caught at {caught} s"
            );
        }
    }
}
