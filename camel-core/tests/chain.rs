//! A short chain built with the public API the node uses: coinbases, merkle roots, mining
//! with the midstate, the context-free and contextual checks, retargeting and chain work.

use camel_core::amount::Amount;
use camel_core::block::{Block, Header, build_coinbase, coinbase_height};
use camel_core::hash::BlockHash;
use camel_core::params::Params;
use camel_core::pow::{Target, Work, is_retarget_height, required_bits};
use camel_core::script::Script;
use camel_core::transaction::TxOut;
use camel_core::validation::{
    check_block, check_block_contextual, check_coinbase_amount, check_header_contextual,
    median_time_past,
};

/// A chain held in memory: blocks by height.
struct Chain {
    params: Params,
    blocks: Vec<Block>,
    work: Work,
}

impl Chain {
    fn new(params: Params) -> Self {
        let genesis = params.genesis_block();
        let work = genesis.header.work();
        Self {
            params,
            blocks: vec![genesis],
            work,
        }
    }

    fn tip(&self) -> &Header {
        &self.blocks.last().unwrap().header
    }

    fn height(&self) -> u32 {
        self.blocks.len() as u32 - 1
    }

    fn mtp(&self) -> u32 {
        let n = self.params.median_time_span;
        let times: Vec<u32> = self
            .blocks
            .iter()
            .rev()
            .take(n)
            .map(|b| b.header.time)
            .collect();
        median_time_past(&times)
    }

    fn required_bits(&self) -> u32 {
        let height = self.height() + 1;
        let tip = self.tip();
        required_bits(&self.params, height, tip.bits, tip.time, |h| {
            self.blocks.get(h as usize).map(|b| b.header.time)
        })
        .unwrap()
    }

    /// Mines the next block at `time`, then validates and appends it as a node would.
    fn mine(&mut self, time: u32) -> BlockHash {
        let height = self.height() + 1;
        let pay = TxOut {
            value: self.params.block_subsidy(height),
            script_pubkey: Script::new(vec![0x51]),
        };
        let coinbase = build_coinbase(height, b"miner", vec![pay]).unwrap();
        let mut block = Block {
            header: Header {
                version: 1,
                prev_blockhash: self.tip().block_hash(),
                merkle_root: Default::default(),
                time,
                bits: self.required_bits(),
                nonce: 0,
            },
            txdata: vec![coinbase],
        };
        assert!(block.solve());
        let hash = block.block_hash();

        check_block(&block, &self.params).unwrap();
        check_header_contextual(
            &block.header,
            self.required_bits(),
            self.mtp(),
            time,
            &self.params,
        )
        .unwrap();
        check_block_contextual(&block, height).unwrap();
        check_coinbase_amount(&block, height, Amount::ZERO, &self.params).unwrap();
        assert_eq!(coinbase_height(&block.txdata[0]), Some(height));
        self.work = self.work.checked_add(block.header.work()).unwrap();
        self.blocks.push(block);
        hash
    }
}

#[test]
fn regtest_chain_keeps_difficulty_and_halves_subsidy() {
    let mut chain = Chain::new(Params::regtest());
    let mut time = chain.params.genesis_time;
    for _ in 0..160 {
        time += 1; // far faster than 60 s: regtest never retargets
        chain.mine(time);
    }
    assert!(chain.blocks.iter().all(|b| b.header.bits == 0x207f_ffff));
    assert_eq!(chain.work.to_u256().low_u64(), 161 * 2);
    let paid = |h: usize| chain.blocks[h].txdata[0].outputs[0].value.to_base();
    assert_eq!(paid(149), 5_000_000_000);
    assert_eq!(paid(150), 2_500_000_000);
}

#[test]
fn fast_blocks_raise_difficulty_at_each_retarget() {
    // Regtest proof of work with retargeting every 10 blocks.
    let mut params = Params::regtest();
    params.no_retargeting = false;
    params.retarget_interval = 10;
    let limit = params.pow_limit;
    let mut chain = Chain::new(params);
    let mut time = chain.params.genesis_time;
    for _ in 0..30 {
        time += 15; // a quarter of the 60 s spacing
        chain.mine(time);
    }
    let bits = |h: usize| chain.blocks[h].header.bits;
    let target = |h: usize| Target::from_compact(bits(h)).unwrap().to_u256();
    // Unchanged inside a period.
    assert!((1..10).all(|h| bits(h) == bits(0)));
    assert!((11..20).all(|h| bits(h) == bits(10)));
    assert!(is_retarget_height(&chain.params, 10));
    // The compact form keeps the top 23 bits: every expectation is rounded through it.
    let round = |v| {
        Target::from_compact(Target::from_u256(v).to_compact())
            .unwrap()
            .to_u256()
    };
    // First period: 9 gaps of 15 s (135 s) below the 150 s floor of 600 / 4: clamped, target / 4.
    assert_eq!(target(10), round(limit.to_u256().div_rem_u64(4).unwrap().0));
    // Second period: 10 gaps of 15 s = 150 s, exactly the floor: target / 4 again.
    assert_eq!(target(20), round(target(10).div_rem_u64(4).unwrap().0));
    assert!(target(20) < target(10));
    assert!(target(30) < target(20));
    // More work per block after each retarget.
    assert!(chain.blocks[20].header.work() > chain.blocks[10].header.work());
    assert!(chain.blocks[10].header.work() > chain.blocks[9].header.work());
}

#[test]
fn on_schedule_blocks_keep_difficulty_with_overlapping_spans() {
    let mut params = Params::regtest();
    params.no_retargeting = false;
    params.retarget_interval = 10;
    let limit = params.pow_limit.to_u256();
    let mut chain = Chain::new(params);
    let mut time = chain.params.genesis_time;
    for _ in 0..20 {
        time += 60; // exactly on schedule
        chain.mine(time);
    }
    let target = |h: usize| {
        Target::from_compact(chain.blocks[h].header.bits)
            .unwrap()
            .to_u256()
    };
    let round = |v| {
        Target::from_compact(Target::from_u256(v).to_compact())
            .unwrap()
            .to_u256()
    };
    // The first span runs from the genesis: 9 gaps, 540 of 600 s, so the target shrinks to 0.9.
    assert_eq!(target(10), round(limit.mul_div_u64(540, 600).unwrap()));
    // The second runs from block 9 to block 19: 10 gaps, 600 s, no change. (Non-overlapping
    // spans, as in Bitcoin, would measure 540 s again and keep shrinking the target.)
    assert_eq!(target(20), target(10));
}
