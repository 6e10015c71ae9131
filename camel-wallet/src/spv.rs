//! The light client's own checks, so that a node is never simply believed: a header chain
//! verified from the genesis (proof of work against the header's own `bits`, the `bits` the
//! retarget rules require, linkage, time after the median of the last blocks), and merkle
//! proofs that tie each transaction the wallet relies on to a verified header.
//!
//! Sans-I/O: [`HeaderChain`] takes headers and proofs as values; [`sync`] and the wallet feed it
//! from a [`NodeClient`]. What cannot be proven this way is written in `docs/wallet.md`: that a
//! coin is still unspent (a spend of a spent coin is refused at broadcast) and that the node
//! hides nothing (cross-checking several nodes narrows that).

use camel_core::Txid;
use camel_core::block::Header;
use camel_core::encode::encode_to_vec;
use camel_core::hash::{BlockHash, Hash256};
use camel_core::merkle::root_from_branch;
use camel_core::params::Params;
use camel_core::pow::Target;
use camel_core::pow::{Work, check_proof_of_work, required_bits};
use camel_core::transaction::Transaction;
use camel_core::validation::{check_header_contextual, median_time_past};

use crate::node::{NodeClient, NodeError};

/// The largest median-time span computed on the stack.
const MTP_SPAN_MAX: usize = 16;

/// Most headers asked for at once (the node's limit).
pub const HEADERS_PER_CALL: u32 = 2_000;

/// Why a node's answer was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpvError {
    /// A header that breaks the chain's rules: the node serves a forged chain.
    #[error("header {height} is invalid ({why}): the node serves a forged header chain")]
    ForgedHeader { height: u32, why: String },
    /// A proof that does not tie the transaction to the verified header.
    #[error("the node's proof for transaction {txid} is false ({why})")]
    BadProof { txid: Txid, why: String },
    /// The node's chain has less work than one already verified.
    #[error(
        "the node's chain (height {theirs}) has less work than the one verified (height {ours})"
    )]
    LessWork { ours: u32, theirs: u32 },
}

/// A header chain checked from the genesis.
#[derive(Debug, Clone)]
pub struct HeaderChain {
    params: Params,
    headers: Vec<Header>,
    hashes: Vec<BlockHash>,
    work: Work,
}

/// A transaction with its place in a block, as `GET /tx/{txid}/proof` serves it.
#[derive(Debug, Clone)]
pub struct TxProof {
    pub tx: Transaction,
    pub height: u32,
    pub position: u32,
    pub header: Header,
    pub branch: Vec<Hash256>,
}

impl HeaderChain {
    /// The chain of the genesis alone.
    pub fn new(params: Params) -> Self {
        let genesis = params.genesis_block().header;
        let work = work_of(&genesis);
        Self {
            hashes: vec![genesis.block_hash()],
            headers: vec![genesis],
            params,
            work,
        }
    }

    /// Height of the last verified header.
    pub fn height(&self) -> u32 {
        u32::try_from(self.headers.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }

    pub fn tip(&self) -> BlockHash {
        self.hashes.last().copied().unwrap_or(BlockHash::ZERO)
    }

    pub fn work(&self) -> Work {
        self.work
    }

    /// The chain work up to and including `height` (the whole chain's above its tip).
    pub fn work_at(&self, height: u32) -> Work {
        let n = usize::try_from(height)
            .unwrap_or(usize::MAX)
            .saturating_add(1)
            .min(self.headers.len());
        self.headers[..n]
            .iter()
            .fold(Work::ZERO, |w, h| w.saturating_add(work_of(h)))
    }

    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.hashes.get(usize::try_from(height).ok()?).copied()
    }

    pub fn header_at(&self, height: u32) -> Option<&Header> {
        self.headers.get(usize::try_from(height).ok()?)
    }

    /// Verifies `headers` as the chain's next ones and appends them; on the first invalid
    /// one nothing after it is kept and the error names its height. `now` is the wallet's clock
    /// (a header more than the allowed drift in the future is refused).
    pub fn extend(&mut self, headers: &[Header], now: u32) -> Result<(), SpvError> {
        self.headers.reserve(headers.len());
        self.hashes.reserve(headers.len());
        // `bits` change only at retargets: their target and work are computed once per value.
        let mut cached: Option<(u32, Target, Work)> = None;
        for h in headers {
            let height = self.height().saturating_add(1);
            let forged = |why: String| SpvError::ForgedHeader { height, why };
            let parent = *self
                .headers
                .last()
                .ok_or_else(|| forged("no parent".into()))?;
            if h.prev_blockhash != self.tip() {
                return Err(forged(format!(
                    "its parent is {}, not the block at height {} ({})",
                    h.prev_blockhash,
                    height - 1,
                    self.tip()
                )));
            }
            let hash = h.block_hash();
            let (target, work) = match cached {
                Some((bits, t, w)) if bits == h.bits => (t, w),
                _ => {
                    check_proof_of_work(&hash, h.bits, self.params.pow_limit)
                        .map_err(|e| forged(format!("proof of work: {e}")))?;
                    let t = Target::from_compact(h.bits)
                        .map_err(|e| forged(format!("proof of work: {e}")))?;
                    let w = t.work();
                    cached = Some((h.bits, t, w));
                    (t, w)
                }
            };
            if !target.is_met_by(&hash) {
                return Err(forged(format!(
                    "proof of work: hash {hash} above its target"
                )));
            }
            let expected = required_bits(&self.params, height, parent.bits, parent.time, |at| {
                self.header_at(at).map(|x| x.time)
            })
            .map_err(|e| forged(format!("retarget: {e}")))?;
            check_header_contextual(h, expected, self.median_time_past(), now, &self.params)
                .map_err(|e| forged(e.to_string()))?;
            self.work = self.work.saturating_add(work);
            self.headers.push(*h);
            self.hashes.push(hash);
        }
        Ok(())
    }

