//! Proof-of-work mining with the SHA-256d midstate: the first 64 header bytes are hashed
//! once per merkle root, and each nonce costs two compressions instead of three.
//!
//! Each thread owns a disjoint extranonce sequence (`thread`, `thread + threads`, …): the
//! extranonce sits in the coinbase scriptSig after the height push, so a new extranonce
//! gives a new merkle root and a fresh 2^32 nonce space. Threads look at the stop flag
//! every [`NONCE_CHUNK`] nonces.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use camel_core::Amount;
use camel_core::block::{Block, Header, build_coinbase};
use camel_core::hash::{BlockHash, Hash256};
use camel_core::merkle::merkle_root_of;
use camel_core::pow::Target;
use camel_core::script::Script;
use camel_core::transaction::{Transaction, TxOut};

/// Nonces tried between two looks at the stop flag (about 30 ms on one core).
pub const NONCE_CHUNK: u32 = 1 << 18;

/// Everything a block needs except its coinbase extranonce and nonce.
#[derive(Debug, Clone)]
pub struct WorkUnit {
    pub height: u32,
    pub prev: BlockHash,
    pub bits: u32,
    pub time: u32,
    pub version: i32,
    /// The block's other transactions, in order.
    pub txs: Vec<Transaction>,
    /// Subsidy plus fees.
    pub reward: Amount,
    pub payout: Script,
}

impl WorkUnit {
    /// The coinbase carrying `extranonce` (8 bytes, little-endian, pushed after the height).
    pub fn coinbase(&self, extranonce: u64) -> Transaction {
        let outputs = vec![TxOut {
            value: self.reward,
            script_pubkey: self.payout.clone(),
        }];
        // An 8-byte push after a height push of at most 6 bytes stays far below 100 bytes.
        build_coinbase(self.height, &extranonce.to_le_bytes(), outputs.clone()).unwrap_or(
            Transaction {
                version: 1,
                inputs: vec![],
                outputs,
                lock_time: 0,
                job_id: camel_core::JobId::ZERO,
            },
        )
    }

    fn header(&self, merkle_root: Hash256) -> Header {
        Header {
            version: self.version,
            prev_blockhash: self.prev,
            merkle_root,
            time: self.time,
            bits: self.bits,
            nonce: 0,
        }
    }
}

/// Mines `work` on `threads` threads until a block is found or `stop` is set; `hashes`
/// counts the nonces tried. Returns the block found, if any.
pub fn mine(
    work: &WorkUnit,
    threads: usize,
    stop: &AtomicBool,
    hashes: &AtomicU64,
) -> Option<Block> {
    mine_nonces(work, threads, stop, hashes, u32::MAX)
}

/// [`mine`] with nonces `0..=last_nonce` per extranonce (tests shrink the nonce space).
fn mine_nonces(
    work: &WorkUnit,
    threads: usize,
    stop: &AtomicBool,
    hashes: &AtomicU64,
    last_nonce: u32,
) -> Option<Block> {
    let target = Target::from_compact(work.bits).ok()?;
    let threads = threads.max(1);
    let txids: Vec<[u8; 32]> = work.txs.iter().map(|t| t.txid().to_byte_array()).collect();
    let found = AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (txids, found, target) = (&txids, &found, &target);
                s.spawn(move || {
                    let mut extranonce = t as u64;
                    loop {
                        let coinbase = work.coinbase(extranonce);
                        let leaves = std::iter::once(coinbase.txid().to_byte_array())
                            .chain(txids.iter().copied());
                        let (root, _) = merkle_root_of(leaves);
                        let header = work.header(root);
                        let mid = header.midstate();
                        let mut start = 0u32;
                        loop {
                            if stop.load(Ordering::Relaxed) || found.load(Ordering::Relaxed) {
                                return None;
                            }
                            let end = start.saturating_add(NONCE_CHUNK - 1).min(last_nonce);
                            let hit = mid.find_nonce(target, start, end);
                            let tried = match hit {
                                Some((n, _)) => n.wrapping_sub(start).saturating_add(1),
                                None => end.wrapping_sub(start).saturating_add(1),
                            };
                            hashes.fetch_add(u64::from(tried), Ordering::Relaxed);
                            if let Some((nonce, _)) = hit {
                                found.store(true, Ordering::Relaxed);
                                let mut txdata = Vec::with_capacity(work.txs.len() + 1);
                                txdata.push(coinbase);
                                txdata.extend(work.txs.iter().cloned());
                                return Some(Block {
                                    header: Header { nonce, ..header },
                                    txdata,
                                });
                            }
                            if end == last_nonce {
                                break;
                            }
                            start = end + 1;
                        }
                        extranonce = extranonce.wrapping_add(threads as u64);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().ok().flatten())
            .next()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use camel_core::params::Params;
    use camel_core::pow::check_proof_of_work;
    use camel_core::validation::check_block;

    fn unit(bits: u32) -> WorkUnit {
        let p = Params::regtest();
        WorkUnit {
            height: 1,
            prev: p.genesis_hash,
            bits,
            time: p.genesis_time + 60,
            version: 1,
            txs: vec![],
            reward: p.block_subsidy(1),
            payout: Script::new(vec![0x51]),
        }
    }

    #[test]
    fn mines_a_valid_block() {
        let p = Params::regtest();
        let w = unit(p.pow_limit_bits);
        let (stop, hashes) = (AtomicBool::new(false), AtomicU64::new(0));
        let b = mine(&w, 2, &stop, &hashes).unwrap();
        check_block(&b, &p).unwrap();
        assert_eq!(b.txdata[0].outputs[0].value, p.block_subsidy(1));
        assert!(hashes.load(Ordering::Relaxed) >= 1);
    }

    #[test]
    fn exhausting_the_nonce_space_moves_to_the_next_extranonce() {
        // Main's limit needs about 65,536 hashes; with 1,024 nonces per extranonce one
        // thread must go through several extranonces. Inputs are fixed, so this is
        // deterministic.
        let w = unit(Params::main().pow_limit_bits);
        let (stop, hashes) = (AtomicBool::new(false), AtomicU64::new(0));
        let b = mine_nonces(&w, 1, &stop, &hashes, 1023).unwrap();
        assert!(b.header.nonce <= 1023);
        check_proof_of_work(&b.block_hash(), b.header.bits, Params::main().pow_limit).unwrap();
        let script = b.txdata[0].inputs[0].script_sig.as_bytes();
        // Height push (OP_1), then a push of 8 bytes: the extranonce.
        assert_eq!(&script[..2], &[0x51, 8]);
        let extranonce = u64::from_le_bytes(script[2..10].try_into().unwrap());
        assert!(
            extranonce > 0,
            "found on the first extranonce; change the test's time"
        );
        assert!(hashes.load(Ordering::Relaxed) > 1024 * extranonce);
        assert_ne!(w.coinbase(0).txid(), w.coinbase(1).txid());
    }

    #[test]
    fn stop_flag_ends_mining() {
        // bits for a target of 1: no hash will meet it in this test's lifetime.
        let w = unit(0x0300_0001);
        let stop = AtomicBool::new(true);
        let hashes = AtomicU64::new(0);
        assert!(mine(&w, 2, &stop, &hashes).is_none());
    }
}
