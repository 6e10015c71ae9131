//! The unspent-output set as consensus sees it: [`Coin`]s looked up through a [`UtxoView`],
//! their canonical encoding, and the UTXO-set hash.
//!
//! A coin is an unspent output with the height of the block that created it and whether that
//! was a coinbase (coinbase outputs mature after `params.coinbase_maturity` blocks).
//!
//! Coin encoding: `height: u32 ‖ is_coinbase: u8 (0 or 1) ‖ TxOut` (value `u64` ‖ var_bytes
//! scriptPubKey). A UTXO-set entry ([`utxo_entry_bytes`]) is the 36-byte encoded outpoint
//! (`txid ‖ vout: u32 LE`) followed by the encoded coin. The **UTXO-set hash** is the single
//! SHA-256 of the concatenation of every entry, entries in ascending bytewise order of their
//! encoded outpoint ([`UtxoSetHasher`], [`utxo_set_hash`]); the empty set hashes to SHA-256 of
//! the empty string. Since every entry is self-delimiting, the concatenation is unambiguous.

use core::fmt;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::encode::{Decodable, DecodeError, Encodable, Reader, encode_to_vec};
use crate::hash::Hash256;
use crate::transaction::{OutPoint, TxOut};

/// An unspent output and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    pub output: TxOut,
    /// Height of the block whose transaction created the output.
    pub height: u32,
    /// Whether that transaction was the block's coinbase.
    pub is_coinbase: bool,
}

impl Coin {
    /// The first height at which a transaction may spend this coin: its own height for an
    /// ordinary output, `height + maturity` for a coinbase output (`None` past `u32::MAX`).
    pub fn spendable_from(&self, coinbase_maturity: u32) -> Option<u32> {
        if self.is_coinbase {
            self.height.checked_add(coinbase_maturity)
        } else {
            Some(self.height)
        }
    }
}

impl Encodable for Coin {
    fn encode(&self, out: &mut Vec<u8>) {
        self.height.encode(out);
        u8::from(self.is_coinbase).encode(out);
        self.output.encode(out);
    }
    fn encoded_len(&self) -> usize {
        5usize.saturating_add(self.output.encoded_len())
    }
}

impl Decodable for Coin {
    const MIN_ENCODED_SIZE: usize = 4 + 1 + TxOut::MIN_ENCODED_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let height = r.read_u32()?;
        let is_coinbase = match r.read_u8()? {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::Invalid("coinbase flag (must be 0 or 1)")),
        };
        let output = TxOut::decode(r)?;
        Ok(Self {
            output,
            height,
            is_coinbase,
        })
    }
}

/// Read access to a UTXO set: the node's store, an in-memory map, or a block's overlay.
pub trait UtxoView {
    /// The unspent coin at `outpoint`, `None` if it does not exist or is spent.
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin>;
}

impl<S: core::hash::BuildHasher> UtxoView for HashMap<OutPoint, Coin, S> {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        self.get(outpoint).cloned()
    }
}

impl<V: UtxoView + ?Sized> UtxoView for &V {
    fn coin(&self, outpoint: &OutPoint) -> Option<Coin> {
        (**self).coin(outpoint)
    }
}

/// The canonical bytes of one UTXO-set entry: encoded outpoint (36 bytes) ‖ encoded coin.
pub fn utxo_entry_bytes(outpoint: &OutPoint, coin: &Coin) -> Vec<u8> {
    let mut out = Vec::with_capacity(36usize.saturating_add(coin.encoded_len()));
    outpoint.encode(&mut out);
    coin.encode(&mut out);
    out
}

/// Why a [`UtxoSetHasher`] refused an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsortedEntry {
    /// The outpoint that was not after the previous one.
    pub outpoint: OutPoint,
}

impl fmt::Display for UnsortedEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "utxo entry {}:{} is not after the previous entry in encoded-outpoint order",
            self.outpoint.txid, self.outpoint.vout
        )
    }
}

impl std::error::Error for UnsortedEntry {}

