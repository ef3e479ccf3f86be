//! Leader election and self-fencing for coordinators that share a store (etcd), as a
//! synchronous state machine: it reads no clock and talks to no store. The driver
//! (`crate::service::ha`) carries out its [`ElectionAction`]s against etcd and feeds
//! the answers back; the simulation (`picluster_suite::sim::election`) feeds it a
//! simulated store with crashes and partitions.
//!
//! Each candidate holds a store lease of [`ElectionConfig::ttl`], renewed every
//! [`ElectionConfig::renew`], and campaigns for one leader key bound to that lease:
//! the key is created only if it does not exist, and its creation revision is the
//! leader's fencing token (every write the leader makes is guarded by it at the
//! store). A standby campaigns again every [`ElectionConfig::poll`], which also tells
//! it who leads.
//!
//! Self-fencing: the leader's deadline is the instant at which the last renewal the
//! store acknowledged was *sent*, plus the lease's time to live, less
//! [`ElectionConfig::margin`]. The store expires the lease no earlier than that send
//! plus the TTL, so a leader that stops at its deadline has stopped before any
//! successor can be elected, however late the store's answers (or none) arrive. A
//! lease the store reports gone ends the leadership at once.
//!
//! Driving order: after any `handle_*`, drain [`Election::poll_action`] and
//! [`Election::poll_event`], then sleep until [`Election::poll_timeout`] and call
//! [`Election::handle_timeout`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timings of an election.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// The store lease's time to live.
    pub ttl: Duration,
    /// How often the lease is renewed.
    pub renew: Duration,
    /// How long before the earliest moment the store may expire the lease the leader
    /// stops acting (clock rate differences, the driver's own lateness).
    pub margin: Duration,
    /// How often a standby campaigns (and so learns who leads).
    pub poll: Duration,
    /// How long after a failed request (a grant, a renewal) it is made again.
    pub retry: Duration,
}

impl Default for ElectionConfig {
    /// A 3 s lease renewed every 250 ms, fenced 0.5 s early; standbys campaign
    /// every 200 ms. A leader key under a 3 s lease moves 2.5-3 s after its holder
    /// dies. etcd elects a new leader of its own in 1-1.6 s after losing one; the
    /// leader's fence, at least 2.25 s after the last acknowledged renewal was sent,
    /// outlasts that and the next renewal (they go out on schedule, each on its own
    /// stream, however long the previous ones wait).
    fn default() -> ElectionConfig {
        ElectionConfig {
            ttl: Duration::from_secs(3),
            renew: Duration::from_millis(250),
            margin: Duration::from_millis(500),
            poll: Duration::from_millis(200),
            retry: Duration::from_millis(200),
        }
    }
}

/// A store lease id.
pub type StoreLease = i64;

/// What the driver must do against the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionAction {
    /// Grant a lease of `ttl`; answer with [`Election::handle_granted`] or
    /// [`Election::handle_failed`].
    Grant {
        /// Its time to live.
        ttl: Duration,
    },
    /// Renew `lease`; answer with [`Election::handle_renewed`] (carrying `sent`) or
    /// [`Election::handle_failed`].
    Renew {
        /// The lease.
        lease: StoreLease,
        /// When the renewal was decided (the driver sends it at once).
        sent: Instant,
    },
    /// Create the leader key bound to `lease` unless it exists; answer with
    /// [`Election::handle_campaigned`] or [`Election::handle_failed`].
    Campaign {
        /// The lease.
        lease: StoreLease,
    },
    /// Revoke a lease no longer used (best effort; no answer expected).
    Revoke {
        /// The lease.
        lease: StoreLease,
    },
}

/// What the store said to a campaign.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Campaigned {
    /// The key was created: this candidate leads, fenced by the key's creation
    /// revision.
    Won {
        /// The leader key's creation revision.
        revision: i64,
    },
    /// The key exists: another holder (or this one's, under an old lease) leads.
    Held {
        /// The key's value: the leader's address as it advertises it.
        leader: String,
        /// The lease the key is bound to.
        lease: StoreLease,
        /// Its creation revision.
        revision: i64,
    },
}

