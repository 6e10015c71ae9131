//! Blocks: the 80-byte header, its hash (and the midstate a miner reuses), block encoding,
//! and the coinbase's height commitment.
//!
//! Header encoding, Bitcoin's, little-endian: `version: i32 ‖ prev_blockhash: [u8; 32] ‖
//! merkle_root: [u8; 32] ‖ time: u32 ‖ bits: u32 ‖ nonce: u32` = 80 bytes. The block hash is
//! SHA-256d of those bytes. A block is `header ‖ CompactSize n ‖ n transactions`, at most
//! [`MAX_BLOCK_SIZE`] bytes in all.

use crate::encode::{Decodable, DecodeError, Encodable, Reader, compact_size_len, write_vec};
use crate::hash::{BlockHash, Hash256, JobId};
use crate::merkle;
use crate::pow::{Target, Work};
use crate::script::{Script, opcodes};
use crate::transaction::{OutPoint, SEQUENCE_FINAL, Transaction, TxIn, TxOut};

/// Encoded size of a header.
pub const HEADER_SIZE: usize = 80;
/// Largest encoded block, header and transactions included.
pub const MAX_BLOCK_SIZE: usize = 2_000_000;
/// Bounds on the coinbase input's scriptSig length (Bitcoin's).
pub const MIN_COINBASE_SCRIPT_SIG: usize = 2;
pub const MAX_COINBASE_SCRIPT_SIG: usize = 100;

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    pub version: i32,
    pub prev_blockhash: BlockHash,
    pub merkle_root: Hash256,
    /// Seconds since the Unix epoch (UTC).
    pub time: u32,
    /// The target, in compact form.
    pub bits: u32,
    pub nonce: u32,
}

impl Header {
    /// Sets the first nonce whose hash meets the header's own `bits` (for regtest blocks,
    /// tests and tools; a real miner also rolls the extranonce and the time). `false`, and the
    /// nonce unchanged, where `bits` is not a valid target or no 32-bit nonce meets it.
    pub fn solve(&mut self) -> bool {
        let Ok(target) = Target::from_compact(self.bits) else {
            return false;
        };
        match self.midstate().find_nonce(&target, 0, u32::MAX) {
            Some((nonce, _)) => {
                self.nonce = nonce;
                true
            }
            None => false,
        }
    }

    /// The 80 encoded bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        out[..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(self.prev_blockhash.as_bytes());
        out[36..68].copy_from_slice(self.merkle_root.as_bytes());
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; HEADER_SIZE]) -> Self {
        let mut r = Reader::new(bytes);
        // Reading 80 bytes from an 80-byte array cannot run short.
        Self::decode(&mut r).unwrap_or(Self {
            version: 0,
            prev_blockhash: BlockHash::ZERO,
            merkle_root: Hash256::ZERO,
            time: 0,
            bits: 0,
            nonce: 0,
        })
    }

    /// SHA-256d of the 80-byte encoding.
    pub fn block_hash(&self) -> BlockHash {
        BlockHash::hash(&self.to_bytes())
    }

    /// The target `bits` encodes, or `None` if `bits` is invalid (negative or overflowing).
    pub fn target(&self) -> Option<Target> {
        Target::from_compact(self.bits).ok()
    }

    /// The work this header's target represents (zero if `bits` is invalid).
    pub fn work(&self) -> Work {
        self.target().map(|t| t.work()).unwrap_or(Work::ZERO)
    }

    /// The first 64 bytes of the encoding (version, previous hash, 28 bytes of the merkle
    /// root): the first SHA-256 block, which does not depend on time, bits or nonce.
    pub fn midstate_prefix(&self) -> [u8; 64] {
        let bytes = self.to_bytes();
        let mut out = [0u8; 64];
        out.copy_from_slice(&bytes[..64]);
        out
    }

    /// The precomputed hashing state for this header; see [`Midstate`].
    pub fn midstate(&self) -> Midstate {
        Midstate::new(self)
    }

    /// This header's hash with `nonce` in place of its own, from a midstate computed for a
    /// header with the same first 64 bytes. Equals `block_hash()` of the header with that
    /// nonce when `midstate` is `self.midstate()`.
    pub fn hash_with_midstate(&self, midstate: &Midstate, nonce: u32) -> BlockHash {
        let mut m = *midstate;
        m.set_tail(self);
        m.hash(nonce)
    }
}

