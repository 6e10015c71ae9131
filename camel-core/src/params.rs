//! Network parameters (main, test, regtest), the block subsidy, and each network's genesis
//! block. A `Params` value is passed explicitly wherever a rule depends on the network.

use core::fmt;
use core::str::FromStr;

use crate::amount::Amount;
use crate::block::{Block, Header, MAX_BLOCK_SIZE, build_coinbase, push_data};
use crate::hash::{BlockHash, Hash256};
use crate::pow::{Target, U256};
use crate::script::{Script, opcodes};
use crate::transaction::{Transaction, TxOut};

/// Which chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    Main,
    Test,
    Regtest,
}

impl Network {
    pub const ALL: [Self; 3] = [Self::Main, Self::Test, Self::Regtest];

    /// `main`, `test` or `regtest`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Test => "test",
            Self::Regtest => "regtest",
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown network name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNetwork(pub String);

impl fmt::Display for UnknownNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown network {:?}; expected main, test or regtest",
            self.0
        )
    }
}

impl std::error::Error for UnknownNetwork {}

impl FromStr for Network {
    type Err = UnknownNetwork;
    fn from_str(s: &str) -> Result<Self, UnknownNetwork> {
        Self::ALL
            .into_iter()
            .find(|n| n.name() == s)
            .ok_or_else(|| UnknownNetwork(s.to_owned()))
    }
}

/// The subsidy of the first halving period.
pub const INITIAL_SUBSIDY: Amount = match Amount::from_coins(50) {
    Some(a) => a,
    None => Amount::ZERO,
};

/// The genesis coinbase's scriptSig message (after the height push).
pub const GENESIS_MESSAGE: &[u8] =
    b"The Camelid Times 26/Nov/2026 Proof of work meets proof of inference";

/// Consensus and network parameters of one chain.
///
/// Construct with [`Params::new`] (or `main`/`test`/`regtest`); fields are public to read,
/// and changing one makes a different, incompatible chain (tests do so deliberately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    pub network: Network,
    /// Four bytes that open every P2P message, distinct per network.
    pub magic: [u8; 4],
    /// Base58Check version byte of pay-to-public-key-hash addresses.
    pub address_version: u8,
    /// The easiest target a block may have.
    pub pow_limit: Target,
    /// `pow_limit` in compact form; the genesis block's `bits`.
    pub pow_limit_bits: u32,
    /// Whether difficulty stays at the genesis `bits` forever (regtest).
    pub no_retargeting: bool,
    /// Intended seconds between blocks.
    pub target_spacing: u32,
    /// Blocks per difficulty period.
    pub retarget_interval: u32,
    /// Blocks per subsidy halving.
    pub subsidy_halving_interval: u32,
    /// Confirmations before a coinbase output may be spent: a coinbase at height `h` is
    /// spendable by a transaction in a block at height `>= h + coinbase_maturity`.
    pub coinbase_maturity: u32,
    /// A job payment is minable no sooner than this many blocks after the job's creation.
    pub job_payment_delay: u32,
    /// Blocks after the payment delay during which a fraud proof may be mined.
    pub dispute_window: u32,
    /// Largest encoded block.
    pub max_block_size: usize,
    /// How far (seconds) a block's time may run ahead of the node's clock.
    pub max_future_block_time: u32,
    /// Number of previous blocks whose median time a block's time must exceed.
    pub median_time_span: usize,
    /// Genesis header time.
    pub genesis_time: u32,
    /// Genesis header nonce (found by mining, see the tests).
    pub genesis_nonce: u32,
    /// Hash of the genesis header; tests check it against [`Params::genesis_block`].
    pub genesis_hash: BlockHash,
}

/// `0x00ffff · 256^(exponent − 3)`, the value of compact bits `exponent ‖ 00ffff`.
fn ffff_target(exponent: u32) -> Target {
    Target::from_u256(
        U256::from_u64(0xffff).shl_bits(8u32.saturating_mul(exponent.saturating_sub(3))),
    )
}

impl Params {
    pub fn new(network: Network) -> Self {
        match network {
            Network::Main => Self::main(),
            Network::Test => Self::test(),
            Network::Regtest => Self::regtest(),
        }
    }

