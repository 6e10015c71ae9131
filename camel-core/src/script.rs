//! Scripts: the byte-string type, its opcodes, an instruction parser, a builder that emits
//! minimal pushes, script numbers, and a human-readable (asm) rendering.
//!
//! The interpreter lives in `interpreter.rs`, the standard templates in `templates.rs`.
//!
//! A script is parsed left to right into instructions. A *push* is `OP_0` (the empty string),
//! a direct push `0x01..=0x4b` followed by that many bytes, `OP_PUSHDATA1 ‖ len: u8 ‖ data` or
//! `OP_PUSHDATA2 ‖ len: u16 LE ‖ data`. Every other byte is an opcode on its own. There is no
//! `OP_PUSHDATA4`: no element can be longer than [`MAX_ELEMENT_SIZE`], the largest length
//! `OP_PUSHDATA2` can express.

use core::fmt;

use crate::hash::to_hex;

/// Largest scriptPubKey a transaction output may carry.
pub const MAX_SCRIPT_PUBKEY_SIZE: usize = 10_000;
/// Largest scriptSig; larger than Bitcoin's because a fraud proof's evidence travels in it.
pub const MAX_SCRIPT_SIG_SIZE: usize = 100_000;
/// Largest stack element: the most `OP_PUSHDATA2` can push (no opcode makes a longer one).
pub const MAX_ELEMENT_SIZE: usize = u16::MAX as usize;

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
    /// CamelidCoin: pops `<evidence> <job id> <worker pubkey>` and hands them to the
    /// fraud-proof oracle; fails unless the evidence proves that worker's committed output
    /// for that job wrong.
    pub const OP_CHECKFRAUDPROOFVERIFY: u8 = 0xb4;

    /// `OP_TRUE` is `OP_1`.
    pub const OP_TRUE: u8 = OP_1;
    /// `OP_FALSE` is `OP_0`.
    pub const OP_FALSE: u8 = OP_0;

    /// The asm name of an opcode that is not a push, `None` for bytes outside the opcode set
    /// (which the interpreter rejects as `bad-opcode`).
    pub fn name(op: u8) -> Option<&'static str> {
        const SMALL: [&str; 16] = [
            "OP_1", "OP_2", "OP_3", "OP_4", "OP_5", "OP_6", "OP_7", "OP_8", "OP_9", "OP_10",
            "OP_11", "OP_12", "OP_13", "OP_14", "OP_15", "OP_16",
        ];
        Some(match op {
            OP_0 => "OP_0",
            OP_PUSHDATA1 => "OP_PUSHDATA1",
            OP_PUSHDATA2 => "OP_PUSHDATA2",
            OP_1NEGATE => "OP_1NEGATE",
            OP_1..=OP_16 => return SMALL.get(usize::from(op.wrapping_sub(OP_1))).copied(),
            OP_IF => "OP_IF",
            OP_NOTIF => "OP_NOTIF",
            OP_ELSE => "OP_ELSE",
            OP_ENDIF => "OP_ENDIF",
            OP_VERIFY => "OP_VERIFY",
            OP_RETURN => "OP_RETURN",
            OP_DROP => "OP_DROP",
            OP_DUP => "OP_DUP",
            OP_EQUAL => "OP_EQUAL",
            OP_EQUALVERIFY => "OP_EQUALVERIFY",
            OP_SHA256 => "OP_SHA256",
            OP_HASH160 => "OP_HASH160",
            OP_CHECKSIG => "OP_CHECKSIG",
            OP_CHECKSIGVERIFY => "OP_CHECKSIGVERIFY",
            OP_CHECKLOCKTIMEVERIFY => "OP_CHECKLOCKTIMEVERIFY",
            OP_CHECKJOBVERIFY => "OP_CHECKJOBVERIFY",
            OP_CHECKFRAUDPROOFVERIFY => "OP_CHECKFRAUDPROOFVERIFY",
            _ => return None,
        })
    }

    /// Whether `op` belongs to the opcode set the interpreter runs (pushes included).
    pub fn is_known(op: u8) -> bool {
        op <= OP_PUSHDATA2 || name(op).is_some()
    }
}

