//! The peer manager's book: per-peer scores, the penalty table, disconnect and ban
//! thresholds, exponential decay, and what the node lists as its peers.
//!
//! Sans-I/O: callers pass the time and carry out the returned [`ScoreAction`]. The table is
//! written out, with reasons, in `docs/protocol.md` section 12; keep the two in step.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use libp2p::{Multiaddr, PeerId};

use crate::message::Status;

/// Things a peer can do wrong, each with a fixed penalty ([`Misbehaviour::penalty`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Misbehaviour {
    /// A block that fails validation (bad proof of work, merkle root, transactions, height).
    InvalidBlock,
    /// A header with bad proof of work, bits or time.
    BadPowHeader,
    /// A frame above the protocol's limit: no honest implementation sends one.
    Oversize,
    /// Headers that do not link to each other or to anything known.
    UnconnectedHeaders,
    /// A frame that does not decode (truncated, trailing bytes, a field out of range).
    Malformed,
    /// An unknown message type, a type on the wrong topic or protocol, or a response that
    /// does not answer the request.
    WrongType,
    /// A transaction that fails the context-free checks.
    InvalidTx,
    /// A job message the job handler found invalid.
    InvalidJob,
    /// Data that was not asked for (blocks outside the request, more headers than asked).
    UnrequestedData,
    /// One request or gossip message over the per-protocol rate limit.
    Flooding,
}

impl Misbehaviour {
    /// Points taken off the score (scores start at 0 and decay back towards it).
    pub const fn penalty(self) -> f64 {
        match self {
            Self::InvalidBlock | Self::BadPowHeader | Self::Oversize => 100.0,
            Self::UnconnectedHeaders | Self::Malformed | Self::WrongType => 20.0,
            Self::InvalidTx | Self::InvalidJob | Self::UnrequestedData => 10.0,
            Self::Flooding => 5.0,
        }
    }

    pub const ALL: [Self; 10] = [
        Self::InvalidBlock,
        Self::BadPowHeader,
        Self::Oversize,
        Self::UnconnectedHeaders,
        Self::Malformed,
        Self::WrongType,
        Self::InvalidTx,
        Self::InvalidJob,
        Self::UnrequestedData,
        Self::Flooding,
    ];
}

/// Thresholds and decay.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    /// At or below this score the peer is disconnected.
    pub disconnect_threshold: f64,
    /// A peer that connects with a score at or below this is disconnected again: a peer
    /// dropped at the disconnect threshold may come back after about one half-life.
    pub reconnect_threshold: f64,
    /// At or below this score the peer is banned.
    pub ban_threshold: f64,
    /// How long a ban lasts.
    pub ban_duration: Duration,
    /// Time for a negative score to halve.
    pub half_life: Duration,
    /// Score a peer comes back with when its ban ends.
    pub score_after_ban: f64,
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            disconnect_threshold: -50.0,
            reconnect_threshold: -25.0,
            ban_threshold: -100.0,
            ban_duration: Duration::from_secs(3600),
            half_life: Duration::from_secs(600),
            score_after_ban: -25.0,
        }
    }
}

/// What the caller must do after a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreAction {
    /// Nothing beyond the score change.
    None,
    /// Close the peer's connections.
    Disconnect,
    /// Close them and refuse the peer until the ban ends.
    Ban,
}

/// A peer as the node's API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Addresses the peer listens on (from identify), or the one it was reached at.
    pub addresses: Vec<Multiaddr>,
    pub score: f64,
    /// When its current connection opened; `None` when not connected.
    pub connected_since: Option<SystemTime>,
    pub banned: bool,
}

#[derive(Debug, Clone)]
struct Entry {
    score: f64,
    decayed_at: Instant,
    addrs: Vec<Multiaddr>,
    connected_since: Option<SystemTime>,
    banned_until: Option<Instant>,
    ping_failures: u32,
    status: Option<Status>,
}

/// Most peers remembered while not connected (banned ones first kept).
const MAX_REMEMBERED: usize = 4096;
/// Most addresses remembered per peer.
const MAX_ADDRS: usize = 8;

/// Scores, bans and addresses of every peer seen.
#[derive(Debug)]
pub struct PeerBook {
    config: ScoreConfig,
    peers: HashMap<PeerId, Entry>,
}

impl PeerBook {
    pub fn new(config: ScoreConfig) -> Self {
        Self {
            config,
            peers: HashMap::new(),
        }
    }

    fn entry(&mut self, peer: PeerId, now: Instant) -> &mut Entry {
        if self.peers.len() >= MAX_REMEMBERED && !self.peers.contains_key(&peer) {
            // Forget a disconnected, unbanned peer to make room.
            let victim = self
                .peers
                .iter()
                .find(|(_, e)| e.connected_since.is_none() && e.banned_until.is_none())
                .map(|(p, _)| *p);
            if let Some(v) = victim {
                self.peers.remove(&v);
            }
        }
        let half_life = self.config.half_life;
        let e = self.peers.entry(peer).or_insert_with(|| Entry {
            score: 0.0,
            decayed_at: now,
            addrs: Vec::new(),
            connected_since: None,
            banned_until: None,
            ping_failures: 0,
            status: None,
        });
        decay(e, now, half_life);
        e
    }