    /// The main network: compact limit 0x1f00ffff (about 65,536 hashes per block at the
    /// start), 60-second blocks, retarget every 2016 blocks, halving every 1,000,000.
    pub fn main() -> Self {
        Self {
            network: Network::Main,
            magic: [0xca, 0x3e, 0x11, 0xd1],
            address_version: 0x00,
            pow_limit: ffff_target(0x1f),
            pow_limit_bits: 0x1f00_ffff,
            no_retargeting: false,
            target_spacing: 60,
            retarget_interval: 2016,
            subsidy_halving_interval: 1_000_000,
            coinbase_maturity: 100,
            job_payment_delay: 10,
            dispute_window: 15,
            max_block_size: MAX_BLOCK_SIZE,
            max_future_block_time: 2 * 60 * 60,
            median_time_span: 11,
            genesis_time: 1_795_651_200, // 2026-11-26T00:00:00Z
            genesis_nonce: 26952,
            // Displayed: 000041b5eeea295a011b5e676d85fe48dcf1c583635b6489ae067602c29807fb
            genesis_hash: BlockHash::from_byte_array([
                0xfb, 0x07, 0x98, 0xc2, 0x02, 0x76, 0x06, 0xae, 0x89, 0x64, 0x5b, 0x63, 0x83, 0xc5,
                0xf1, 0xdc, 0x48, 0xfe, 0x85, 0x6d, 0x67, 0x5e, 0x1b, 0x01, 0x5a, 0x29, 0xea, 0xee,
                0xb5, 0x41, 0x00, 0x00,
            ]),
        }
    }

    /// The public test network: main's rules, its own magic, address version 0x6f and genesis.
    pub fn test() -> Self {
        Self {
            network: Network::Test,
            magic: [0x0b, 0xca, 0x3e, 0x17],
            address_version: 0x6f,
            genesis_time: 1_795_651_201,
            genesis_nonce: 99286,
            // Displayed: 000062e3dcec531d889ed2634edc2ce6b9656eab5ea3df3fcf79755e3795607a
            genesis_hash: BlockHash::from_byte_array([
                0x7a, 0x60, 0x95, 0x37, 0x5e, 0x75, 0x79, 0xcf, 0x3f, 0xdf, 0xa3, 0x5e, 0xab, 0x6e,
                0x65, 0xb9, 0xe6, 0x2c, 0xdc, 0x4e, 0x63, 0xd2, 0x9e, 0x88, 0x1d, 0x53, 0xec, 0xdc,
                0xe3, 0x62, 0x00, 0x00,
            ]),
            ..Self::main()
        }
    }

    /// Local testing: trivial proof of work (compact limit 0x207fffff, about 2 hashes per
    /// block), no retargeting, halving every 150 blocks so it can be tested.
    pub fn regtest() -> Self {
        Self {
            network: Network::Regtest,
            magic: [0xfa, 0xbf, 0xca, 0x3e],
            address_version: 0x6f,
            pow_limit: Target::from_u256(U256::from_u64(0x7f_ffff).shl_bits(8 * 29)),
            pow_limit_bits: 0x207f_ffff,
            no_retargeting: true,
            subsidy_halving_interval: 150,
            genesis_time: 1_795_651_202,
            genesis_nonce: 1,
            // Displayed: 603de4cacaacd9fd758360654159e6d3bfcdb86f36650ea83c7b2c8818a8d749
            genesis_hash: BlockHash::from_byte_array([
                0x49, 0xd7, 0xa8, 0x18, 0x88, 0x2c, 0x7b, 0x3c, 0xa8, 0x0e, 0x65, 0x36, 0x6f, 0xb8,
                0xcd, 0xbf, 0xd3, 0xe6, 0x59, 0x41, 0x65, 0x60, 0x83, 0x75, 0xfd, 0xd9, 0xac, 0xca,
                0xca, 0xe4, 0x3d, 0x60,
            ]),
            ..Self::main()
        }
    }

