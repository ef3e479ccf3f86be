//! Which new connections the coordinator lets start a handshake, decided before any
//! cryptography is spent on them: a token bucket of handshakes per IP address, a cap
//! on the connections from one address, and one on all of them. Clock-free: the
//! driver passes `now` and says when a connection ends; it owns no socket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// Addresses whose buckets are kept before refilled ones are forgotten.
const MAX_BUCKETS: usize = 65_536;

/// The limits admission enforces.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdmissionLimits {
    /// Connections open at once, from everywhere.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_per_address: usize,
    /// Handshakes one address may start per second, on average.
    pub handshakes_per_second: f64,
    /// Handshakes one address may start at once after a quiet spell.
    pub handshake_burst: u32,
}

/// Why a connection was not admitted. Each passes: trying again later can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    /// The address used up its handshake budget; it refills with time.
    #[error("too many handshakes from this address")]
    Handshakes,
    /// The coordinator holds as many connections as it may.
    #[error("too many connections")]
    Connections,
    /// The address holds as many connections as one may.
    #[error("too many connections from this address")]
    FromAddress,
}

/// Connections open and handshake budgets, per IP address.
#[derive(Debug)]
pub struct Admission {
    limits: AdmissionLimits,
    open: HashMap<IpAddr, usize>,
    total: usize,
    /// Token buckets: (tokens, when last filled).
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl Admission {
    /// No connection open, every bucket full.
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            open: HashMap::new(),
            total: 0,
            buckets: HashMap::new(),
        }
    }

    /// Whether a new connection from `ip` may start its handshake at `now` (it is
    /// then counted until [`Admission::closed`]); why not otherwise.
    pub fn admit(&mut self, ip: IpAddr, now: Instant) -> Result<(), Refused> {
        let limits = self.limits;
        let burst = f64::from(limits.handshake_burst.max(1));
        if self.buckets.len() > MAX_BUCKETS {
            // Forget addresses whose bucket has refilled: they are as if new.
            self.buckets.retain(|_, (tokens, at)| {
                *tokens
                    + now.saturating_duration_since(*at).as_secs_f64()
                        * limits.handshakes_per_second
                    < burst
            });
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((burst, now));
        *tokens = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * limits.handshakes_per_second)
            .min(burst);
        *at = now;
        if *tokens < 1.0 {
            return Err(Refused::Handshakes);
        }
        if self.total >= limits.max_connections {
            return Err(Refused::Connections);
        }
        let open = self.open.entry(ip).or_default();
        if *open >= limits.max_per_address {
            return Err(Refused::FromAddress);
        }
        *tokens -= 1.0;
        *open += 1;
        self.total += 1;
        Ok(())
    }

    /// A connection from `ip` ended.
    pub fn closed(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(open) = self.open.get_mut(&ip) {
            *open -= 1;
            if *open == 0 {
                self.open.remove(&ip);
            }
        }
    }

    /// Connections admitted and not yet closed.
    pub fn open(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn limits() -> AdmissionLimits {
        AdmissionLimits {
            max_connections: 5,
            max_per_address: 3,
            handshakes_per_second: 2.0,
            handshake_burst: 4,
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
    }

    #[test]
    fn one_address_gets_its_burst_then_waits_for_the_refill() {
        let mut a = Admission::new(AdmissionLimits {
            max_per_address: 100,
            max_connections: 100,
            ..limits()
        });
        let t0 = Instant::now();
        for _ in 0..4 {
            assert_eq!(a.admit(ip(1), t0), Ok(()));
        }
        assert_eq!(a.admit(ip(1), t0), Err(Refused::Handshakes));
        // A refused attempt spends nothing; 0.4 s refill 0.8 of a token: still short.
        assert_eq!(
            a.admit(ip(1), t0 + Duration::from_millis(400)),
            Err(Refused::Handshakes)
        );
        assert_eq!(a.admit(ip(1), t0 + Duration::from_millis(500)), Ok(()));
        // Another address has its own bucket.
        assert_eq!(a.admit(ip(2), t0), Ok(()));
        assert_eq!(a.open(), 6);
    }

    #[test]
    fn caps_per_address_and_in_all_hold_until_connections_close() {
        let mut a = Admission::new(limits());
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(a.admit(ip(1), t0), Ok(()));
        }
        assert_eq!(a.admit(ip(1), t0), Err(Refused::FromAddress));
        assert_eq!(a.admit(ip(2), t0), Ok(()));
        assert_eq!(a.admit(ip(2), t0), Ok(()));
        assert_eq!(a.admit(ip(3), t0), Err(Refused::Connections));
        a.closed(ip(1));
        assert_eq!(a.open(), 4);
        assert_eq!(a.admit(ip(3), t0), Ok(()));
        // A refusal for the caps spent no handshake token: ip 1 has one left, then
        // none.
        a.closed(ip(2));
        assert_eq!(a.admit(ip(1), t0), Ok(()));
        assert_eq!(a.admit(ip(1), t0), Err(Refused::Handshakes));
    }

    #[test]
    fn closing_more_than_was_admitted_never_underflows() {
        let mut a = Admission::new(limits());
        a.closed(ip(9));
        assert_eq!(a.open(), 0);
        assert_eq!(a.admit(ip(9), Instant::now()), Ok(()));
        assert_eq!(a.open(), 1);
    }

    #[test]
    fn refilled_buckets_are_forgotten_past_the_bound() {
        let mut a = Admission::new(AdmissionLimits {
            max_connections: usize::MAX,
            max_per_address: usize::MAX,
            ..limits()
        });
        let t0 = Instant::now();
        for i in 0..=MAX_BUCKETS as u32 {
            let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            assert_eq!(a.admit(addr, t0), Ok(()));
        }
        // Ten seconds on, every bucket has refilled: the next admission drops them.
        assert_eq!(a.admit(ip(1), t0 + Duration::from_secs(10)), Ok(()));
        assert_eq!(a.buckets.len(), 1);
    }
}