impl Encodable for Header {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_bytes());
    }
    fn encoded_len(&self) -> usize {
        HEADER_SIZE
    }
}

impl Decodable for Header {
    const MIN_ENCODED_SIZE: usize = HEADER_SIZE;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            version: r.read_i32()?,
            prev_blockhash: BlockHash::decode(r)?,
            merkle_root: Hash256::decode(r)?,
            time: r.read_u32()?,
            bits: r.read_u32()?,
            nonce: r.read_u32()?,
        })
    }
}

/// SHA-256's initial state.
const SHA256_IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A header's hashing state after its first 64 bytes, plus the padded second block with a
/// slot for the nonce: a miner pays two SHA-256 compressions per nonce instead of three.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Midstate {
    state: [u32; 8],
    /// Bytes 64..80 of the header (merkle root tail, time, bits, nonce), then SHA-256
    /// padding for an 80-byte message.
    block2: [u8; 64],
}

impl Midstate {
    pub fn new(header: &Header) -> Self {
        let mut state = SHA256_IV;
        sha2::block_api::compress256(&mut state, &[header.midstate_prefix()]);
        let mut m = Self {
            state,
            block2: [0u8; 64],
        };
        m.block2[16] = 0x80;
        // Message length in bits, big-endian: 640.
        m.block2[56..64].copy_from_slice(&640u64.to_be_bytes());
        m.set_tail(header);
        m
    }

    /// The state after the first 64 bytes, as SHA-256 words.
    pub fn state(&self) -> [u32; 8] {
        self.state
    }

    fn set_tail(&mut self, header: &Header) {
        let bytes = header.to_bytes();
        self.block2[..16].copy_from_slice(&bytes[64..80]);
    }

    /// SHA-256d of the header with `nonce`.
    pub fn hash(&self, nonce: u32) -> BlockHash {
        let mut block2 = self.block2;
        block2[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut state = self.state;
        sha2::block_api::compress256(&mut state, &[block2]);
        let mut block3 = [0u8; 64];
        for (chunk, word) in block3.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        block3[32] = 0x80;
        block3[56..64].copy_from_slice(&256u64.to_be_bytes());
        let mut state = SHA256_IV;
        sha2::block_api::compress256(&mut state, &[block3]);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        BlockHash::from_byte_array(out)
    }

    /// The first nonce in `start..=end` whose hash meets `target`, with that hash.
    pub fn find_nonce(&self, target: &Target, start: u32, end: u32) -> Option<(u32, BlockHash)> {
        (start..=end)
            .map(|n| (n, self.hash(n)))
            .find(|(_, h)| target.is_met_by(h))
    }
}

/// A block: a header and its transactions, the coinbase first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub header: Header,
    pub txdata: Vec<Transaction>,
}

impl Block {
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// The merkle root of the transactions and whether the list is mutated (see [`merkle`]).
    pub fn compute_merkle_root(&self) -> (Hash256, bool) {
        merkle::merkle_root_of(self.txdata.iter().map(|tx| tx.txid().to_byte_array()))
    }

    /// Sets the merkle root from the transactions, then solves the header
    /// ([`Header::solve`]).
    pub fn solve(&mut self) -> bool {
        self.header.merkle_root = self.compute_merkle_root().0;
        self.header.solve()
    }

    /// The first transaction, if it is a coinbase.
    pub fn coinbase(&self) -> Option<&Transaction> {
        self.txdata.first().filter(|tx| tx.is_coinbase())
    }
}

impl Encodable for Block {
    fn encode(&self, out: &mut Vec<u8>) {
        self.header.encode(out);
        write_vec(out, &self.txdata);
    }
    fn encoded_len(&self) -> usize {
        let txs: usize = self
            .txdata
            .iter()
            .map(Encodable::encoded_len)
            .fold(0, usize::saturating_add);
        HEADER_SIZE
            .saturating_add(compact_size_len(self.txdata.len() as u64))
            .saturating_add(txs)
    }
}