/// What the election tells its owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionEvent {
    /// This candidate leads from now; every write must be guarded by `revision`.
    Elected {
        /// The leader key's creation revision (the fencing token).
        revision: i64,
    },
    /// This candidate led and must stop acting at once: its deadline passed without
    /// an acknowledged renewal, or the store said its lease is gone.
    Fenced {
        /// Why.
        cause: FenceCause,
    },
    /// Another candidate leads (`Some(address)`), or no one is known to (`None`).
    Leader(Option<String>),
}

/// Why a leader stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceCause {
    /// No renewal was acknowledged in time (the store is unreachable or slow).
    Deadline,
    /// The store says the lease has expired.
    LeaseGone,
    /// The owner stepped down.
    SteppedDown,
}

impl std::fmt::Display for FenceCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FenceCause::Deadline => "no lease renewal acknowledged before the deadline",
            FenceCause::LeaseGone => "etcd says the leader lease has expired",
            FenceCause::SteppedDown => "stepped down",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// No lease: ask for one at `at` (`None`: asked, waiting).
    NoLease { at: Option<Instant> },
    /// Holding a lease, not leading: campaign at `campaign_at` (`None`: in flight).
    Standby {
        lease: StoreLease,
        campaign_at: Option<Instant>,
    },
    /// Leading under `revision` until `deadline`.
    Leading { lease: StoreLease, revision: i64 },
}

/// One candidate's election state machine.
#[derive(Debug)]
pub struct Election {
    config: ElectionConfig,
    state: State,
    /// The lease's own deadline, from the last acknowledged renewal (or the grant):
    /// past it the lease may be gone at the store.
    deadline: Option<Instant>,
    /// When the next renewal is due.
    renew_at: Option<Instant>,
    /// The leader last reported, to report only changes.
    leader: Option<Option<String>>,
    actions: VecDeque<ElectionAction>,
    events: VecDeque<ElectionEvent>,
}