use opcodes::*;

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

    /// The script's instructions, in order. After the first error the iterator ends.
    pub fn instructions(&self) -> Instructions<'_> {
        Instructions::new(&self.0)
    }

    /// Whether the script parses and contains only pushes (`OP_0`, data pushes, `OP_1NEGATE`,
    /// `OP_1`..`OP_16`): the form every scriptSig must have.
    pub fn is_push_only(&self) -> bool {
        self.instructions().all(|i| match i {
            Ok(Instruction::Push(_)) => true,
            Ok(Instruction::Op(op)) => op == OP_1NEGATE || (OP_1..=OP_16).contains(&op),
            Err(_) => false,
        })
    }

    /// Whether no scriptSig can ever satisfy this scriptPubKey, so the output can be left out
    /// of the UTXO set: it starts with `OP_RETURN`, exceeds [`MAX_SCRIPT_PUBKEY_SIZE`], has a
    /// truncated push, or contains a byte outside the opcode set (which fails a script even in
    /// a branch that is not executed).
    pub fn is_provably_unspendable(&self) -> bool {
        self.0.first() == Some(&OP_RETURN)
            || self.0.len() > MAX_SCRIPT_PUBKEY_SIZE
            || self.instructions().any(|i| match i {
                Ok(Instruction::Op(op)) => !opcodes::is_known(op),
                Ok(Instruction::Push(_)) => false,
                Err(_) => true,
            })
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

/// The asm form: opcodes by name, pushed data as lower-case hex, separated by single spaces,
/// e.g. `OP_DUP OP_HASH160 751e76e8199196d454941c45d1b3a323f1433bd6 OP_EQUALVERIFY OP_CHECKSIG`.
/// `OP_0` shows as `OP_0`; bytes outside the opcode set as `OP_UNKNOWN(0xNN)`; a truncated
/// push ends the rendering with `[error: …]`.
impl fmt::Display for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for ins in self.instructions() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            match ins {
                Ok(Instruction::Push([])) => f.write_str("OP_0")?,
                Ok(Instruction::Push(data)) => f.write_str(&to_hex(data))?,
                Ok(Instruction::Op(op)) => match opcodes::name(op) {
                    Some(name) => f.write_str(name)?,
                    None => write!(f, "OP_UNKNOWN(0x{op:02x})")?,
                },
                Err(e) => write!(f, "[error: {e}]")?,
            }
        }
        Ok(())
    }
}

/// One parsed instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instruction<'a> {
    /// Data pushed by `OP_0` (empty), a direct push, `OP_PUSHDATA1` or `OP_PUSHDATA2`.
    Push(&'a [u8]),
    /// Any other byte, including `OP_1NEGATE` and `OP_1`..`OP_16` (which push numbers when run).
    Op(u8),
}

/// Why a script could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstructionError {
    /// The push opcode at `offset` announces more bytes (or length bytes) than the script has.
    TruncatedPush { offset: usize },
}

impl fmt::Display for InstructionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TruncatedPush { offset } => write!(f, "truncated push at byte {offset}"),
        }
    }
}

impl std::error::Error for InstructionError {}

/// Iterator over a script's instructions; see [`Script::instructions`].
#[derive(Debug, Clone)]
pub struct Instructions<'a> {
    rest: &'a [u8],
    offset: usize,
}