impl Decodable for Block {
    /// A header and an empty transaction list.
    const MIN_ENCODED_SIZE: usize = HEADER_SIZE + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let start = r.remaining();
        let header = Header::decode(r)?;
        let txdata = r.read_vec(
            "transactions",
            MAX_BLOCK_SIZE / Transaction::MIN_ENCODED_SIZE,
        )?;
        let size = start.saturating_sub(r.remaining());
        if size > MAX_BLOCK_SIZE {
            return Err(DecodeError::TooLong {
                what: "block",
                len: size as u64,
                max: MAX_BLOCK_SIZE as u64,
            });
        }
        Ok(Self { header, txdata })
    }
}

/// Minimal script-number encoding of a non-negative value: little-endian, no trailing zero
/// bytes, and an extra 0x00 when the top bit of the last byte is set (it is the sign bit).
fn script_num(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v != 0 {
        out.push(v as u8);
        v >>= 8;
    }
    if out.last().is_some_and(|b| b & 0x80 != 0) {
        out.push(0);
    }
    out
}

/// The push of `height` that must open a coinbase scriptSig: `OP_0` for 0, `OP_1`..`OP_16`
/// for 1..=16, otherwise a direct push of its minimal script-number bytes (Bitcoin's
/// `CScript() << height`, BIP34).
pub fn coinbase_height_push(height: u32) -> Vec<u8> {
    match height {
        0 => vec![opcodes::OP_0],
        // 1..=16 fits a u8 and OP_1 + 15 = OP_16 fits too.
        1..=16 => vec![opcodes::OP_1.saturating_add((height as u8).saturating_sub(1))],
        _ => {
            let n = script_num(u64::from(height));
            // At most 5 bytes for a u32, a direct push.
            let mut out = vec![n.len() as u8];
            out.extend_from_slice(&n);
            out
        }
    }
}

/// The height a coinbase commits to: the scriptSig must begin with exactly the push
/// [`coinbase_height_push`] produces. `None` if `tx` is not a coinbase or does not begin so.
pub fn coinbase_height(tx: &Transaction) -> Option<u32> {
    if !tx.is_coinbase() {
        return None;
    }
    let script = tx.inputs.first()?.script_sig.as_bytes();
    let (&first, rest) = script.split_first()?;
    let height = match first {
        opcodes::OP_0 => 0,
        opcodes::OP_1..=opcodes::OP_16 => {
            u32::from(first.saturating_sub(opcodes::OP_1)).saturating_add(1)
        }
        1..=5 => {
            let bytes = rest.get(..usize::from(first))?;
            let mut le = [0u8; 8];
            le.get_mut(..bytes.len())?.copy_from_slice(bytes);
            u32::try_from(u64::from_le_bytes(le)).ok()?
        }
        _ => return None,
    };
    // Only the canonical push counts: this rejects negative, padded and OP_N-avoiding forms.
    (script.starts_with(&coinbase_height_push(height))).then_some(height)
}

/// Why a coinbase could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoinbaseError {
    /// The scriptSig would exceed [`MAX_COINBASE_SCRIPT_SIG`] bytes.
    ScriptSigTooLong(usize),
}

impl core::fmt::Display for CoinbaseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ScriptSigTooLong(n) => {
                write!(
                    f,
                    "coinbase scriptSig of {n} bytes exceeds {MAX_COINBASE_SCRIPT_SIG}; shorten the extra data"
                )
            }
        }
    }
}

impl std::error::Error for CoinbaseError {}

/// A script push of `data`: `OP_0` when empty, a direct push up to 75 bytes, `OP_PUSHDATA1`
/// up to 255, `OP_PUSHDATA2` up to 65,535; `None` beyond.
pub fn push_data(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len().saturating_add(3));
    match data.len() {
        0 => out.push(opcodes::OP_0),
        n @ 1..=75 => out.push(n as u8),
        n @ 76..=255 => out.extend_from_slice(&[opcodes::OP_PUSHDATA1, n as u8]),
        n => {
            out.push(opcodes::OP_PUSHDATA2);
            out.extend_from_slice(&u16::try_from(n).ok()?.to_le_bytes());
        }
    }
    out.extend_from_slice(data);
    Some(out)
}