/// Computes the UTXO-set hash incrementally from entries given in ascending order of their
/// encoded outpoint (the order a key-value store keyed by encoded outpoint iterates in).
#[derive(Debug, Clone, Default)]
pub struct UtxoSetHasher {
    hasher: Sha256,
    last: Option<[u8; 36]>,
    count: u64,
}

impl UtxoSetHasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next entry; refuses an outpoint not strictly after the previous one, so a
    /// hash can only be computed over a set in canonical order.
    pub fn add(&mut self, outpoint: &OutPoint, coin: &Coin) -> Result<(), UnsortedEntry> {
        let mut key = [0u8; 36];
        let (txid, vout) = key.split_at_mut(32);
        txid.copy_from_slice(outpoint.txid.as_bytes());
        vout.copy_from_slice(&outpoint.vout.to_le_bytes());
        if self.last.is_some_and(|last| key <= last) {
            return Err(UnsortedEntry {
                outpoint: *outpoint,
            });
        }
        self.last = Some(key);
        self.count = self.count.saturating_add(1);
        self.hasher.update(utxo_entry_bytes(outpoint, coin));
        Ok(())
    }

    /// Entries added so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The UTXO-set hash of the entries added.
    pub fn finish(self) -> Hash256 {
        Hash256::from_byte_array(self.hasher.finalize().into())
    }
}