    /// The network's name: `main`, `test` or `regtest`.
    pub fn name(&self) -> &'static str {
        self.network.name()
    }

    /// The same parameters with other job windows (for regtest and tests: on main or test
    /// this makes an incompatible chain).
    #[must_use]
    pub fn with_job_windows(mut self, job_payment_delay: u32, dispute_window: u32) -> Self {
        self.job_payment_delay = job_payment_delay;
        self.dispute_window = dispute_window;
        self
    }

    /// The subsidy a block at `height` may claim: 50 coins, halved (rounding down, in base
    /// units) every `subsidy_halving_interval` blocks; zero from the 64th halving on.
    pub fn block_subsidy(&self, height: u32) -> Amount {
        let halvings = height
            .checked_div(self.subsidy_halving_interval)
            .unwrap_or(0);
        if halvings >= 64 {
            return Amount::ZERO;
        }
        // Shifting the initial subsidy right never increases it, so it stays in range.
        Amount::from_base(INITIAL_SUBSIDY.to_base() >> halvings).unwrap_or(Amount::ZERO)
    }

    /// The genesis coinbase: height push `OP_0`, then a push of [`GENESIS_MESSAGE`]; one
    /// output of 50 coins to `OP_RETURN <"camelidcoin">`, which no one can spend.
    pub fn genesis_coinbase(&self) -> Transaction {
        let mut script_pubkey = vec![opcodes::OP_RETURN];
        script_pubkey.extend_from_slice(&push_data(b"camelidcoin").unwrap_or_default());
        let outputs = vec![TxOut {
            value: INITIAL_SUBSIDY,
            script_pubkey: Script::new(script_pubkey),
        }];
        // The message is 68 bytes: the script is 1 + 1 + 68 = 70 bytes, within the limit.
        build_coinbase(0, GENESIS_MESSAGE, outputs.clone()).unwrap_or(Transaction {
            version: 1,
            inputs: vec![],
            outputs,
            lock_time: 0,
            job_id: crate::hash::JobId::ZERO,
        })
    }

    /// The genesis block: version 1, zero previous hash, `bits = pow_limit_bits`.
    pub fn genesis_block(&self) -> Block {
        let coinbase = self.genesis_coinbase();
        let header = Header {
            version: 1,
            prev_blockhash: BlockHash::ZERO,
            merkle_root: Hash256::from_byte_array(coinbase.txid().to_byte_array()),
            time: self.genesis_time,
            bits: self.pow_limit_bits,
            nonce: self.genesis_nonce,
        };
        Block {
            header,
            txdata: vec![coinbase],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::COIN;
    use crate::pow::check_proof_of_work;

    #[test]
    fn pow_limits_match_their_bits() {
        for net in Network::ALL {
            let p = Params::new(net);
            assert_eq!(
                Target::from_compact(p.pow_limit_bits),
                Ok(p.pow_limit),
                "{net}"
            );
            assert_eq!(p.pow_limit.to_compact(), p.pow_limit_bits, "{net}");
            assert_eq!(net.name().parse::<Network>(), Ok(net));
        }
        assert!("mainnet".parse::<Network>().is_err());
    }

    #[test]
    fn genesis_blocks() {
        for net in Network::ALL {
            let p = Params::new(net);
            let g = p.genesis_block();
            assert_eq!(
                g.block_hash(),
                p.genesis_hash,
                "{net}: hard-coded genesis hash"
            );
            assert_eq!(
                check_proof_of_work(&g.block_hash(), g.header.bits, p.pow_limit),
                Ok(()),
                "{net}"
            );
            assert_eq!(g.compute_merkle_root(), (g.header.merkle_root, false));
            assert_eq!(crate::block::coinbase_height(&g.txdata[0]), Some(0));
            assert_eq!(g.txdata[0].total_output(), Some(p.block_subsidy(0)));
        }
        let hashes: std::collections::HashSet<_> = Network::ALL
            .iter()
            .map(|n| Params::new(*n).genesis_hash)
            .collect();
        assert_eq!(hashes.len(), 3);
    }

    #[test]
    fn subsidy_schedule() {
        let p = Params::main();
        let coins = |c: u64| Amount::from_base(c).unwrap();
        assert_eq!(p.block_subsidy(0), coins(50 * COIN));
        assert_eq!(p.block_subsidy(999_999), coins(50 * COIN));
        assert_eq!(p.block_subsidy(1_000_000), coins(25 * COIN));
        assert_eq!(p.block_subsidy(2_000_000), coins(1_250_000_000));
        assert_eq!(p.block_subsidy(32_999_999), coins(1)); // 5e9 >> 32 = 1
        assert_eq!(p.block_subsidy(33_000_000), Amount::ZERO);
        assert_eq!(p.block_subsidy(63_999_999), Amount::ZERO);
        assert_eq!(p.block_subsidy(u32::MAX), Amount::ZERO);
        let r = Params::regtest();
        assert_eq!(r.block_subsidy(149), coins(50 * COIN));
        assert_eq!(r.block_subsidy(150), coins(25 * COIN));
        // 64 halvings and beyond: zero (the shift would otherwise wrap).
        assert_eq!(r.block_subsidy(150 * 64 - 1), Amount::ZERO);
        assert_eq!(r.block_subsidy(150 * 64), Amount::ZERO);
        // The total supply stays within MAX_MONEY.
        let total: u64 = (0..64u32)
            .map(|h| p.block_subsidy(h * 1_000_000).to_base() * 1_000_000)
            .sum();
        assert!(total <= crate::amount::MAX_MONEY, "{total}");
        assert_eq!(total, 9_999_999_989_000_000);
    }

    #[test]
    fn windows_and_builder() {
        for net in Network::ALL {
            let p = Params::new(net);
            assert_eq!(
                (p.job_payment_delay, p.dispute_window, p.coinbase_maturity),
                (10, 15, 100)
            );
            assert_eq!(p.target_spacing, 60);
            assert_eq!(p.max_future_block_time, 7200);
            assert_eq!(p.median_time_span, 11);
        }
        let p = Params::regtest().with_job_windows(2, 3);
        assert_eq!((p.job_payment_delay, p.dispute_window), (2, 3));
        assert_eq!(Params::main().address_version, 0x00);
        assert_eq!(Params::test().address_version, 0x6f);
        assert_eq!(Params::regtest().address_version, 0x6f);
    }
}