    /// Records a misbehaviour and says what to do about it. A banned peer stays banned.
    pub fn report(&mut self, peer: PeerId, what: Misbehaviour, now: Instant) -> ScoreAction {
        let (disconnect, ban, duration) = (
            self.config.disconnect_threshold,
            self.config.ban_threshold,
            self.config.ban_duration,
        );
        let e = self.entry(peer, now);
        if e.banned_until.is_some() {
            return ScoreAction::Ban;
        }
        e.score -= what.penalty();
        if e.score <= ban {
            e.score = ban;
            e.banned_until = Some(now + duration);
            ScoreAction::Ban
        } else if e.score <= disconnect {
            ScoreAction::Disconnect
        } else {
            ScoreAction::None
        }
    }

    /// The action a new connection from `peer` calls for: refuse banned peers and those
    /// whose score has not yet decayed above the reconnect threshold.
    pub fn on_connected(
        &mut self,
        peer: PeerId,
        addr: Option<Multiaddr>,
        now: Instant,
    ) -> ScoreAction {
        let threshold = self.config.reconnect_threshold;
        let e = self.entry(peer, now);
        e.connected_since = Some(SystemTime::now());
        e.ping_failures = 0;
        if let Some(a) = addr {
            add_addr(e, a);
        }
        if e.banned_until.is_some() {
            ScoreAction::Ban
        } else if e.score <= threshold {
            ScoreAction::Disconnect
        } else {
            ScoreAction::None
        }
    }

    pub fn on_disconnected(&mut self, peer: PeerId) {
        if let Some(e) = self.peers.get_mut(&peer) {
            e.connected_since = None;
            e.status = None;
        }
    }

    /// Remembers the addresses a peer says it listens on.
    pub fn set_listen_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>, now: Instant) {
        let e = self.entry(peer, now);
        e.addrs.clear();
        for a in addrs {
            add_addr(e, a);
        }
    }

    pub fn set_status(&mut self, peer: PeerId, status: Status, now: Instant) {
        self.entry(peer, now).status = Some(status);
    }

    pub fn status(&self, peer: &PeerId) -> Option<Status> {
        self.peers.get(peer).and_then(|e| e.status)
    }

    /// Counts a failed ping; returns the consecutive failures so far.
    pub fn ping_failed(&mut self, peer: PeerId, now: Instant) -> u32 {
        let e = self.entry(peer, now);
        e.ping_failures = e.ping_failures.saturating_add(1);
        e.ping_failures
    }

    pub fn ping_ok(&mut self, peer: PeerId, now: Instant) {
        self.entry(peer, now).ping_failures = 0;
    }

    pub fn is_banned(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| e.banned_until.is_some())
    }

    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.peers
            .get(peer)
            .is_some_and(|e| e.connected_since.is_some())
    }

    pub fn score(&mut self, peer: PeerId, now: Instant) -> f64 {
        self.entry(peer, now).score
    }

    pub fn addrs(&self, peer: &PeerId) -> Vec<Multiaddr> {
        self.peers
            .get(peer)
            .map(|e| e.addrs.clone())
            .unwrap_or_default()
    }

    /// Connected peers.
    pub fn connected(&self) -> impl Iterator<Item = &PeerId> {
        self.peers
            .iter()
            .filter(|(_, e)| e.connected_since.is_some())
            .map(|(p, _)| p)
    }

    /// Decays every score, lifts expired bans (returned) and forgets disconnected peers
    /// whose score is back near zero.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerId> {
        let half_life = self.config.half_life;
        let after = self.config.score_after_ban;
        let mut unbanned = Vec::new();
        for (p, e) in &mut self.peers {
            if e.banned_until.is_some_and(|t| t <= now) {
                e.banned_until = None;
                e.score = after;
                e.decayed_at = now;
                unbanned.push(*p);
            }
            decay(e, now, half_life);
        }
        self.peers.retain(|_, e| {
            e.connected_since.is_some() || e.banned_until.is_some() || e.score < -1.0
        });
        unbanned
    }

    /// Every peer that is connected or banned, for the API.
    pub fn list(&mut self, now: Instant) -> Vec<PeerInfo> {
        let half_life = self.config.half_life;
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter_mut()
            .filter(|(_, e)| e.connected_since.is_some() || e.banned_until.is_some())
            .map(|(p, e)| {
                decay(e, now, half_life);
                PeerInfo {
                    peer_id: *p,
                    addresses: e.addrs.clone(),
                    score: e.score,
                    connected_since: e.connected_since,
                    banned: e.banned_until.is_some(),
                }
            })
            .collect();
        out.sort_by_key(|p| p.peer_id);
        out
    }
}

fn add_addr(e: &mut Entry, a: Multiaddr) {
    if !e.addrs.contains(&a) && e.addrs.len() < MAX_ADDRS {
        e.addrs.push(a);
    }
}