/// The UTXO-set hash of an unordered collection of entries (sorts them first).
pub fn utxo_set_hash<'a, I>(entries: I) -> Hash256
where
    I: IntoIterator<Item = (&'a OutPoint, &'a Coin)>,
{
    let mut sorted: Vec<(Vec<u8>, &Coin, &OutPoint)> = entries
        .into_iter()
        .map(|(o, c)| (encode_to_vec(o), c, o))
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.dedup_by(|a, b| a.0 == b.0);
    let mut hasher = UtxoSetHasher::new();
    for (_, coin, outpoint) in sorted {
        // Sorted and deduplicated above, so every entry is in order.
        let _ = hasher.add(outpoint, coin);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amount::{Amount, MAX_MONEY};
    use crate::encode::decode_from_slice;
    use crate::hash::{Txid, sha256, to_hex};
    use crate::script::Script;
    use proptest::prelude::*;

    fn arb_coin() -> impl Strategy<Value = Coin> {
        (
            0..=MAX_MONEY,
            proptest::collection::vec(any::<u8>(), 0..80),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(|(v, s, height, is_coinbase)| Coin {
                output: TxOut {
                    value: Amount::from_base(v).unwrap(),
                    script_pubkey: Script::new(s),
                },
                height,
                is_coinbase,
            })
    }

    fn coin(value: u64, height: u32, is_coinbase: bool) -> Coin {
        Coin {
            output: TxOut {
                value: Amount::from_base(value).unwrap(),
                script_pubkey: Script::new(vec![0x51]),
            },
            height,
            is_coinbase,
        }
    }

    proptest! {
        #[test]
        fn coin_roundtrip(c in arb_coin()) {
            let bytes = encode_to_vec(&c);
            prop_assert_eq!(bytes.len(), c.encoded_len());
            let back: Coin = decode_from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &c);
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }

        #[test]
        fn coin_truncation_errors(c in arb_coin(), cut in any::<proptest::sample::Index>()) {
            let bytes = encode_to_vec(&c);
            let n = cut.index(bytes.len());
            prop_assert!(decode_from_slice::<Coin>(&bytes[..n]).is_err());
        }

        #[test]
        fn coin_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_from_slice::<Coin>(&bytes);
        }

        #[test]
        fn set_hash_ignores_input_order(
            coins in proptest::collection::vec((any::<[u8; 32]>(), any::<u32>(), arb_coin()), 0..12),
        ) {
            let entries: Vec<(OutPoint, Coin)> = coins
                .into_iter()
                .map(|(t, v, c)| (OutPoint::new(Txid::from_byte_array(t), v), c))
                .collect();
            let forward = utxo_set_hash(entries.iter().map(|(o, c)| (o, c)));
            let backward = utxo_set_hash(entries.iter().rev().map(|(o, c)| (o, c)));
            prop_assert_eq!(forward, backward);
        }
    }

    #[test]
    fn coin_encoding_is_fixed() {
        let c = coin(5_000_000_000, 7, true);
        assert_eq!(
            to_hex(&encode_to_vec(&c)),
            "07000000".to_owned() + "01" + "00f2052a01000000" + "01" + "51"
        );
        let mut bytes = encode_to_vec(&c);
        bytes[4] = 2;
        assert_eq!(
            decode_from_slice::<Coin>(&bytes),
            Err(DecodeError::Invalid("coinbase flag (must be 0 or 1)"))
        );
        bytes[4] = 0;
        assert!(!decode_from_slice::<Coin>(&bytes).unwrap().is_coinbase);
    }

    #[test]
    fn maturity() {
        assert_eq!(coin(1, 10, true).spendable_from(100), Some(110));
        assert_eq!(coin(1, 10, false).spendable_from(100), Some(10));
        assert_eq!(coin(1, u32::MAX, true).spendable_from(1), None);
    }

    #[test]
    fn hashmap_view() {
        let op = OutPoint::new(Txid::hash(b"a"), 1);
        let mut map = HashMap::new();
        assert_eq!(map.coin(&op), None);
        map.insert(op, coin(3, 1, false));
        assert_eq!(map.coin(&op), Some(coin(3, 1, false)));
        fn through_ref(v: &impl UtxoView, op: &OutPoint) -> Option<Coin> {
            (&v).coin(op)
        }
        assert_eq!(through_ref(&map, &OutPoint::new(op.txid, 0)), None);
        assert_eq!(through_ref(&map, &op), Some(coin(3, 1, false)));
    }

    #[test]
    fn entry_bytes_and_set_hash() {
        let a = OutPoint::new(Txid::from_byte_array([1; 32]), 0x0100);
        let b = OutPoint::new(Txid::from_byte_array([1; 32]), 0x0002);
        let (ca, cb) = (coin(1, 1, false), coin(2, 2, true));
        let ea = utxo_entry_bytes(&a, &ca);
        assert_eq!(ea.len(), 36 + 5 + 8 + 2);
        assert_eq!(&ea[..36], encode_to_vec(&a).as_slice());
        assert_eq!(&ea[36..], encode_to_vec(&ca).as_slice());
        // Bytewise order of the encoding: vout is little-endian, so 0x0100 (00 01 ..) sorts
        // before 0x0002 (02 00 ..) although it is the larger number.
        let mut h = UtxoSetHasher::new();
        h.add(&a, &ca).unwrap();
        assert_eq!(h.add(&a, &ca), Err(UnsortedEntry { outpoint: a }));
        h.add(&b, &cb).unwrap();
        assert_eq!(h.count(), 2);
        let mut concat = ea.clone();
        concat.extend_from_slice(&utxo_entry_bytes(&b, &cb));
        let expected = Hash256::from_byte_array(sha256(&concat));
        // Computed independently (Python hashlib over the hand-written entry bytes).
        assert_eq!(
            expected.to_string(),
            "25b881d15aba55bcebb3e6c543b6aab054fe9aacd2c068bd8dbf9948713cd52d"
        );
        assert_eq!(h.finish(), expected);
        assert_eq!(utxo_set_hash([(&b, &cb), (&a, &ca)]), expected);
        let mut wrong_order = UtxoSetHasher::new();
        wrong_order.add(&b, &cb).unwrap();
        assert!(wrong_order.add(&a, &ca).is_err());
        // The empty set.
        assert_eq!(
            UtxoSetHasher::new().finish(),
            Hash256::from_byte_array(sha256(b""))
        );
        // A different coin changes the hash.
        assert_ne!(utxo_set_hash([(&a, &cb), (&b, &cb)]), expected);
    }
}
