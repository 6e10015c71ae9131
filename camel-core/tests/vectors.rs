//! Fixed vectors from `tests/data/` (see its README).

use camel_core::Amount;
use camel_core::address::Address;
use camel_core::encode::{decode_from_slice, encode_to_vec};
use camel_core::hash::{from_hex, to_hex};
use camel_core::keys::PrivateKey;
use camel_core::script::Script;
use camel_core::sighash::signature_hash;
use camel_core::transaction::Transaction;

fn lines(data: &str) -> impl Iterator<Item = Vec<&str>> {
    data.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
}

#[test]
fn addresses_match_bitcoin() {
    let mut n = 0;
    for f in lines(include_str!("data/addresses.txt")) {
        let key = PrivateKey::from_slice(&from_hex(f[0]).unwrap()).unwrap();
        let addr = Address::p2pkh(&key.public_key(), 0x00);
        assert_eq!(addr.to_string(), f[1], "private key {}", f[0]);
        assert_eq!(Address::parse_for(f[1], 0x00).unwrap(), addr);
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn sighash_vectors() {
    let mut n = 0;
    for f in lines(include_str!("data/sighash.txt")) {
        let tx_bytes = from_hex(f[0]).unwrap();
        let tx: Transaction = decode_from_slice(&tx_bytes).unwrap();
        assert_eq!(encode_to_vec(&tx), tx_bytes);
        assert_eq!(tx.txid().to_string(), f[1], "txid");
        let index: usize = f[2].parse().unwrap();
        let code = Script::new(from_hex(f[3]).unwrap());
        let value = Amount::from_base(f[4].parse().unwrap()).unwrap();
        let got = signature_hash(&tx, index, &code, value).unwrap();
        assert_eq!(to_hex(got.as_bytes()), f[5], "sighash of input {index}");
        n += 1;
    }
    assert!(n >= 3);
}