/// Moves a negative score towards zero: `score · 2^(−elapsed / half_life)`. Banned peers do
/// not decay (the ban has its own clock).
fn decay(e: &mut Entry, now: Instant, half_life: Duration) {
    let elapsed = now.saturating_duration_since(e.decayed_at);
    e.decayed_at = now;
    if e.banned_until.is_some() || e.score >= 0.0 || half_life.is_zero() {
        return;
    }
    let factor = 0.5f64.powf(elapsed.as_secs_f64() / half_life.as_secs_f64());
    e.score *= factor;
    if e.score > -1e-3 {
        e.score = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> PeerBook {
        PeerBook::new(ScoreConfig::default())
    }

    #[test]
    fn fatal_faults_ban_at_once() {
        for m in [
            Misbehaviour::InvalidBlock,
            Misbehaviour::BadPowHeader,
            Misbehaviour::Oversize,
        ] {
            let mut b = book();
            let p = PeerId::random();
            assert_eq!(b.report(p, m, Instant::now()), ScoreAction::Ban, "{m:?}");
            assert!(b.is_banned(&p));
        }
    }

    #[test]
    fn thresholds() {
        let mut b = book();
        let p = PeerId::random();
        let now = Instant::now();
        assert_eq!(b.report(p, Misbehaviour::Malformed, now), ScoreAction::None);
        assert_eq!(b.report(p, Misbehaviour::Malformed, now), ScoreAction::None);
        assert_eq!(
            b.report(p, Misbehaviour::InvalidTx, now),
            ScoreAction::Disconnect
        );
        assert_eq!(b.on_connected(p, None, now), ScoreAction::Disconnect);
        assert_eq!(
            b.report(p, Misbehaviour::WrongType, now),
            ScoreAction::Disconnect
        );
        assert_eq!(
            b.report(p, Misbehaviour::Malformed, now),
            ScoreAction::Disconnect
        );
        assert_eq!(b.report(p, Misbehaviour::InvalidTx, now), ScoreAction::Ban);
        assert_eq!(b.score(p, now), -100.0);
    }

    #[test]
    fn flooding_disconnects_after_ten_and_bans_after_twenty() {
        let mut b = book();
        let p = PeerId::random();
        let now = Instant::now();
        let actions: Vec<_> = (0..20)
            .map(|_| b.report(p, Misbehaviour::Flooding, now))
            .collect();
        assert!(actions[..9].iter().all(|a| *a == ScoreAction::None));
        assert!(actions[9..19].iter().all(|a| *a == ScoreAction::Disconnect));
        assert_eq!(actions[19], ScoreAction::Ban);
    }

    #[test]
    fn decay_halves_and_bans_expire() {
        let cfg = ScoreConfig {
            half_life: Duration::from_secs(10),
            ban_duration: Duration::from_secs(30),
            ..ScoreConfig::default()
        };
        let mut b = PeerBook::new(cfg);
        let p = PeerId::random();
        let t0 = Instant::now();
        b.on_connected(p, None, t0);
        b.report(p, Misbehaviour::Malformed, t0);
        b.report(p, Misbehaviour::Malformed, t0);
        assert!((b.score(p, t0 + Duration::from_secs(10)) + 20.0).abs() < 1e-6);
        assert!((b.score(p, t0 + Duration::from_secs(20)) + 10.0).abs() < 1e-6);

        let q = PeerId::random();
        b.report(q, Misbehaviour::InvalidBlock, t0);
        assert!(b.tick(t0 + Duration::from_secs(29)).is_empty());
        assert!(b.is_banned(&q));
        assert_eq!(b.tick(t0 + Duration::from_secs(31)), vec![q]);
        assert!(!b.is_banned(&q));
        assert_eq!(b.score(q, t0 + Duration::from_secs(31)), -25.0);
    }

    #[test]
    fn a_peer_with_only_soft_faults_spread_out_is_never_banned() {
        // An invalid transaction once per half-life, for ten days: the score settles at
        // the fixed point of s = s/2 - 10, which is -20, far from the ban threshold.
        let mut b = book();
        let p = PeerId::random();
        let t0 = Instant::now();
        let mut worst: f64 = 0.0;
        for i in 0..1440u64 {
            let now = t0 + Duration::from_secs(600 * i);
            b.report(p, Misbehaviour::InvalidTx, now);
            worst = worst.min(b.score(p, now));
        }
        assert!(worst > -20.5, "{worst}");
        assert!(!b.is_banned(&p));
    }

    #[test]
    fn list_shows_connected_and_banned() {
        let mut b = book();
        let now = Instant::now();
        let (c, banned, gone) = (PeerId::random(), PeerId::random(), PeerId::random());
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/1".parse().unwrap();
        b.on_connected(c, Some(addr.clone()), now);
        b.report(banned, Misbehaviour::Oversize, now);
        b.on_connected(gone, None, now);
        b.on_disconnected(gone);
        let list = b.list(now);
        assert_eq!(list.len(), 2);
        let ci = list.iter().find(|i| i.peer_id == c).unwrap();
        assert_eq!(ci.addresses, vec![addr]);
        assert!(ci.connected_since.is_some() && !ci.banned && ci.score == 0.0);
        assert!(list.iter().find(|i| i.peer_id == banned).unwrap().banned);
    }
}