impl<'a> Instructions<'a> {
    /// Parses raw script bytes.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            offset: 0,
        }
    }

    /// Byte offset of the next instruction.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Like `next`, but also returns the opcode byte that introduced the instruction, so a
    /// caller can tell how a push was encoded (see [`is_minimal_push`]).
    pub fn next_with_opcode(&mut self) -> Option<Result<(u8, Instruction<'a>), InstructionError>> {
        let (&op, after) = self.rest.split_first()?;
        let start = self.offset;
        let (len, header) = match op {
            OP_0 => (0, 0),
            1..=OP_PUSHBYTES_MAX => (usize::from(op), 0),
            OP_PUSHDATA1 => match after.first() {
                Some(&n) => (usize::from(n), 1),
                None => return Some(Err(self.fail(start))),
            },
            OP_PUSHDATA2 => match after.get(..2) {
                Some(&[lo, hi]) => (usize::from(u16::from_le_bytes([lo, hi])), 2),
                _ => return Some(Err(self.fail(start))),
            },
            _ => {
                self.rest = after;
                self.offset = start.saturating_add(1);
                return Some(Ok((op, Instruction::Op(op))));
            }
        };
        let body = after.get(header..).unwrap_or_default();
        let Some(data) = body.get(..len) else {
            return Some(Err(self.fail(start)));
        };
        self.rest = body.get(len..).unwrap_or_default();
        self.offset = start
            .saturating_add(1)
            .saturating_add(header)
            .saturating_add(len);
        Some(Ok((op, Instruction::Push(data))))
    }

    fn fail(&mut self, offset: usize) -> InstructionError {
        self.rest = &[];
        InstructionError::TruncatedPush { offset }
    }
}

impl<'a> Iterator for Instructions<'a> {
    type Item = Result<Instruction<'a>, InstructionError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_with_opcode().map(|r| r.map(|(_, ins)| ins))
    }
}

impl core::iter::FusedIterator for Instructions<'_> {}

/// The opcode that pushes `data` most compactly: `OP_0` for empty, `OP_1`..`OP_16` and
/// `OP_1NEGATE` for the single bytes 1..=16 and 0x81, a direct push up to 75 bytes,
/// `OP_PUSHDATA1` up to 255, `OP_PUSHDATA2` up to 65,535; `None` beyond that.
pub fn minimal_push_opcode(data: &[u8]) -> Option<u8> {
    match data {
        [] => Some(OP_0),
        [n @ 1..=16] => Some(OP_1.wrapping_sub(1).wrapping_add(*n)),
        [0x81] => Some(OP_1NEGATE),
        _ if data.len() <= usize::from(OP_PUSHBYTES_MAX) => Some(data.len() as u8),
        _ if data.len() <= usize::from(u8::MAX) => Some(OP_PUSHDATA1),
        _ if data.len() <= MAX_ELEMENT_SIZE => Some(OP_PUSHDATA2),
        _ => None,
    }
}

/// Whether `data` pushed by `opcode` (a push instruction's introducing byte) used the minimal
/// encoding. The rule the interpreter enforces on every push (MINIMALDATA).
pub fn is_minimal_push(opcode: u8, data: &[u8]) -> bool {
    minimal_push_opcode(data) == Some(opcode)
}

/// Why bytes are not a valid script number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptNumError {
    /// Longer than the operation allows.
    TooLong { len: usize, max: usize },
    /// Has a superfluous most-significant byte (including negative zero).
    NonMinimal,
}

impl fmt::Display for ScriptNumError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "script number of {len} bytes exceeds {max}"),
            Self::NonMinimal => write!(f, "non-minimally encoded script number"),
        }
    }
}

impl std::error::Error for ScriptNumError {}

/// Encodes `n` as a script number: little-endian magnitude, minimal length, the sign in the
/// top bit of the last byte (an extra 0x00 or 0x80 byte when the magnitude uses that bit);
/// zero is the empty string.
pub fn encode_script_num(n: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(9);
    let mut abs = n.unsigned_abs();
    while abs != 0 {
        out.push((abs & 0xff) as u8);
        abs = abs.wrapping_shr(8);
    }
    let negative = n < 0;
    match out.last_mut() {
        None => {}
        Some(last) if *last & 0x80 != 0 => out.push(if negative { 0x80 } else { 0x00 }),
        Some(last) if negative => *last |= 0x80,
        Some(_) => {}
    }
    out
}