    /// The median time of the last `median_time_span` headers (at most 11 on every network),
    /// without allocating: the rule of `camel_core::validation::median_time_past`.
    fn median_time_past(&self) -> u32 {
        let span = self.params.median_time_span;
        if span > MTP_SPAN_MAX {
            let times: Vec<u32> = self
                .headers
                .iter()
                .rev()
                .take(span)
                .map(|x| x.time)
                .collect();
            return median_time_past(&times);
        }
        let mut buf = [0u32; MTP_SPAN_MAX];
        let mut n = 0;
        for (slot, h) in buf.iter_mut().zip(self.headers.iter().rev().take(span)) {
            *slot = h.time;
            n += 1;
        }
        if n == 0 {
            return 0;
        }
        let times = &mut buf[..n];
        // Newest first: times usually fall strictly going back, and then need no sorting.
        if !times.windows(2).all(|w| w[0] >= w[1]) {
            times.sort_unstable_by(|a, b| b.cmp(a));
        }
        // The element at len / 2 of the ascending order.
        times.get(n - 1 - n / 2).copied().unwrap_or(0)
    }

    /// Drops the headers above `height` (the node's chain forked there).
    pub fn truncate(&mut self, height: u32) {
        let keep = usize::try_from(height)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        if keep >= self.headers.len() || keep == 0 {
            return;
        }
        self.headers.truncate(keep);
        self.hashes.truncate(keep);
        self.work = self
            .headers
            .iter()
            .fold(Work::ZERO, |w, h| w.saturating_add(work_of(h)));
    }

    /// Checks that `proof` ties `txid` to the verified header at its height and returns the
    /// transaction it proves.
    pub fn check_proof<'p>(
        &self,
        txid: &Txid,
        proof: &'p TxProof,
    ) -> Result<&'p Transaction, SpvError> {
        let bad = |why: String| SpvError::BadProof { txid: *txid, why };
        if proof.tx.txid() != *txid {
            return Err(bad("the transaction served has another txid".into()));
        }
        let ours = self.hash_at(proof.height).ok_or_else(|| {
            bad(format!(
                "height {} is above the verified chain ({})",
                proof.height,
                self.height()
            ))
        })?;
        if proof.header.block_hash() != ours {
            return Err(bad(format!(
                "its block at height {} is not the verified chain's",
                proof.height
            )));
        }
        if proof.branch.len() > 32 {
            return Err(bad("a merkle branch longer than 32".into()));
        }
        let root = root_from_branch(txid, proof.position as usize, &proof.branch);
        if root != proof.header.merkle_root {
            return Err(bad(
                "the merkle branch does not lead to the header's root".into()
            ));
        }
        Ok(&proof.tx)
    }

    /// The raw headers above the genesis, for a cache.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.headers
            .iter()
            .skip(1)
            .flat_map(encode_to_vec)
            .collect()
    }
}

fn work_of(h: &Header) -> Work {
    Target::from_compact(h.bits)
        .map(|t| t.work())
        .unwrap_or(Work::ZERO)
}

fn unix_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
        .unwrap_or(0)
}

/// Brings `chain` up to the node's tip, verifying every header. A node whose chain forked
/// from ours is followed from the fork when its chain has more work; one whose headers break
/// the rules is reported ([`SpvError::ForgedHeader`]).
pub async fn sync(node: &NodeClient, chain: &mut HeaderChain) -> Result<(), SyncError> {
    loop {
        let from = chain.height().saturating_add(1);
        let (headers, _tip) = node.headers(from, HEADERS_PER_CALL).await?;
        let Some(first) = headers.first() else {
            return Ok(());
        };
        if first.prev_blockhash != chain.tip() {
            fork(node, chain).await?;
            continue;
        }
        let n = headers.len();
        chain.extend(&headers, unix_now())?;
        if n < HEADERS_PER_CALL as usize {
            return Ok(());
        }
    }
}

