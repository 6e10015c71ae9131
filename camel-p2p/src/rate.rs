//! Per-peer, per-protocol rate limits: token buckets, sans-I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// A token bucket: `rate` tokens a second, at most `burst` banked.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(limit: Limit, now: Instant) -> Self {
        Self {
            tokens: limit.burst,
            rate: limit.per_second,
            burst: limit.burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long until `n` tokens are available (zero if they are now).
    pub fn wait_for(&mut self, n: f64, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= n || self.rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((n - self.tokens) / self.rate)
        }
    }
}

/// A rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub per_second: f64,
    pub burst: f64,
}

impl Limit {
    pub const fn new(per_second: f64, burst: f64) -> Self {
        Self { per_second, burst }
    }
}

/// The classes of traffic limited separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// `Status` requests.
    Status,
    /// `GetHeaders` requests.
    Headers,
    /// Blocks asked for by `GetBlocks` (one token per hash).
    Blocks,
    /// `GetPeers` requests.
    Peers,
    /// Job-exchange requests.
    Job,
    /// Verification requests.
    Verify,
    /// Gossiped transactions, per relaying peer.
    GossipTx,
    /// Gossiped blocks, per relaying peer.
    GossipBlock,
    /// Gossiped job messages, per relaying peer.
    GossipJob,
}

/// The limit of each class.
#[derive(Debug, Clone)]
pub struct RateLimits {
    pub status: Limit,
    pub headers: Limit,
    pub blocks: Limit,
    pub peers: Limit,
    pub job: Limit,
    pub verify: Limit,
    pub gossip_tx: Limit,
    pub gossip_block: Limit,
    pub gossip_job: Limit,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            status: Limit::new(2.0, 10.0),
            headers: Limit::new(10.0, 20.0),
            blocks: Limit::new(10_000.0, 20_000.0),
            peers: Limit::new(1.0, 5.0),
            job: Limit::new(20.0, 50.0),
            verify: Limit::new(5.0, 20.0),
            gossip_tx: Limit::new(500.0, 2000.0),
            gossip_block: Limit::new(20.0, 100.0),
            gossip_job: Limit::new(100.0, 500.0),
        }
    }
}

impl RateLimits {
    pub fn get(&self, class: RateClass) -> Limit {
        match class {
            RateClass::Status => self.status,
            RateClass::Headers => self.headers,
            RateClass::Blocks => self.blocks,
            RateClass::Peers => self.peers,
            RateClass::Job => self.job,
            RateClass::Verify => self.verify,
            RateClass::GossipTx => self.gossip_tx,
            RateClass::GossipBlock => self.gossip_block,
            RateClass::GossipJob => self.gossip_job,
        }
    }
}

/// Buckets for every (peer, class) pair in use.
#[derive(Debug)]
pub struct RateLimiter {
    limits: RateLimits,
    buckets: HashMap<(PeerId, RateClass), TokenBucket>,
}

impl RateLimiter {
    pub fn new(limits: RateLimits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Whether `peer` may spend `cost` tokens of `class` now (and spends them if so).
    pub fn allow(&mut self, peer: PeerId, class: RateClass, cost: f64, now: Instant) -> bool {
        let limit = self.limits.get(class);
        self.buckets
            .entry((peer, class))
            .or_insert_with(|| TokenBucket::new(limit, now))
            .try_take(cost, now)
    }

    /// Forgets a disconnected peer's buckets.
    pub fn remove_peer(&mut self, peer: &PeerId) {
        self.buckets.retain(|(p, _), _| p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(Limit::new(10.0, 5.0), t0);
        assert!((0..5).all(|_| b.try_take(1.0, t0)));
        assert!(!b.try_take(1.0, t0));
        assert_eq!(b.wait_for(1.0, t0), Duration::from_millis(100));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(100)));
        // The bank never exceeds the burst.
        assert!(b.try_take(5.0, t0 + Duration::from_secs(60)));
        assert!(!b.try_take(1.0, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn peers_and_classes_are_separate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(RateLimits::default());
        let (a, b) = (PeerId::random(), PeerId::random());
        assert!((0..5).all(|_| r.allow(a, RateClass::Peers, 1.0, t0)));
        assert!(!r.allow(a, RateClass::Peers, 1.0, t0));
        assert!(r.allow(b, RateClass::Peers, 1.0, t0));
        assert!(r.allow(a, RateClass::Status, 1.0, t0));
        r.remove_peer(&a);
        assert!(r.allow(a, RateClass::Peers, 1.0, t0));
    }
}