/// Decodes a minimally encoded script number of at most `max_len` bytes (`max_len` above 8 is
/// treated as 8, so the value always fits an `i64`).
pub fn decode_script_num(bytes: &[u8], max_len: usize) -> Result<i64, ScriptNumError> {
    let max = max_len.min(8);
    if bytes.len() > max {
        return Err(ScriptNumError::TooLong {
            len: bytes.len(),
            max,
        });
    }
    let Some((&last, init)) = bytes.split_last() else {
        return Ok(0);
    };
    if last & 0x7f == 0 {
        // The last byte only carries the sign: allowed only when the byte before needs its
        // top bit for the magnitude.
        match init.last() {
            Some(prev) if prev & 0x80 != 0 => {}
            _ => return Err(ScriptNumError::NonMinimal),
        }
    }
    let mut magnitude: u64 = u64::from(last & 0x7f);
    for &b in init.iter().rev() {
        magnitude = magnitude.wrapping_shl(8) | u64::from(b);
    }
    // At most 8 bytes with the top bit reserved for the sign: 63 bits, fits an i64.
    let value = i64::try_from(magnitude).unwrap_or(i64::MAX);
    Ok(if last & 0x80 != 0 {
        value.wrapping_neg()
    } else {
        value
    })
}

/// Why a builder could not add a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// The data is longer than [`MAX_ELEMENT_SIZE`].
    PushTooLong(usize),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PushTooLong(n) => write!(
                f,
                "cannot push {n} bytes: an element holds at most {MAX_ELEMENT_SIZE}"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds a script instruction by instruction, always with minimal pushes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Builder(Vec<u8>);

impl Builder {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends one opcode byte as is.
    pub fn push_opcode(mut self, op: u8) -> Self {
        self.0.push(op);
        self
    }

    /// Appends a push of `data` in its minimal encoding (see [`minimal_push_opcode`]).
    pub fn push_slice(mut self, data: &[u8]) -> Result<Self, BuildError> {
        self.append_push(data)?;
        Ok(self)
    }

    /// Appends a push of a fixed-size array (hashes, keys), which can never be too long.
    pub fn push_array<const N: usize>(mut self, data: &[u8; N]) -> Self {
        const { assert!(N <= MAX_ELEMENT_SIZE, "array too long to push") };
        // Cannot fail: N is at most MAX_ELEMENT_SIZE (checked at compile time).
        let _ = self.append_push(data);
        self
    }

    /// Appends `n` as a script number: `OP_0`, `OP_1NEGATE` and `OP_1`..`OP_16` for the small
    /// values, otherwise a push of [`encode_script_num`].
    pub fn push_int(mut self, n: i64) -> Self {
        // Cannot fail: a script number of an i64 has at most 9 bytes.
        let _ = self.append_push(&encode_script_num(n));
        self
    }

    fn append_push(&mut self, data: &[u8]) -> Result<(), BuildError> {
        let op = minimal_push_opcode(data).ok_or(BuildError::PushTooLong(data.len()))?;
        self.0.push(op);
        match op {
            OP_0 | OP_1NEGATE | OP_1..=OP_16 => {}
            OP_PUSHDATA1 => {
                self.0.push(data.len() as u8);
                self.0.extend_from_slice(data);
            }
            OP_PUSHDATA2 => {
                self.0.extend_from_slice(&(data.len() as u16).to_le_bytes());
                self.0.extend_from_slice(data);
            }
            _ => self.0.extend_from_slice(data),
        }
        Ok(())
    }

    /// Appends a push of a compressed public key (33 bytes).
    pub fn push_key(self, key: &crate::keys::PublicKey) -> Self {
        self.push_array(&key.to_bytes())
    }

    /// The script built so far.
    pub fn as_script_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_script(self) -> Script {
        Script(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::from_hex;
    use proptest::prelude::*;

    fn script(hex: &str) -> Script {
        Script::new(from_hex(hex).unwrap())
    }

    #[test]
    fn parses_every_push_form() {
        let s = script(
            "00 01ab 4c02cdef 4d0300010203 4f 51 60 76"
                .replace(' ', "")
                .as_str(),
        );
        let ins: Vec<_> = s.instructions().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            ins,
            vec![
                Instruction::Push(&[]),
                Instruction::Push(&[0xab]),
                Instruction::Push(&[0xcd, 0xef]),
                Instruction::Push(&[1, 2, 3]),
                Instruction::Op(OP_1NEGATE),
                Instruction::Op(OP_1),
                Instruction::Op(OP_16),
                Instruction::Op(OP_DUP),
            ]
        );
        let mut it = s.instructions();
        assert_eq!(
            it.next_with_opcode(),
            Some(Ok((OP_0, Instruction::Push(&[]))))
        );
        assert_eq!(it.offset(), 1);
        assert_eq!(
            it.next_with_opcode(),
            Some(Ok((1, Instruction::Push(&[0xab]))))
        );
        assert_eq!(
            it.next_with_opcode(),
            Some(Ok((OP_PUSHDATA1, Instruction::Push(&[0xcd, 0xef]))))
        );
        assert_eq!(it.offset(), 7);
    }

    #[test]
    fn truncated_pushes_are_errors() {
        for (hex, offset) in [
            ("02ab", 0),
            ("76 4c", 1),
            ("4c02ab", 0),
            ("4d01", 0),
            ("4d0200ab", 0),
            ("51 4b", 1),
        ] {
            let s = script(&hex.replace(' ', ""));
            let all: Vec<_> = s.instructions().collect();
            assert_eq!(
                all.last(),
                Some(&Err(InstructionError::TruncatedPush { offset })),
                "{hex}"
            );
            // The iterator is fused after the error.
            let mut it = s.instructions();
            while let Some(Ok(_)) = it.next() {}
            assert_eq!(it.next(), None);
            assert!(!s.is_push_only());
            assert!(s.is_provably_unspendable());
        }
    }

    #[test]
    fn asm_rendering() {
        let pkh = from_hex("751e76e8199196d454941c45d1b3a323f1433bd6").unwrap();
        let s = Builder::new()
            .push_opcode(OP_DUP)
            .push_opcode(OP_HASH160)
            .push_slice(&pkh)
            .unwrap()
            .push_opcode(OP_EQUALVERIFY)
            .push_opcode(OP_CHECKSIG)
            .into_script();
        assert_eq!(
            s.to_string(),
            "OP_DUP OP_HASH160 751e76e8199196d454941c45d1b3a323f1433bd6 OP_EQUALVERIFY OP_CHECKSIG"
        );
        assert_eq!(
            script("00 4f 55 60 b3 b4 ba".replace(' ', "").as_str()).to_string(),
            "OP_0 OP_1NEGATE OP_5 OP_16 OP_CHECKJOBVERIFY OP_CHECKFRAUDPROOFVERIFY OP_UNKNOWN(0xba)"
        );
        assert_eq!(
            script("7603abcd").to_string().replace(' ', ""),
            "OP_DUP[error:truncatedpushatbyte1]"
        );
        assert_eq!(Script::default().to_string(), "");
    }

    #[test]
    fn minimal_pushes() {
        assert_eq!(minimal_push_opcode(&[]), Some(OP_0));
        assert_eq!(minimal_push_opcode(&[0]), Some(1));
        assert_eq!(minimal_push_opcode(&[1]), Some(OP_1));
        assert_eq!(minimal_push_opcode(&[16]), Some(OP_16));
        assert_eq!(minimal_push_opcode(&[17]), Some(1));
        assert_eq!(minimal_push_opcode(&[0x81]), Some(OP_1NEGATE));
        assert_eq!(minimal_push_opcode(&[0x80]), Some(1));
        assert_eq!(minimal_push_opcode(&[7; 75]), Some(75));
        assert_eq!(minimal_push_opcode(&[7; 76]), Some(OP_PUSHDATA1));
        assert_eq!(minimal_push_opcode(&[7; 255]), Some(OP_PUSHDATA1));
        assert_eq!(minimal_push_opcode(&[7; 256]), Some(OP_PUSHDATA2));
        assert_eq!(
            minimal_push_opcode(&vec![7; MAX_ELEMENT_SIZE]),
            Some(OP_PUSHDATA2)
        );
        assert_eq!(minimal_push_opcode(&vec![7; MAX_ELEMENT_SIZE + 1]), None);
        assert!(is_minimal_push(1, &[17]));
        assert!(!is_minimal_push(1, &[5]));
        assert!(!is_minimal_push(OP_PUSHDATA1, &[7; 75]));
    }

    #[test]
    fn builder_encodings() {
        let b = |d: &[u8]| {
            Builder::new()
                .push_slice(d)
                .unwrap()
                .into_script()
                .into_bytes()
        };
        assert_eq!(b(&[]), vec![OP_0]);
        assert_eq!(b(&[3]), vec![0x53]);
        assert_eq!(b(&[0x81]), vec![OP_1NEGATE]);
        assert_eq!(b(&[0x80]), vec![1, 0x80]);
        assert_eq!(b(&[9; 76])[..2], [OP_PUSHDATA1, 76]);
        assert_eq!(b(&[9; 256])[..3], [OP_PUSHDATA2, 0, 1]);
        assert_eq!(b(&vec![9; MAX_ELEMENT_SIZE]).len(), MAX_ELEMENT_SIZE + 3);
        assert_eq!(
            Builder::new().push_slice(&vec![9; MAX_ELEMENT_SIZE + 1]),
            Err(BuildError::PushTooLong(MAX_ELEMENT_SIZE + 1))
        );
        let ints = |n| Builder::new().push_int(n).into_script().into_bytes();
        assert_eq!(ints(0), vec![OP_0]);
        assert_eq!(ints(-1), vec![OP_1NEGATE]);
        assert_eq!(ints(1), vec![OP_1]);
        assert_eq!(ints(16), vec![OP_16]);
        assert_eq!(ints(17), vec![1, 17]);
        assert_eq!(ints(-2), vec![1, 0x82]);
        assert_eq!(ints(128), vec![2, 0x80, 0x00]);
        assert_eq!(ints(-128), vec![2, 0x80, 0x80]);
        assert_eq!(ints(500_000), vec![3, 0x20, 0xa1, 0x07]);
        assert_eq!(
            ints(i64::from(u32::MAX)),
            vec![5, 0xff, 0xff, 0xff, 0xff, 0x00]
        );
        assert_eq!(
            Builder::new()
                .push_array(&[0xaa; 20])
                .into_script()
                .into_bytes()[..2],
            [20, 0xaa]
        );
    }

    #[test]
    fn script_numbers() {
        for (n, hex) in [
            (0i64, ""),
            (1, "01"),
            (-1, "81"),
            (127, "7f"),
            (128, "8000"),
            (-128, "8080"),
            (255, "ff00"),
            (256, "0001"),
            (-256, "0081"),
            (0x7fff_ffff, "ffffff7f"),
            (0x8000_0000, "0000008000"),
            (-0x8000_0000, "0000008080"),
            (i64::MAX, "ffffffffffffff7f"),
            (-i64::MAX, "ffffffffffffffff"),
        ] {
            assert_eq!(crate::hash::to_hex(&encode_script_num(n)), hex, "{n}");
            assert_eq!(
                decode_script_num(&from_hex(hex).unwrap(), 8),
                Ok(n),
                "{hex}"
            );
        }
        for bad in ["00", "80", "0100", "0180", "ff0000"] {
            assert_eq!(
                decode_script_num(&from_hex(bad).unwrap(), 8),
                Err(ScriptNumError::NonMinimal),
                "{bad}"
            );
        }
        assert_eq!(decode_script_num(&[1, 2, 3, 4, 5], 5), Ok(0x05_0403_0201));
        assert_eq!(
            decode_script_num(&[1, 2, 3, 4, 5, 6], 5),
            Err(ScriptNumError::TooLong { len: 6, max: 5 })
        );
        assert_eq!(
            decode_script_num(&[1; 9], 20),
            Err(ScriptNumError::TooLong { len: 9, max: 8 })
        );
    }

    #[test]
    fn push_only_and_unspendable() {
        assert!(script("00 4f 51 60 02abcd".replace(' ', "").as_str()).is_push_only());
        assert!(Script::default().is_push_only());
        assert!(!script("0050").is_push_only(), "OP_RESERVED is not a push");
        assert!(!script("0076").is_push_only());
        assert!(script("6a").is_provably_unspendable());
        assert!(script("6a0401020304").is_provably_unspendable());
        assert!(
            script("63ba68").is_provably_unspendable(),
            "unknown opcode in any branch"
        );
        assert!(
            script("4e00000000").is_provably_unspendable(),
            "no OP_PUSHDATA4"
        );
        assert!(Script::new(vec![OP_DUP; MAX_SCRIPT_PUBKEY_SIZE + 1]).is_provably_unspendable());
        assert!(!Script::new(vec![OP_DUP; MAX_SCRIPT_PUBKEY_SIZE]).is_provably_unspendable());
        assert!(
            !script("76a96a").is_provably_unspendable(),
            "OP_RETURN later may sit in an unexecuted branch"
        );
    }

    proptest! {
        #[test]
        fn parser_never_panics_and_offsets_advance(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = Script::new(bytes);
            let mut it = s.instructions();
            let mut last = 0;
            while let Some(r) = it.next_with_opcode() {
                if r.is_err() { break; }
                prop_assert!(it.offset() > last || (last == 0 && it.offset() > 0));
                last = it.offset();
            }
            let _ = s.to_string();
            let _ = s.is_provably_unspendable();
        }

        #[test]
        fn builder_output_parses_back(items in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300).prop_map(Ok),
                any::<i64>().prop_map(Err),
            ], 0..20)) {
            let mut b = Builder::new();
            let mut expect: Vec<Vec<u8>> = Vec::new();
            for item in &items {
                match item {
                    Ok(data) => { b = b.push_slice(data).unwrap(); expect.push(data.clone()); }
                    Err(n) => { b = b.push_int(*n); expect.push(encode_script_num(*n)); }
                }
            }
            let s = b.into_script();
            let mut it = s.instructions();
            let mut got = Vec::new();
            while let Some(r) = it.next_with_opcode() {
                let (op, ins) = r.unwrap();
                let data = match ins {
                    Instruction::Push(d) => d.to_vec(),
                    Instruction::Op(OP_1NEGATE) => vec![0x81],
                    Instruction::Op(n @ OP_1..=OP_16) => vec![n - OP_1 + 1],
                    Instruction::Op(other) => panic!("unexpected opcode {other:#x}"),
                };
                prop_assert!(is_minimal_push(op, &data));
                got.push(data);
            }
            prop_assert_eq!(got, expect);
        }

        #[test]
        fn script_num_roundtrip(n in any::<i64>().prop_filter("i64::MIN has no 8-byte form", |n| *n != i64::MIN)) {
            let e = encode_script_num(n);
            prop_assert!(e.len() <= 8);
            prop_assert_eq!(decode_script_num(&e, 8), Ok(n));
        }
    }
}