/// The node's chain left ours: find the last common header, and follow the node's branch only
/// if, once verified, it has more work than ours.
async fn fork(node: &NodeClient, chain: &mut HeaderChain) -> Result<(), SyncError> {
    let ours = chain.clone();
    let mut back = 1u32;
    loop {
        let at = ours.height().saturating_sub(back);
        let (headers, _) = node.headers(at, 1).await?;
        let common = headers
            .first()
            .is_some_and(|h| Some(h.block_hash()) == ours.hash_at(at));
        if common || at == 0 {
            chain.truncate(at);
            break;
        }
        back = back.saturating_mul(2);
    }
    let mut theirs = chain.clone();
    loop {
        let from = theirs.height().saturating_add(1);
        let (headers, _) = node.headers(from, HEADERS_PER_CALL).await?;
        let n = headers.len();
        theirs.extend(&headers, unix_now())?;
        if n < HEADERS_PER_CALL as usize {
            break;
        }
    }
    if theirs.work() <= ours.work() {
        *chain = ours;
        return Err(SpvError::LessWork {
            ours: chain.height(),
            theirs: theirs.height(),
        }
        .into());
    }
    *chain = theirs;
    Ok(())
}

/// A sync that failed: the node, or the node's chain.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Spv(#[from] SpvError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(prev: &Header, time: u32) -> Header {
        let mut h = Header {
            version: 1,
            prev_blockhash: prev.block_hash(),
            merkle_root: Hash256::hash(&time.to_le_bytes()),
            time,
            bits: prev.bits,
            nonce: 0,
        };
        assert!(h.solve());
        h
    }

    fn headers(n: usize, times: impl Fn(usize) -> u32) -> Vec<Header> {
        let mut prev = Params::regtest().genesis_block().header;
        (0..n)
            .map(|i| {
                prev = next(&prev, times(i));
                prev
            })
            .collect()
    }

    #[test]
    fn a_valid_chain_extends_and_a_broken_one_stops_at_the_fault() {
        let g = Params::regtest().genesis_block().header.time;
        let hs = headers(30, |i| g + 1 + i as u32);
        let mut c = HeaderChain::new(Params::regtest());
        c.extend(&hs, u32::MAX).unwrap();
        assert_eq!(c.height(), 30);
        assert_eq!(c.tip(), hs[29].block_hash());
        assert_eq!(c.work_at(30), c.work());

        let mut bad = hs.clone();
        bad[10].prev_blockhash = BlockHash::ZERO;
        let mut c = HeaderChain::new(Params::regtest());
        let e = c.extend(&bad, u32::MAX).unwrap_err();
        assert!(
            matches!(e, SpvError::ForgedHeader { height: 11, .. }),
            "{e}"
        );
        assert_eq!(c.height(), 10, "the valid prefix is kept");

        // Other bits than the rules require.
        let mut c = HeaderChain::new(Params::regtest());
        let mut h = hs[0];
        h.bits = 0x1f00_ffff;
        assert!(h.solve());
        assert!(c.extend(&[h], u32::MAX).is_err());
    }

    #[test]
    fn the_median_time_rule_matches_consensus_with_times_out_of_order() {
        let g = Params::regtest().genesis_block().header.time;
        // Times that jump back and forth but stay above each median.
        let times = |i: usize| g + 100 + (i as u32 * 7 % 13) + i as u32 * 3;
        let hs = headers(40, times);
        let mut c = HeaderChain::new(Params::regtest());
        for h in &hs {
            let all: Vec<u32> = c.headers.iter().rev().take(11).map(|x| x.time).collect();
            assert_eq!(c.median_time_past(), median_time_past(&all));
            c.extend(std::slice::from_ref(h), u32::MAX).unwrap();
        }
        // A time at the median is refused.
        let mtp = c.median_time_past();
        let late = next(&hs[39], mtp);
        assert!(c.extend(&[late], u32::MAX).is_err());
    }

    #[test]
    fn a_proof_must_lead_to_the_verified_header() {
        let params = Params::regtest();
        let block = params.genesis_block();
        let c = HeaderChain::new(params);
        let tx = block.txdata[0].clone();
        let txid = tx.txid();
        let good = TxProof {
            tx: tx.clone(),
            height: 0,
            position: 0,
            header: block.header,
            branch: vec![],
        };
        assert!(c.check_proof(&txid, &good).is_ok());
        let mut wrong_branch = good.clone();
        wrong_branch.branch.push(Hash256::hash(b"x"));
        assert!(c.check_proof(&txid, &wrong_branch).is_err());
        let mut above = good.clone();
        above.height = 1;
        assert!(c.check_proof(&txid, &above).is_err());
        let mut other_header = good;
        other_header.header.nonce ^= 1;
        assert!(c.check_proof(&txid, &other_header).is_err());
    }
}