/// A coinbase for `height`: one input spending the null outpoint with scriptSig
/// `coinbase_height_push(height) ‖ push_data(extra)` (so it is always at least 2 bytes),
/// sequence final, version 1, lock time 0, job id zero, and `outputs`.
pub fn build_coinbase(
    height: u32,
    extra: &[u8],
    outputs: Vec<TxOut>,
) -> Result<Transaction, CoinbaseError> {
    let too_long = || {
        CoinbaseError::ScriptSigTooLong(
            coinbase_height_push(height)
                .len()
                .saturating_add(extra.len())
                .saturating_add(3),
        )
    };
    let mut script = coinbase_height_push(height);
    script.extend_from_slice(&push_data(extra).ok_or_else(too_long)?);
    if script.len() > MAX_COINBASE_SCRIPT_SIG {
        return Err(CoinbaseError::ScriptSigTooLong(script.len()));
    }
    Ok(Transaction {
        version: 1,
        inputs: vec![TxIn {
            prev_out: OutPoint::NULL,
            script_sig: Script::new(script),
            sequence: SEQUENCE_FINAL,
        }],
        outputs,
        lock_time: 0,
        job_id: JobId::ZERO,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::amount::Amount;
    use crate::encode::{decode_from_slice, encode_to_vec};
    use crate::hash::Txid;
    use crate::transaction::tests::arb_tx;
    use proptest::prelude::*;

    pub fn arb_header() -> impl Strategy<Value = Header> {
        (
            any::<i32>(),
            any::<[u8; 32]>(),
            any::<[u8; 32]>(),
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(|(version, p, m, time, bits, nonce)| Header {
                version,
                prev_blockhash: BlockHash::from_byte_array(p),
                merkle_root: Hash256::from_byte_array(m),
                time,
                bits,
                nonce,
            })
    }

    fn arb_block() -> impl Strategy<Value = Block> {
        (arb_header(), proptest::collection::vec(arb_tx(), 0..4))
            .prop_map(|(header, txdata)| Block { header, txdata })
    }

    proptest! {
        #[test]
        fn header_roundtrip(h in arb_header()) {
            let bytes = encode_to_vec(&h);
            prop_assert_eq!(bytes.len(), HEADER_SIZE);
            let back: Header = decode_from_slice(&bytes).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(Header::from_bytes(&h.to_bytes()), h);
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }

        #[test]
        fn midstate_hash_equals_block_hash(h in arb_header(), nonce: u32) {
            let m = h.midstate();
            prop_assert_eq!(h.hash_with_midstate(&m, h.nonce), h.block_hash());
            let other = Header { nonce, ..h };
            prop_assert_eq!(m.hash(nonce), other.block_hash());
            prop_assert_eq!(h.hash_with_midstate(&m, nonce), other.block_hash());
            // A different time or bits shares the midstate.
            let later = Header { time: h.time.wrapping_add(1), bits: !h.bits, ..h };
            prop_assert_eq!(later.hash_with_midstate(&m, nonce), Header { nonce, ..later }.block_hash());
        }

        #[test]
        fn block_roundtrip(b in arb_block()) {
            let bytes = encode_to_vec(&b);
            prop_assert_eq!(bytes.len(), b.encoded_len());
            let back: Block = decode_from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &b);
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }

        #[test]
        fn block_truncation_errors(b in arb_block(), cut in any::<proptest::sample::Index>()) {
            let bytes = encode_to_vec(&b);
            let n = cut.index(bytes.len());
            prop_assert!(decode_from_slice::<Block>(&bytes[..n]).is_err());
            prop_assert!(decode_from_slice::<Header>(&bytes[..n.min(HEADER_SIZE - 1)]).is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = decode_from_slice::<Block>(&bytes);
            let _ = decode_from_slice::<Header>(&bytes);
        }

        #[test]
        fn coinbase_height_roundtrip(height: u32, extra in proptest::collection::vec(any::<u8>(), 0..80)) {
            let cb = build_coinbase(height, &extra, vec![]).unwrap();
            let len = cb.inputs[0].script_sig.len();
            prop_assert!((MIN_COINBASE_SCRIPT_SIG..=MAX_COINBASE_SCRIPT_SIG).contains(&len));
            prop_assert_eq!(coinbase_height(&cb), Some(height));
        }
    }

    #[test]
    fn every_truncation_of_real_blocks_errors() {
        for net in crate::params::Network::ALL {
            let g = crate::params::Params::new(net).genesis_block();
            let mut b = g.clone();
            b.txdata
                .push(build_coinbase(300, b"second", g.txdata[0].outputs.clone()).unwrap());
            for block in [g, b] {
                let bytes = encode_to_vec(&block);
                assert_eq!(decode_from_slice::<Block>(&bytes).as_ref(), Ok(&block));
                for cut in 0..bytes.len() {
                    assert!(
                        decode_from_slice::<Block>(&bytes[..cut]).is_err(),
                        "{net} cut {cut}"
                    );
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_rejected() {
        let b = Block {
            header: Header::from_bytes(&[7u8; 80]),
            txdata: vec![],
        };
        let mut bytes = encode_to_vec(&b);
        bytes.push(0);
        assert_eq!(
            decode_from_slice::<Block>(&bytes),
            Err(DecodeError::TrailingBytes(1))
        );
        let mut hb = b.header.to_bytes().to_vec();
        hb.push(1);
        assert_eq!(
            decode_from_slice::<Header>(&hb),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn huge_tx_count_errors_without_allocating() {
        let mut bytes = [7u8; 80].to_vec();
        bytes.extend_from_slice(&[0xff; 9]);
        let err = decode_from_slice::<Block>(&bytes).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::TooLong {
                    what: "transactions",
                    ..
                }
            ),
            "{err}"
        );
        // Within the count limit but more than the bytes present.
        let mut bytes = [7u8; 80].to_vec();
        bytes.extend_from_slice(&[0xfd, 0x00, 0x01]);
        let err = decode_from_slice::<Block>(&bytes).unwrap_err();
        assert!(matches!(err, DecodeError::UnexpectedEnd { .. }), "{err}");
    }

    fn filler_tx(script_len: usize) -> Transaction {
        Transaction {
            version: 1,
            inputs: vec![],
            outputs: vec![TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new(vec![0x6a; script_len]),
            }],
            lock_time: 0,
            job_id: JobId::ZERO,
        }
    }

    #[test]
    fn block_size_limit_at_and_past() {
        // Fill a block to exactly MAX_BLOCK_SIZE with 10,000-byte scriptPubKeys, then tune the last.
        let mut b = Block {
            header: Header::from_bytes(&[0u8; 80]),
            txdata: vec![],
        };
        while MAX_BLOCK_SIZE - b.encoded_len() > 10_000 {
            b.txdata.push(filler_tx(5_000));
        }
        // The gap is now 4,946..=10,000 bytes: one more transaction fills it exactly.
        let len = b.encoded_len();
        let last = (0..=10_000)
            .find(|k| len + filler_tx(*k).encoded_len() == MAX_BLOCK_SIZE)
            .unwrap();
        b.txdata.push(filler_tx(last));
        assert_eq!(b.encoded_len(), MAX_BLOCK_SIZE);
        let bytes = encode_to_vec(&b);
        assert_eq!(decode_from_slice::<Block>(&bytes).unwrap(), b);
        let n = b.txdata.len();
        b.txdata[n - 1] = filler_tx(last + 1);
        assert_eq!(b.encoded_len(), MAX_BLOCK_SIZE + 1);
        let err = decode_from_slice::<Block>(&encode_to_vec(&b)).unwrap_err();
        assert_eq!(
            err,
            DecodeError::TooLong {
                what: "block",
                len: MAX_BLOCK_SIZE as u64 + 1,
                max: MAX_BLOCK_SIZE as u64
            }
        );
    }

    #[test]
    fn coinbase_height_forms() {
        assert_eq!(coinbase_height_push(0), vec![0x00]);
        assert_eq!(coinbase_height_push(1), vec![0x51]);
        assert_eq!(coinbase_height_push(16), vec![0x60]);
        assert_eq!(coinbase_height_push(17), vec![0x01, 0x11]);
        assert_eq!(coinbase_height_push(127), vec![0x01, 0x7f]);
        assert_eq!(coinbase_height_push(128), vec![0x02, 0x80, 0x00]);
        assert_eq!(
            coinbase_height_push(1_000_000),
            vec![0x03, 0x40, 0x42, 0x0f]
        );
        assert_eq!(
            coinbase_height_push(u32::MAX),
            vec![0x05, 0xff, 0xff, 0xff, 0xff, 0x00]
        );
        let with_script = |s: Vec<u8>| {
            let mut tx = build_coinbase(0, b"", vec![]).unwrap();
            tx.inputs[0].script_sig = Script::new(s);
            coinbase_height(&tx)
        };
        assert_eq!(with_script(vec![0x01, 0x11, 0x00]), Some(17));
        // Non-minimal forms: 1 pushed as bytes, 17 padded, negative 17, truncated push.
        assert_eq!(with_script(vec![0x01, 0x01]), None);
        assert_eq!(with_script(vec![0x02, 0x11, 0x00]), None);
        assert_eq!(with_script(vec![0x01, 0x91]), None);
        assert_eq!(with_script(vec![0x02, 0x80]), None);
        assert_eq!(with_script(vec![]), None);
        assert_eq!(with_script(vec![0x4c, 0x01, 0x11]), None);
        // Not a coinbase.
        let mut tx = build_coinbase(5, b"", vec![]).unwrap();
        tx.inputs[0].prev_out = OutPoint::new(Txid::hash(b"x"), 0);
        assert_eq!(coinbase_height(&tx), None);
    }

    #[test]
    fn coinbase_script_sig_limit() {
        // Height 17 takes 2 bytes, the push of 96 bytes takes 1 + 1 + 96: 100 in all.
        assert!(build_coinbase(17, &[0u8; 96], vec![]).is_ok());
        assert_eq!(
            build_coinbase(17, &[0u8; 97], vec![]),
            Err(CoinbaseError::ScriptSigTooLong(101))
        );
        assert_eq!(
            build_coinbase(0, b"", vec![]).unwrap().inputs[0]
                .script_sig
                .len(),
            2
        );
    }

    #[test]
    fn push_data_forms() {
        assert_eq!(push_data(&[]).unwrap(), vec![0x00]);
        assert_eq!(push_data(&[9; 75]).unwrap()[0], 75);
        assert_eq!(push_data(&[9; 76]).unwrap()[..2], [0x4c, 76]);
        assert_eq!(push_data(&[9; 256]).unwrap()[..3], [0x4d, 0x00, 0x01]);
        assert_eq!(push_data(&[9; 256]).unwrap().len(), 259);
        assert_eq!(push_data(&vec![9; 65_535]).unwrap().len(), 65_538);
        assert_eq!(push_data(&vec![9; 65_536]), None);
        assert!(matches!(
            build_coinbase(0, &vec![0; 70_000], vec![]),
            Err(CoinbaseError::ScriptSigTooLong(_))
        ));
    }

    #[test]
    fn find_nonce_meets_target() {
        let h = Header::from_bytes(&[3u8; 80]);
        let target = Target::from_compact(0x2000_ffff).unwrap(); // about one hash in 128
        let (nonce, hash) = h.midstate().find_nonce(&target, 0, u32::MAX).unwrap();
        let solved = Header { nonce, ..h };
        assert_eq!(solved.block_hash(), hash);
        assert!(target.is_met_by(&hash));
        // `solve` finds the same nonce from the header's own bits.
        let mut own = Header {
            bits: 0x2000_ffff,
            ..h
        };
        assert!(own.solve());
        assert_eq!(
            own.nonce,
            Header {
                bits: 0x2000_ffff,
                ..h
            }
            .midstate()
            .find_nonce(&target, 0, u32::MAX)
            .unwrap()
            .0
        );
        assert!(target.is_met_by(&own.block_hash()));
        // Bits that name no valid target (a negative one) leave the nonce alone.
        assert!(Target::from_compact(0x0380_0001).is_err());
        let mut bad = Header {
            bits: 0x0380_0001,
            ..h
        };
        assert!(!bad.solve());
        assert_eq!(bad.nonce, h.nonce);
        // Every earlier nonce failed.
        assert!((0..nonce).all(|n| !target.is_met_by(&Header { nonce: n, ..h }.block_hash())));
    }
}
