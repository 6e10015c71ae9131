//! Scripts: the byte-string type and its opcodes.
//!
//! The interpreter lives in `interpreter.rs`, the standard templates in `templates.rs`.

use core::fmt;

use crate::hash::to_hex;

/// Largest scriptPubKey a transaction output may carry.
pub const MAX_SCRIPT_PUBKEY_SIZE: usize = 10_000;
/// Largest scriptSig; larger than Bitcoin's because a fraud proof's evidence travels in it.
pub const MAX_SCRIPT_SIG_SIZE: usize = 100_000;

/// Opcode values. Those shared with Bitcoin keep Bitcoin's numbers.
pub mod opcodes {
    pub const OP_0: u8 = 0x00;
    /// Direct pushes are 0x01..=0x4b bytes long.
    pub const OP_PUSHBYTES_MAX: u8 = 0x4b;
    pub const OP_PUSHDATA1: u8 = 0x4c;
    pub const OP_PUSHDATA2: u8 = 0x4d;
    pub const OP_1NEGATE: u8 = 0x4f;
    pub const OP_1: u8 = 0x51;
    pub const OP_16: u8 = 0x60;
    pub const OP_IF: u8 = 0x63;
    pub const OP_NOTIF: u8 = 0x64;
    pub const OP_ELSE: u8 = 0x67;
    pub const OP_ENDIF: u8 = 0x68;
    pub const OP_VERIFY: u8 = 0x69;
    pub const OP_RETURN: u8 = 0x6a;
    pub const OP_DROP: u8 = 0x75;
    pub const OP_DUP: u8 = 0x76;
    pub const OP_EQUAL: u8 = 0x87;
    pub const OP_EQUALVERIFY: u8 = 0x88;
    pub const OP_SHA256: u8 = 0xa8;
    pub const OP_HASH160: u8 = 0xa9;
    pub const OP_CHECKSIG: u8 = 0xac;
    pub const OP_CHECKSIGVERIFY: u8 = 0xad;
    pub const OP_CHECKLOCKTIMEVERIFY: u8 = 0xb1;
    /// CamelidCoin: the spending transaction's job id must equal the 32-byte top item.
    pub const OP_CHECKJOBVERIFY: u8 = 0xb3;
    /// CamelidCoin: hands (job id, evidence) to the fraud-proof oracle; fails unless it
    /// proves the job's committed output wrong.
    pub const OP_CHECKFRAUDPROOFVERIFY: u8 = 0xb4;
}

/// A script: a sequence of opcodes and pushes, kept as raw bytes.
#[derive(Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Script(Vec<u8>);

impl Script {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Script {
    fn from(v: Vec<u8>) -> Self {
        Self(v)
    }
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Script({})", to_hex(&self.0))
    }
}