impl Election {
    /// A candidate that will ask for a lease at its first timeout.
    pub fn new(config: ElectionConfig, now: Instant) -> Election {
        Election {
            config,
            state: State::NoLease { at: Some(now) },
            deadline: None,
            renew_at: None,
            leader: None,
            actions: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Whether this candidate leads now.
    pub fn is_leader(&self) -> bool {
        matches!(self.state, State::Leading { .. })
    }

    /// The leader's deadline: past it, it must not act (`None` unless leading).
    pub fn fence_deadline(&self) -> Option<Instant> {
        match self.state {
            State::Leading { .. } => self.deadline.map(|d| d - self.config.margin),
            _ => None,
        }
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<StoreLease> {
        match self.state {
            State::Standby { lease, .. } | State::Leading { lease, .. } => Some(lease),
            State::NoLease { .. } => None,
        }
    }

    /// A lease was granted, its clock started no earlier than `sent`.
    pub fn handle_granted(
        &mut self,
        now: Instant,
        sent: Instant,
        lease: StoreLease,
        ttl: Duration,
    ) {
        if !matches!(self.state, State::NoLease { at: None }) {
            // An answer to a request this machine gave up on: not ours to keep.
            self.actions.push_back(ElectionAction::Revoke { lease });
            return;
        }
        self.deadline = Some(sent + ttl.min(self.config.ttl));
        self.renew_at = Some(now + self.config.renew);
        self.state = State::Standby {
            lease,
            campaign_at: Some(now),
        };
    }

    /// The store acknowledged a renewal sent at `sent`: the lease lives `ttl` from
    /// the store's receipt of it (zero: it is gone).
    pub fn handle_renewed(
        &mut self,
        now: Instant,
        lease: StoreLease,
        sent: Instant,
        ttl: Duration,
    ) {
        if self.lease() != Some(lease) {
            return;
        }
        if ttl.is_zero() {
            self.lose_lease(now, FenceCause::LeaseGone);
            return;
        }
        let until = sent + ttl.min(self.config.ttl);
        if self.deadline.is_none_or(|d| until > d) {
            self.deadline = Some(until);
        }
    }

    /// A campaign's answer.
    pub fn handle_campaigned(&mut self, now: Instant, lease: StoreLease, answer: Campaigned) {
        let State::Standby {
            lease: held,
            campaign_at: None,
        } = self.state
        else {
            return;
        };
        if held != lease {
            return;
        }
        match answer {
            Campaigned::Won { revision } => {
                self.state = State::Leading { lease, revision };
                self.leader = None;
                self.events.push_back(ElectionEvent::Elected { revision });
            }
            Campaigned::Held {
                lease: holder,
                revision,
                ..
            } if holder == lease => {
                // Our own key from this lease: an earlier campaign's answer was lost.
                self.state = State::Leading { lease, revision };
                self.leader = None;
                self.events.push_back(ElectionEvent::Elected { revision });
            }
            Campaigned::Held { leader, .. } => {
                self.report_leader(Some(leader));
                self.state = State::Standby {
                    lease,
                    campaign_at: Some(now + self.config.poll),
                };
            }
        }
    }

    /// A request failed (the store unreachable, a timeout): the lease's deadline
    /// decides what follows.
    pub fn handle_failed(&mut self, now: Instant, action: &ElectionAction) {
        let held = self.lease();
        match (action, &mut self.state) {
            (ElectionAction::Grant { .. }, State::NoLease { at }) => {
                *at = Some(now + self.config.retry);
            }
            // Renew again soon rather than at the next interval: the deadline is
            // close, and etcd may be back (a new etcd leader) in a moment.
            (ElectionAction::Renew { lease, .. }, _) if held == Some(*lease) => {
                let soon = now + self.config.retry;
                self.renew_at = Some(self.renew_at.map_or(soon, |at| at.min(soon)));
            }
            (
                ElectionAction::Campaign { lease },
                State::Standby {
                    lease: held,
                    campaign_at,
                },
            ) if lease == held => {
                *campaign_at = Some(now + self.config.poll);
                self.report_leader(None);
            }
            _ => {}
        }
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(fence) = self.fence_deadline() {
            if now >= fence {
                self.lose_lease(now, FenceCause::Deadline);
            }
        }
        if let (State::Standby { .. }, Some(deadline)) = (&self.state, self.deadline) {
            if now >= deadline {
                // A standby's lease lapsed: its campaigns would be refused by the store.
                self.lose_lease(now, FenceCause::Deadline);
            }
        }
        match &mut self.state {
            State::NoLease { at } if at.is_some_and(|t| now >= t) => {
                *at = None;
                self.actions.push_back(ElectionAction::Grant {
                    ttl: self.config.ttl,
                });
            }
            State::Standby { lease, campaign_at } if campaign_at.is_some_and(|t| now >= t) => {
                *campaign_at = None;
                self.actions
                    .push_back(ElectionAction::Campaign { lease: *lease });
            }
            _ => {}
        }
        if let (Some(lease), Some(at)) = (self.lease(), self.renew_at) {
            if now >= at {
                self.renew_at = Some(now + self.config.renew);
                self.actions
                    .push_back(ElectionAction::Renew { lease, sent: now });
            }
        }
    }

    /// Gives up the leadership (shutting down): the lease is revoked so a standby
    /// takes over at once rather than after the TTL.
    pub fn handle_resign(&mut self) {
        if let Some(lease) = self.lease() {
            self.actions.push_back(ElectionAction::Revoke { lease });
        }
        if self.is_leader() {
            self.events.push_back(ElectionEvent::Fenced {
                cause: FenceCause::SteppedDown,
            });
        }
        self.state = State::NoLease { at: None };
        self.deadline = None;
        self.renew_at = None;
    }

    /// Steps down without stopping (the coordinator could not go on leading: a
    /// write failed): the lease is revoked, so a standby can take over at once, and
    /// this candidate campaigns again under a new one.
    pub fn handle_step_down(&mut self, now: Instant) {
        self.lose_lease(now, FenceCause::SteppedDown);
    }

    fn lose_lease(&mut self, now: Instant, cause: FenceCause) {
        if let State::Leading { .. } = self.state {
            self.events.push_back(ElectionEvent::Fenced { cause });
        }
        if let Some(lease) = self.lease() {
            self.actions.push_back(ElectionAction::Revoke { lease });
        }
        self.report_leader(None);
        self.state = State::NoLease {
            at: Some(now + self.config.retry),
        };
        self.deadline = None;
        self.renew_at = None;
    }

    fn report_leader(&mut self, leader: Option<String>) {
        if self.leader.as_ref() != Some(&leader) {
            self.leader = Some(leader.clone());
            self.events.push_back(ElectionEvent::Leader(leader));
        }
    }

    /// The next request for the store.
    pub fn poll_action(&mut self) -> Option<ElectionAction> {
        self.actions.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<ElectionEvent> {
        self.events.pop_front()
    }

    /// When [`Election::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let state = match &self.state {
            State::NoLease { at } => *at,
            State::Standby { campaign_at, .. } => *campaign_at,
            State::Leading { .. } => None,
        };
        let expiry = match self.state {
            State::Leading { .. } => self.fence_deadline(),
            _ => self.deadline,
        };
        [state, self.renew_at, expiry].into_iter().flatten().min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renewals every second, retries after half a second: round numbers.
    fn test_config() -> ElectionConfig {
        ElectionConfig {
            renew: Duration::from_secs(1),
            retry: Duration::from_millis(500),
            ..ElectionConfig::default()
        }
    }

    fn drain(e: &mut Election) -> (Vec<ElectionAction>, Vec<ElectionEvent>) {
        let mut a = Vec::new();
        while let Some(x) = e.poll_action() {
            a.push(x);
        }
        let mut v = Vec::new();
        while let Some(x) = e.poll_event() {
            v.push(x);
        }
        (a, v)
    }

    /// A candidate holding `lease`, its first campaign sent.
    fn campaigning(t0: Instant, lease: StoreLease) -> Election {
        let mut e = Election::new(test_config(), t0);
        e.handle_timeout(t0);
        assert_eq!(
            drain(&mut e).0,
            vec![ElectionAction::Grant {
                ttl: Duration::from_secs(3)
            }]
        );
        e.handle_granted(t0, t0, lease, Duration::from_secs(3));
        e.handle_timeout(t0);
        assert_eq!(drain(&mut e).0, vec![ElectionAction::Campaign { lease }]);
        e
    }

    fn elected(t0: Instant) -> Election {
        let mut e = campaigning(t0, 7);
        e.handle_campaigned(t0, 7, Campaigned::Won { revision: 42 });
        assert_eq!(
            drain(&mut e).1,
            vec![ElectionEvent::Elected { revision: 42 }]
        );
        e
    }

    #[test]
    fn leader_without_acknowledged_renewals_fences_before_the_lease_can_expire() {
        let t0 = Instant::now();
        let mut e = elected(t0);
        assert_eq!(e.fence_deadline(), Some(t0 + Duration::from_millis(2500)));
        // Renewals go out every second; none is answered.
        for s in 1..=2 {
            let now = t0 + Duration::from_secs(s);
            e.handle_timeout(now);
            let (actions, events) = drain(&mut e);
            assert_eq!(
                actions,
                vec![ElectionAction::Renew {
                    lease: 7,
                    sent: now
                }]
            );
            assert!(events.is_empty());
        }
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_millis(2500)));
        e.handle_timeout(t0 + Duration::from_millis(2500));
        let (actions, events) = drain(&mut e);
        assert_eq!(
            events,
            vec![
                ElectionEvent::Fenced {
                    cause: FenceCause::Deadline
                },
                ElectionEvent::Leader(None)
            ]
        );
        assert_eq!(actions, vec![ElectionAction::Revoke { lease: 7 }]);
        assert!(!e.is_leader());
    }

    #[test]
    fn deadline_counts_from_when_the_acknowledged_renewal_was_sent_not_answered() {
        let t0 = Instant::now();
        let mut e = elected(t0);
        let sent = t0 + Duration::from_secs(1);
        e.handle_timeout(sent);
        drain(&mut e);
        // Answered 1.2 s late: the deadline is still sent + ttl - margin.
        e.handle_renewed(
            sent + Duration::from_millis(1200),
            7,
            sent,
            Duration::from_secs(3),
        );
        assert_eq!(e.fence_deadline(), Some(sent + Duration::from_millis(2500)));
        // An older renewal's late answer does not move it back.
        e.handle_renewed(
            sent + Duration::from_millis(1300),
            7,
            t0,
            Duration::from_secs(3),
        );
        assert_eq!(e.fence_deadline(), Some(sent + Duration::from_millis(2500)));
    }

    #[test]
    fn a_failed_renewal_is_tried_again_soon() {
        let t0 = Instant::now();
        let mut e = elected(t0);
        let sent = t0 + Duration::from_secs(1);
        e.handle_timeout(sent);
        let renew = drain(&mut e).0.remove(0);
        e.handle_failed(sent + Duration::from_millis(10), &renew);
        assert_eq!(e.poll_timeout(), Some(sent + Duration::from_millis(510)));
        assert!(e.is_leader());
    }

    #[test]
    fn a_lease_the_store_reports_gone_fences_at_once() {
        let t0 = Instant::now();
        let mut e = elected(t0);
        e.handle_renewed(t0, 7, t0, Duration::ZERO);
        let (_, events) = drain(&mut e);
        assert_eq!(
            events[0],
            ElectionEvent::Fenced {
                cause: FenceCause::LeaseGone
            }
        );
        assert_eq!(e.fence_deadline(), None);
    }

    #[test]
    fn standby_learns_the_leader_and_campaigns_again_after_poll() {
        let t0 = Instant::now();
        let mut e = campaigning(t0, 9);
        let held = Campaigned::Held {
            leader: "10.0.0.1:7878".into(),
            lease: 8,
            revision: 5,
        };
        e.handle_campaigned(t0, 9, held.clone());
        assert_eq!(
            drain(&mut e).1,
            vec![ElectionEvent::Leader(Some("10.0.0.1:7878".into()))]
        );
        let next = t0 + Duration::from_millis(200);
        assert_eq!(e.poll_timeout(), Some(next));
        e.handle_timeout(next);
        assert_eq!(drain(&mut e).0, vec![ElectionAction::Campaign { lease: 9 }]);
        // The same leader again is not news.
        e.handle_campaigned(next, 9, held);
        assert!(drain(&mut e).1.is_empty());
        assert!(!e.is_leader());
    }

    #[test]
    fn a_lost_campaign_answer_is_recognised_as_our_own_key() {
        let t0 = Instant::now();
        let mut e = campaigning(t0, 9);
        e.handle_campaigned(
            t0,
            9,
            Campaigned::Held {
                leader: "me".into(),
                lease: 9,
                revision: 11,
            },
        );
        assert_eq!(
            drain(&mut e).1,
            vec![ElectionEvent::Elected { revision: 11 }]
        );
    }

    #[test]
    fn failed_grant_is_retried_and_a_late_grant_is_revoked() {
        let t0 = Instant::now();
        let mut e = Election::new(test_config(), t0);
        e.handle_timeout(t0);
        let grant = drain(&mut e).0.remove(0);
        e.handle_failed(t0, &grant);
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_millis(500)));
        // A grant answered after the machine stopped waiting for it.
        e.handle_granted(t0, t0, 3, Duration::from_secs(3));
        assert_eq!(drain(&mut e).0, vec![ElectionAction::Revoke { lease: 3 }]);
    }
}
