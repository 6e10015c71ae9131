//! Fixed vectors from `tests/data/` (see its README): header hashes, genesis blocks, compact
//! targets and chain work, difficulty retargets and merkle roots.

use camel_core::block::Header;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::hash::{BlockHash, Txid};
use camel_core::merkle::merkle_root;
use camel_core::params::{Network, Params};
use camel_core::pow::{CompactError, Target, U256, check_proof_of_work, next_bits};
use camel_core::transaction::Transaction;

const HEADERS: &str = include_str!("data/headers.txt");
const MERKLE: &str = include_str!("data/merkle.txt");

/// The vectors of one kind, as their fields.
fn vectors<'a>(text: &'a str, kind: &str) -> Vec<Vec<&'a str>> {
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(' ').collect::<Vec<_>>())
        .filter(|f| f[0] == kind)
        .map(|f| f[1..].to_vec())
        .collect();
    assert!(!rows.is_empty(), "no {kind} vectors");
    rows
}

fn hex32(s: &str) -> [u8; 32] {
    hex::decode(s).unwrap().try_into().unwrap()
}

fn u256(s: &str) -> U256 {
    U256::from_be_bytes(hex32(s))
}

fn hex_u32(s: &str) -> u32 {
    u32::from_str_radix(s, 16).unwrap()
}

/// A hex number of up to 64 digits.
fn u256_from_short_hex(s: &str) -> U256 {
    u256(&format!("{s:0>64}"))
}

#[test]
fn header_hashes() {
    for v in vectors(HEADERS, "header") {
        let bytes = hex::decode(v[0]).unwrap();
        let header: Header = decode_from_slice(&bytes).unwrap();
        assert_eq!(encode_to_vec(&header), bytes);
        let hash: BlockHash = v[1].parse().unwrap();
        assert_eq!(header.block_hash(), hash, "{}", v[0]);
        assert_eq!(
            header.hash_with_midstate(&header.midstate(), header.nonce),
            hash
        );
        // Each is a real block: it meets its own target.
        let target = Target::from_compact(header.bits).unwrap();
        assert_eq!(check_proof_of_work(&hash, header.bits, target), Ok(()));
    }
}

#[test]
fn genesis_headers() {
    for v in vectors(HEADERS, "genesis") {
        let params = Params::new(v[0].parse::<Network>().unwrap());
        let genesis = params.genesis_block();
        assert_eq!(hex::encode(genesis.header.to_bytes()), v[1], "{}", v[0]);
        let hash: BlockHash = v[2].parse().unwrap();
        assert_eq!(genesis.block_hash(), hash);
        assert_eq!(params.genesis_hash, hash);
    }
    let cb = &vectors(HEADERS, "coinbase")[0];
    let tx: Transaction = decode_from_slice(&hex::decode(cb[0]).unwrap()).unwrap();
    assert_eq!(tx, Params::main().genesis_coinbase());
    assert_eq!(tx.txid(), cb[1].parse::<Txid>().unwrap());
}

#[test]
fn compact_targets_and_work() {
    for v in vectors(HEADERS, "bits") {
        let bits = hex_u32(v[0]);
        let target = Target::from_compact(bits).unwrap();
        assert_eq!(target.to_u256(), u256(v[1]), "{}", v[0]);
        assert_eq!(target.to_compact(), bits);
        assert_eq!(
            target.work().to_u256(),
            u256_from_short_hex(v[2]),
            "{}",
            v[0]
        );
    }
    for v in vectors(HEADERS, "badbits") {
        let bits = hex_u32(v[0]);
        let expected = match v[1] {
            "negative" => CompactError::Negative(bits),
            "overflow" => CompactError::Overflow(bits),
            other => panic!("unknown badbits kind {other}"),
        };
        assert_eq!(Target::from_compact(bits), Err(expected));
    }
}

#[test]
fn retargets() {
    for v in vectors(HEADERS, "retarget") {
        let mut params = Params::main();
        params.target_spacing = v[0].parse().unwrap();
        params.retarget_interval = v[1].parse().unwrap();
        params.pow_limit = Target::from_u256(u256(v[2]));
        let first: u32 = v[4].parse().unwrap();
        let last: u32 = v[5].parse().unwrap();
        assert_eq!(
            next_bits(&params, hex_u32(v[3]), first, last),
            Ok(hex_u32(v[6])),
            "{v:?}"
        );
    }
}

#[test]
fn merkle_roots() {
    for v in vectors(MERKLE, "merkle") {
        let txids: Vec<Txid> = v[1..].iter().map(|s| s.parse().unwrap()).collect();
        let (root, mutated) = merkle_root(&txids);
        let mut display = root.to_byte_array();
        display.reverse();
        assert_eq!(hex::encode(display), v[0]);
        assert!(!mutated);
    }
}
