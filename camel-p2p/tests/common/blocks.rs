//! Blocks and transactions for network tests: a mined regtest block on any parent, and a
//! transaction that passes the context-free checks. Also included by camel-node's
//! process-level misbehaviour test.
#![allow(dead_code)]

use camel_core::block::{Block, Header, build_coinbase};
use camel_core::hash::Hash256;
use camel_core::params::Params;
use camel_core::script::Script;
use camel_core::transaction::{OutPoint, Transaction, TxIn, TxOut};
use camel_core::{JobId, Txid};

/// A valid regtest block on `parent` at `height`, with `extra` transactions after the
/// coinbase.
pub fn mine_on(
    params: &Params,
    parent: &Header,
    height: u32,
    tag: &[u8],
    extra: Vec<Transaction>,
) -> Block {
    let coinbase = build_coinbase(
        height,
        tag,
        vec![TxOut {
            value: params.block_subsidy(height),
            script_pubkey: Script::new(vec![0x51]),
        }],
    )
    .unwrap();
    let mut txdata = vec![coinbase];
    txdata.extend(extra);
    let mut block = Block {
        header: Header {
            version: 1,
            prev_blockhash: parent.block_hash(),
            merkle_root: Hash256::ZERO,
            time: parent.time + 1,
            bits: parent.bits,
            nonce: 0,
        },
        txdata,
    };
    solve(&mut block);
    block
}

/// Sets the merkle root and finds a nonce that meets the block's target.
pub fn solve(block: &mut Block) {
    assert!(block.solve());
}

/// A transaction that passes the context-free checks (it spends an output no one has, so
/// no mempool takes it).
pub fn test_tx(n: u8) -> Transaction {
    Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::new(Txid::from_byte_array([n; 32]), 0),
            script_sig: Script::new(vec![0x51]),
            sequence: 0xffff_ffff,
        }],
        outputs: vec![TxOut {
            value: camel_core::Amount::from_base(1000).unwrap(),
            script_pubkey: Script::new(vec![0x51]),
        }],
        lock_time: 0,
        job_id: JobId::ZERO,
    }
}
