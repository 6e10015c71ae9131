//! Proof of work: 256-bit integers, targets and their compact `bits` form, chain work and
//! difficulty retargeting.
//!
//! A block hash is read as a 256-bit little-endian number (byte 0 least significant, so the
//! displayed, byte-reversed hash shows proof of work as leading zeros) and must not exceed
//! the target its header's `bits` encode. The compact encoding is Bitcoin's, bit for bit.

use core::cmp::Ordering;
use core::fmt;

use crate::hash::BlockHash;
use crate::params::Params;

/// An unsigned 256-bit integer: four 64-bit limbs, least significant first.
///
/// Only the operations consensus needs; every one is total (no panics): those that can
/// overflow return `Option`, shifts of 256 bits or more give zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct U256([u64; 4]);

impl U256 {
    pub const ZERO: Self = Self([0; 4]);
    pub const ONE: Self = Self([1, 0, 0, 0]);
    pub const MAX: Self = Self([u64::MAX; 4]);

    pub const fn from_u64(v: u64) -> Self {
        Self([v, 0, 0, 0])
    }

    /// From limbs, least significant first.
    pub const fn from_limbs(limbs: [u64; 4]) -> Self {
        Self(limbs)
    }

    pub const fn to_limbs(self) -> [u64; 4] {
        self.0
    }

    /// From 32 bytes, least significant byte first (how a block hash is read).
    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(b);
        }
        Self(limbs)
    }

    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// From 32 bytes, most significant byte first (how a target is usually written).
    pub fn from_be_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Self::from_le_bytes(bytes)
    }

    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 4]
    }

    /// The least significant 64 bits.
    pub const fn low_u64(&self) -> u64 {
        self.0[0]
    }

    /// Number of significant bits (0 for zero, 256 for values with the top bit set).
    pub fn bits(&self) -> u32 {
        let mut n: u32 = 256;
        for limb in self.0.iter().rev() {
            if *limb != 0 {
                // n >= 64 here and leading_zeros < 64.
                return n.saturating_sub(limb.leading_zeros());
            }
            n = n.saturating_sub(64);
        }
        0
    }

    /// Bit `i` (0 = least significant); false for `i >= 256`.
    fn bit(&self, i: u32) -> bool {
        let limb = self.0.get((i / 64) as usize).copied().unwrap_or(0);
        (limb >> (i % 64)) & 1 == 1
    }

    /// Shift left; bits shifted past bit 255 are lost, `shift >= 256` gives zero.
    #[must_use]
    pub fn shl_bits(self, shift: u32) -> Self {
        let limb_shift = (shift / 64) as usize;
        let bit_shift = shift % 64;
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let Some(src) = i.checked_sub(limb_shift) else {
                continue;
            };
            let lo = self.0.get(src).copied().unwrap_or(0);
            let carry = match src.checked_sub(1) {
                Some(prev) if bit_shift != 0 => {
                    self.0.get(prev).copied().unwrap_or(0) >> 64u32.saturating_sub(bit_shift)
                }
                _ => 0,
            };
            *o = (lo << bit_shift) | carry;
        }
        Self(out)
    }

    /// Shift right; `shift >= 256` gives zero.
    #[must_use]
    pub fn shr_bits(self, shift: u32) -> Self {
        let limb_shift = (shift / 64) as usize;
        let bit_shift = shift % 64;
        let mut out = [0u64; 4];
        for (i, o) in out.iter_mut().enumerate() {
            let Some(src) = i.checked_add(limb_shift) else {
                continue;
            };
            let lo = self.0.get(src).copied().unwrap_or(0);
            let carry = match src.checked_add(1) {
                Some(next) if bit_shift != 0 => {
                    self.0.get(next).copied().unwrap_or(0) << 64u32.saturating_sub(bit_shift)
                }
                _ => 0,
            };
            *o = (lo >> bit_shift) | carry;
        }
        Self(out)
    }

    /// `self + rhs` and whether it wrapped past 2^256.
    pub fn overflowing_add(self, rhs: Self) -> (Self, bool) {
        let mut out = [0u64; 4];
        let mut carry = false;
        for ((o, a), b) in out.iter_mut().zip(self.0).zip(rhs.0) {
            let (s1, c1) = a.overflowing_add(b);
            let (s2, c2) = s1.overflowing_add(u64::from(carry));
            *o = s2;
            carry = c1 || c2;
        }
        (Self(out), carry)
    }

    /// `self - rhs` and whether it wrapped below zero.
    pub fn overflowing_sub(self, rhs: Self) -> (Self, bool) {
        let mut out = [0u64; 4];
        let mut borrow = false;
        for ((o, a), b) in out.iter_mut().zip(self.0).zip(rhs.0) {
            let (d1, b1) = a.overflowing_sub(b);
            let (d2, b2) = d1.overflowing_sub(u64::from(borrow));
            *o = d2;
            borrow = b1 || b2;
        }
        (Self(out), borrow)
    }

    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        match self.overflowing_add(rhs) {
            (v, false) => Some(v),
            (_, true) => None,
        }
    }

    pub fn saturating_add(self, rhs: Self) -> Self {
        self.checked_add(rhs).unwrap_or(Self::MAX)
    }

    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        match self.overflowing_sub(rhs) {
            (v, false) => Some(v),
            (_, true) => None,
        }
    }

    /// Bitwise complement (`2^256 - 1 - self`).
    #[must_use]
    pub fn complement(self) -> Self {
        Self(self.0.map(|l| !l))
    }

    /// `self * rhs` as a 320-bit value: the 256-bit low part and the high limb.
    fn widening_mul_u64(self, rhs: u64) -> (Self, u64) {
        let mut out = [0u64; 4];
        let mut carry: u64 = 0;
        for (o, a) in out.iter_mut().zip(self.0) {
            // a * rhs + carry <= (2^64-1)^2 + 2^64-1 < 2^128: cannot overflow a u128.
            let wide = u128::from(a)
                .wrapping_mul(u128::from(rhs))
                .wrapping_add(u128::from(carry));
            *o = wide as u64;
            carry = (wide >> 64) as u64;
        }
        (Self(out), carry)
    }

    pub fn checked_mul_u64(self, rhs: u64) -> Option<Self> {
        match self.widening_mul_u64(rhs) {
            (v, 0) => Some(v),
            _ => None,
        }
    }

    /// Quotient and remainder of division by a `u64`; `None` when dividing by zero.
    pub fn div_rem_u64(self, rhs: u64) -> Option<(Self, u64)> {
        let (q, r) = div_limbs_u64(self.0, 0, rhs)?;
        Some((Self(q), r))
    }

    /// `self * mul / div`, exact in a 320-bit intermediate; `None` when `div` is zero or the
    /// quotient does not fit 256 bits.
    pub fn mul_div_u64(self, mul: u64, div: u64) -> Option<Self> {
        let (low, high) = self.widening_mul_u64(mul);
        // high < div is exactly the condition for the quotient to fit 256 bits.
        if high >= div {
            return None;
        }
        let (q, _) = div_limbs_u64(low.0, high, div)?;
        Some(Self(q))
    }

    /// Quotient and remainder of full 256-bit division; `None` when dividing by zero.
    ///
    /// Schoolbook binary long division: at most 256 shift-compare-subtract steps.
    pub fn div_rem(self, rhs: Self) -> Option<(Self, Self)> {
        if rhs.is_zero() {
            return None;
        }
        if self < rhs {
            return Some((Self::ZERO, self));
        }
        let mut quotient = Self::ZERO;
        let mut rem = Self::ZERO;
        for i in (0..self.bits()).rev() {
            // rem < rhs before the shift, so the shift loses no bit unless rhs has its top
            // bit set; track the bit shifted out to keep the comparison exact.
            let top = rem.bit(255);
            rem = rem.shl_bits(1);
            if self.bit(i) {
                rem.0[0] |= 1;
            }
            if top || rem >= rhs {
                // Wrapping is exact: the true value rem + 2^256·top >= rhs.
                rem = rem.overflowing_sub(rhs).0;
                quotient = quotient.set_bit(i);
            }
        }
        Some((quotient, rem))
    }

    pub fn checked_div(self, rhs: Self) -> Option<Self> {
        self.div_rem(rhs).map(|(q, _)| q)
    }

    #[must_use]
    fn set_bit(self, i: u32) -> Self {
        let mut out = self;
        if let Some(limb) = out.0.get_mut((i / 64) as usize) {
            *limb |= 1u64 << (i % 64);
        }
        out
    }
}

/// Divides the 320-bit number `high ‖ limbs` by `div`, limb by limb from the top.
fn div_limbs_u64(limbs: [u64; 4], high: u64, div: u64) -> Option<([u64; 4], u64)> {
    if div == 0 {
        return None;
    }
    let mut q = [0u64; 4];
    let mut rem = u128::from(high);
    for (qi, li) in q.iter_mut().zip(limbs).rev() {
        // rem < div <= 2^64 - 1 after every step, so (rem << 64) | li fits a u128 and the
        // quotient digit fits a u64 (for the first step, the caller guarantees high < div
        // or high == 0).
        let cur = (rem << 64) | u128::from(li);
        let d = u128::from(div);
        *qi = cur.checked_div(d)? as u64;
        rem = cur.checked_rem(d)?;
    }
    Some((q, rem as u64))
}

impl Ord for U256 {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for U256 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for U256 {
    /// 64 hex digits, most significant first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hash::to_hex(&self.to_be_bytes()))
    }
}

impl fmt::Debug for U256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "U256({self})")
    }
}

/// Why a compact `bits` value does not encode a usable target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactError {
    /// The sign bit (0x00800000) is set on a non-zero mantissa.
    Negative(u32),
    /// The value does not fit 256 bits.
    Overflow(u32),
}

impl fmt::Display for CompactError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Negative(b) => write!(f, "compact bits {b:#010x} encode a negative target"),
            Self::Overflow(b) => write!(f, "compact bits {b:#010x} encode a target above 2^256"),
        }
    }
}

impl std::error::Error for CompactError {}

/// A proof-of-work target: a block hash, read as a 256-bit little-endian number, must not
/// exceed it. Larger targets are easier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Target(U256);

impl Target {
    pub const ZERO: Self = Self(U256::ZERO);
    pub const MAX: Self = Self(U256::MAX);

    pub const fn from_u256(v: U256) -> Self {
        Self(v)
    }

    pub const fn to_u256(self) -> U256 {
        self.0
    }

    /// Decodes Bitcoin's compact form: exponent `bits >> 24` (a byte count), sign bit
    /// `0x00800000`, mantissa `bits & 0x007fffff`; value = mantissa · 256^(exponent − 3).
    pub fn from_compact(bits: u32) -> Result<Self, CompactError> {
        let size = bits >> 24;
        let mut word = bits & 0x007f_ffff;
        let value = if size <= 3 {
            // size <= 3: the shift is 0, 8, 16 or 24 bits.
            word >>= 8u32.saturating_mul(3u32.saturating_sub(size));
            U256::from_u64(u64::from(word))
        } else {
            U256::from_u64(u64::from(word)).shl_bits(8u32.saturating_mul(size.saturating_sub(3)))
        };
        if word != 0 && bits & 0x0080_0000 != 0 {
            return Err(CompactError::Negative(bits));
        }
        if word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32)) {
            return Err(CompactError::Overflow(bits));
        }
        Ok(Self(value))
    }

    /// Encodes to the compact form, rounding down to a 23-bit mantissa (the canonical
    /// encoding: the mantissa's top byte is non-zero unless the value is zero, and its sign
    /// bit is clear).
    pub fn to_compact(self) -> u32 {
        // bits() <= 256, so size <= 32.
        let mut size = self.0.bits().saturating_add(7) / 8;
        let mut compact: u32 = if size <= 3 {
            (self.0.low_u64() << 8u32.saturating_mul(3u32.saturating_sub(size))) as u32
        } else {
            self.0
                .shr_bits(8u32.saturating_mul(size.saturating_sub(3)))
                .low_u64() as u32
        };
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size = size.saturating_add(1);
        }
        compact | (size << 24)
    }

    /// Whether `hash`, read as a little-endian 256-bit number, is at most this target.
    pub fn is_met_by(&self, hash: &BlockHash) -> bool {
        U256::from_le_bytes(hash.to_byte_array()) <= self.0
    }

    /// The expected number of hashes to find a block at this target.
    pub fn work(&self) -> Work {
        Work::from_target(*self)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", self.0)
    }
}

/// Accumulated proof of work: the expected number of hashes behind a block or a chain.
/// The best chain is the valid chain with the most work.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Work(U256);

impl Work {
    pub const ZERO: Self = Self(U256::ZERO);

    pub const fn from_u256(v: U256) -> Self {
        Self(v)
    }

    pub const fn to_u256(self) -> U256 {
        self.0
    }

    /// `floor(2^256 / (target + 1))`, computed as `!target / (target + 1) + 1`
    /// (`2^256 - 1 - t = !t`, and `(2^256 - 1 - t) / (t + 1) + 1 = floor(2^256 / (t + 1))`).
    /// The maximum target gives work 1; the zero target (no hash meets it) would give 2^256,
    /// which does not fit, so it saturates at `U256::MAX`.
    pub fn from_target(target: Target) -> Self {
        let t = target.0;
        let Some(t1) = t.checked_add(U256::ONE) else {
            return Self(U256::ONE);
        };
        // t1 != 0 here, so the division is defined.
        let q = t.complement().checked_div(t1).unwrap_or(U256::MAX);
        Self(q.saturating_add(U256::ONE))
    }

    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        self.0.checked_add(rhs.0).map(Self)
    }

    /// Sum, saturating at `2^256 − 1` (unreachable by any real chain).
    #[must_use]
    pub fn saturating_add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }

    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        self.0.checked_sub(rhs.0).map(Self)
    }

    /// 32 bytes, little-endian, for storage.
    pub fn to_le_bytes(self) -> [u8; 32] {
        self.0.to_le_bytes()
    }

    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        Self(U256::from_le_bytes(bytes))
    }
}

impl fmt::Display for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Work {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Work({})", self.0)
    }
}

/// Why a header's proof of work is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowError {
    /// `bits` is not a valid compact target.
    BadBits(CompactError),
    /// `bits` encodes zero, a target no hash meets.
    ZeroTarget(u32),
    /// `bits` encodes a target easier than the network's limit.
    AboveLimit { bits: u32, limit: Target },
    /// The hash exceeds the target.
    HighHash { hash: BlockHash, target: Target },
}

impl PowError {
    /// Bitcoin-style reason: `bad-diffbits` for a bad target, `high-hash` for a bad hash.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::BadBits(_) | Self::ZeroTarget(_) | Self::AboveLimit { .. } => "bad-diffbits",
            Self::HighHash { .. } => "high-hash",
        }
    }
}

impl fmt::Display for PowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBits(e) => write!(f, "bad-diffbits: {e}"),
            Self::ZeroTarget(b) => write!(
                f,
                "bad-diffbits: compact bits {b:#010x} encode a zero target"
            ),
            Self::AboveLimit { bits, limit } => {
                write!(
                    f,
                    "bad-diffbits: compact bits {bits:#010x} encode a target above the limit {limit}"
                )
            }
            Self::HighHash { hash, target } => {
                write!(f, "high-hash: block hash {hash} exceeds target {target}")
            }
        }
    }
}

impl std::error::Error for PowError {}

/// Checks that `bits` encodes a valid, non-zero target no easier than `pow_limit`, and that
/// `hash` meets it.
pub fn check_proof_of_work(hash: &BlockHash, bits: u32, pow_limit: Target) -> Result<(), PowError> {
    let target = Target::from_compact(bits).map_err(PowError::BadBits)?;
    if target == Target::ZERO {
        return Err(PowError::ZeroTarget(bits));
    }
    if target > pow_limit {
        return Err(PowError::AboveLimit {
            bits,
            limit: pow_limit,
        });
    }
    if !target.is_met_by(hash) {
        return Err(PowError::HighHash {
            hash: *hash,
            target,
        });
    }
    Ok(())
}

/// Whether the block at `height` starts a new difficulty period (and may change `bits`).
/// Height 0 (the genesis) never does; nor does any height on a network without retargeting.
pub fn is_retarget_height(params: &Params, height: u32) -> bool {
    !params.no_retargeting && height != 0 && height.checked_rem(params.retarget_interval) == Some(0)
}

/// For a retarget height `h`, the height of the block whose time opens the measured span.
///
/// The span runs from the last block of the period before the previous one (height
/// `h − interval − 1`) to the last block of the previous period (`h − 1`): `interval` block
/// gaps, and consecutive spans overlap by one block, which closes the "time warp" that
/// Bitcoin's non-overlapping spans allow. The first retarget (`h = interval`) measures from
/// the genesis, `interval − 1` gaps. `None` if `h` is not a retarget height.
pub fn retarget_first_height(params: &Params, height: u32) -> Option<u32> {
    if !is_retarget_height(params, height) {
        return None;
    }
    Some(
        height
            .checked_sub(params.retarget_interval)?
            .saturating_sub(1),
    )
}

/// The `bits` of the block at a retarget height, from the `bits` of its parent and the times
/// of the blocks at [`retarget_first_height`] and `height − 1`.
///
/// `new = old × actual / expected`, where `expected = retarget_interval × target_spacing` and
/// `actual = last_time − first_time` clamped to `[expected / 4, expected × 4]`; the product is
/// exact (320-bit intermediate), the quotient rounds down, a result above the network's
/// limit becomes the limit, and the result is re-encoded with [`Target::to_compact`].
/// A network with `no_retargeting` keeps `last_bits`. Blocks at other heights must carry
/// their parent's `bits` unchanged.
pub fn next_bits(
    params: &Params,
    last_bits: u32,
    first_block_time: u32,
    last_block_time: u32,
) -> Result<u32, CompactError> {
    if params.no_retargeting {
        return Ok(last_bits);
    }
    let expected =
        u64::from(params.retarget_interval).saturating_mul(u64::from(params.target_spacing));
    // Times are u32, so the difference fits an i64 exactly; a negative span clamps to the minimum.
    let span = i64::from(last_block_time).saturating_sub(i64::from(first_block_time));
    let min = expected / 4;
    let max = expected.saturating_mul(4);
    let actual = u64::try_from(span).unwrap_or(0).clamp(min, max);
    let old = Target::from_compact(last_bits)?;
    let new = match old.0.mul_div_u64(actual, expected) {
        Some(v) if Target(v) <= params.pow_limit => Target(v),
        // Overflow means the result is above 2^256, hence above the limit; expected == 0
        // (a misconfigured network) keeps the limit too.
        _ => params.pow_limit,
    };
    Ok(new.to_compact())
}

/// Why the required `bits` of a block could not be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetargetError {
    /// The parent's `bits` do not decode.
    BadBits(CompactError),
    /// The time of the ancestor at this height was not available.
    MissingAncestor(u32),
}

impl fmt::Display for RetargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadBits(e) => write!(f, "parent {e}"),
            Self::MissingAncestor(h) => {
                write!(f, "time of the ancestor at height {h} is not known")
            }
        }
    }
}

impl std::error::Error for RetargetError {}

/// The `bits` the block at `height` (> 0) must carry: its parent's `bits`, except at a retarget
/// height, where it is [`next_bits`] over the span from the ancestor at
/// [`retarget_first_height`] to the parent. `time_at_height` looks up an ancestor's time on the
/// block's own chain; it is called at most once.
pub fn required_bits(
    params: &Params,
    height: u32,
    parent_bits: u32,
    parent_time: u32,
    time_at_height: impl FnOnce(u32) -> Option<u32>,
) -> Result<u32, RetargetError> {
    let Some(first) = retarget_first_height(params, height) else {
        return Ok(parent_bits);
    };
    let first_time = time_at_height(first).ok_or(RetargetError::MissingAncestor(first))?;
    next_bits(params, parent_bits, first_time, parent_time).map_err(RetargetError::BadBits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn u(hex: &str) -> U256 {
        let v = crate::hash::from_hex(hex).unwrap();
        let mut b = [0u8; 32];
        b[32 - v.len()..].copy_from_slice(&v);
        U256::from_be_bytes(b)
    }

    fn to_u128(v: U256) -> Option<u128> {
        let l = v.to_limbs();
        (l[2] == 0 && l[3] == 0).then(|| u128::from(l[0]) | (u128::from(l[1]) << 64))
    }

    fn from_u128(v: u128) -> U256 {
        U256::from_limbs([v as u64, (v >> 64) as u64, 0, 0])
    }

    #[test]
    fn bitcoin_compact_vectors() {
        // From Bitcoin Core's arith_uint256 tests (SetCompact / GetCompact).
        for zero in [
            0u32,
            0x0012_3456,
            0x0100_3456,
            0x0200_0056,
            0x0300_0000,
            0x0400_0000,
            0x0092_3456,
            0x0180_3456,
            0x0280_0056,
            0x0380_0000,
            0x0480_0000,
        ] {
            assert_eq!(Target::from_compact(zero), Ok(Target::ZERO), "{zero:#x}");
        }
        let cases: [(u32, &str, u32); 6] = [
            (0x0112_3456, "12", 0x0112_0000),
            (0x0212_3456, "1234", 0x0212_3400),
            (0x0312_3456, "123456", 0x0312_3456),
            (0x0412_3456, "12345600", 0x0412_3456),
            (0x0500_9234, "92340000", 0x0500_9234),
            (
                0x2012_3456,
                "1234560000000000000000000000000000000000000000000000000000000000",
                0x2012_3456,
            ),
        ];
        for (bits, hex, back) in cases {
            let t = Target::from_compact(bits).unwrap();
            assert_eq!(t.to_u256(), u(hex), "{bits:#x}");
            assert_eq!(t.to_compact(), back, "{bits:#x}");
        }
        assert_eq!(
            Target::from_compact(0x01fe_dcba),
            Err(CompactError::Negative(0x01fe_dcba))
        );
        assert_eq!(
            Target::from_compact(0x0492_3456),
            Err(CompactError::Negative(0x0492_3456))
        );
        assert_eq!(
            Target::from_compact(0xff12_3456),
            Err(CompactError::Overflow(0xff12_3456))
        );
        // The sign bit forces a longer encoding.
        assert_eq!(
            Target::from_u256(U256::from_u64(0x80)).to_compact(),
            0x0200_8000
        );
        assert_eq!(Target::ZERO.to_compact(), 0);
    }

    #[test]
    fn overflow_boundaries() {
        // size 34 with a one-byte mantissa fits; 35 does not; 33 with two bytes fits; 34 does not.
        assert!(Target::from_compact(0x2200_0001).is_ok());
        assert_eq!(
            Target::from_compact(0x2300_0001),
            Err(CompactError::Overflow(0x2300_0001))
        );
        assert!(Target::from_compact(0x2100_0100).is_ok());
        assert_eq!(
            Target::from_compact(0x2200_0100),
            Err(CompactError::Overflow(0x2200_0100))
        );
        assert!(Target::from_compact(0x2001_0000).is_ok());
        assert_eq!(
            Target::from_compact(0x2101_0000),
            Err(CompactError::Overflow(0x2101_0000))
        );
        // Overflowing exponent with a zero mantissa is zero, as in Bitcoin.
        assert_eq!(Target::from_compact(0xff00_0000), Ok(Target::ZERO));
    }

    #[test]
    fn genesis_work() {
        // Bitcoin's genesis (bits 0x1d00ffff) has chain work 0x100010001.
        let t = Target::from_compact(0x1d00_ffff).unwrap();
        assert_eq!(t.work().to_u256(), U256::from_u64(0x1_0001_0001));
        assert_eq!(Target::MAX.work().to_u256(), U256::ONE);
        assert_eq!(Target::ZERO.work().to_u256(), U256::MAX);
        // Target 2^255 - 1: exactly 2 hashes expected.
        assert_eq!(
            Target::from_u256(U256::MAX.shr_bits(1)).work().to_u256(),
            U256::from_u64(2)
        );
    }

    #[test]
    fn proof_of_work_checks() {
        let limit = Target::from_compact(0x207f_ffff).unwrap();
        let easy = BlockHash::ZERO;
        assert_eq!(check_proof_of_work(&easy, 0x207f_ffff, limit), Ok(()));
        assert_eq!(
            check_proof_of_work(&easy, 0x2080_0000, limit),
            Err(PowError::ZeroTarget(0x2080_0000))
        );
        assert!(matches!(
            check_proof_of_work(&easy, 0x2100_ffff, limit),
            Err(PowError::AboveLimit { .. })
        ));
        assert!(matches!(
            check_proof_of_work(&easy, 0x04923456, limit),
            Err(PowError::BadBits(CompactError::Negative(_)))
        ));
        assert_eq!(
            check_proof_of_work(&easy, 0, limit),
            Err(PowError::ZeroTarget(0))
        );
        // A hash exactly equal to the target passes; one more fails.
        let target = Target::from_compact(0x1f00_ffff).unwrap();
        let at = BlockHash::from_byte_array(target.to_u256().to_le_bytes());
        assert_eq!(check_proof_of_work(&at, 0x1f00_ffff, limit), Ok(()));
        let above = BlockHash::from_byte_array(
            target
                .to_u256()
                .checked_add(U256::ONE)
                .unwrap()
                .to_le_bytes(),
        );
        let err = check_proof_of_work(&above, 0x1f00_ffff, limit).unwrap_err();
        assert_eq!(err.reason(), "high-hash");
        assert!(err.to_string().contains(&above.to_string()), "{err}");
    }

    #[test]
    fn shifts_and_division_edges() {
        assert_eq!(U256::ONE.shl_bits(255).shr_bits(255), U256::ONE);
        assert_eq!(U256::ONE.shl_bits(256), U256::ZERO);
        assert_eq!(U256::MAX.shr_bits(256), U256::ZERO);
        assert_eq!(U256::MAX.shr_bits(192), U256::from_u64(u64::MAX));
        assert_eq!(U256::MAX.bits(), 256);
        assert_eq!(U256::ZERO.bits(), 0);
        assert_eq!(U256::ONE.div_rem(U256::ZERO), None);
        assert_eq!(U256::ONE.div_rem_u64(0), None);
        assert_eq!(U256::MAX.div_rem(U256::MAX), Some((U256::ONE, U256::ZERO)));
        assert_eq!(
            U256::MAX.div_rem(U256::ONE.shl_bits(255)),
            Some((U256::ONE, U256::MAX.shr_bits(1)))
        );
        assert_eq!(U256::MAX.checked_add(U256::ONE), None);
        assert_eq!(U256::ZERO.checked_sub(U256::ONE), None);
        assert_eq!(U256::MAX.checked_mul_u64(2), None);
        assert_eq!(U256::MAX.mul_div_u64(4, 4), Some(U256::MAX));
        assert_eq!(U256::MAX.mul_div_u64(5, 4), None);
        assert_eq!(U256::MAX.mul_div_u64(1, 0), None);
        let bytes: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(U256::from_le_bytes(bytes).to_le_bytes(), bytes);
        assert_eq!(U256::from_be_bytes(bytes).to_be_bytes(), bytes);
        assert_eq!(U256::from_le_bytes(bytes).low_u64(), 0x0706_0504_0302_0100);
    }

    #[test]
    fn retarget_heights() {
        let p = Params::main();
        assert!(!is_retarget_height(&p, 0));
        assert!(!is_retarget_height(&p, 2015));
        assert!(is_retarget_height(&p, 2016));
        assert!(!is_retarget_height(&p, 2017));
        assert!(is_retarget_height(&p, 4032));
        assert_eq!(retarget_first_height(&p, 2016), Some(0));
        assert_eq!(retarget_first_height(&p, 4032), Some(2015));
        assert_eq!(retarget_first_height(&p, 6048), Some(4031));
        assert_eq!(retarget_first_height(&p, 4031), None);
        let r = Params::regtest();
        assert!(!is_retarget_height(&r, 2016));
        assert_eq!(retarget_first_height(&r, 2016), None);
        assert_eq!(next_bits(&r, 0x207f_ffff, 0, u32::MAX), Ok(0x207f_ffff));
    }

    #[test]
    fn required_bits_looks_up_the_span_start() {
        let p = Params::main();
        let never = |_: u32| -> Option<u32> { panic!("no lookup expected") };
        assert_eq!(
            required_bits(&p, 2015, 0x1d00_ffff, 5, never),
            Ok(0x1d00_ffff)
        );
        let mut asked = None;
        let bits = required_bits(&p, 4032, 0x1d00_ffff, 1_000 + 2016 * 60, |h| {
            asked = Some(h);
            Some(1_000)
        });
        assert_eq!((bits, asked), (Ok(0x1d00_ffff), Some(2015)));
        assert_eq!(
            required_bits(&p, 2016, 0x1d00_ffff, 0, |_| None),
            Err(RetargetError::MissingAncestor(0))
        );
        assert_eq!(
            required_bits(&p, 2016, 0x0492_3456, 0, |_| Some(0)),
            Err(RetargetError::BadBits(CompactError::Negative(0x0492_3456)))
        );
        assert_eq!(
            required_bits(&Params::regtest(), 2016, 0x207f_ffff, 0, never),
            Ok(0x207f_ffff)
        );
    }

    #[test]
    fn retarget_clamps_and_caps() {
        let p = Params::main();
        let expected = 2016 * 60;
        let bits = 0x1d00_ffff;
        let t = Target::from_compact(bits).unwrap().to_u256();
        let at = |span: u32| {
            Target::from_compact(next_bits(&p, bits, 1_000_000, 1_000_000 + span).unwrap()).unwrap()
        };
        // On schedule: unchanged.
        assert_eq!(at(expected).to_u256(), t);
        // Twice as slow: target doubles (easier).
        assert_eq!(at(2 * expected).to_u256(), t.checked_mul_u64(2).unwrap());
        // Clamped at x4 and x1/4, and time running backwards counts as the minimum.
        assert_eq!(at(4 * expected), at(100 * expected));
        assert_eq!(at(4 * expected).to_u256(), t.checked_mul_u64(4).unwrap());
        assert_eq!(at(expected / 4), at(0));
        assert_eq!(
            next_bits(&p, bits, 2_000_000, 1_000_000),
            next_bits(&p, bits, 0, 0)
        );
        assert_eq!(at(expected / 4).to_u256(), t.div_rem_u64(4).unwrap().0);
        // At the limit, slower blocks cannot make it easier.
        assert_eq!(
            next_bits(&p, p.pow_limit_bits, 0, u32::MAX),
            Ok(p.pow_limit_bits)
        );
        // A product above 2^256 is capped, not wrapped.
        let wide = Params {
            pow_limit: Target::MAX,
            ..Params::main()
        };
        assert_eq!(
            next_bits(&wide, 0x2100_ffff, 0, u32::MAX),
            Ok(Target::MAX.to_compact())
        );
        assert_eq!(
            next_bits(&p, 0x0492_3456, 0, 1),
            Err(CompactError::Negative(0x0492_3456))
        );
    }

    fn arb_u256() -> impl Strategy<Value = U256> {
        (any::<[u64; 4]>(), 0u32..=256).prop_map(|(l, shift)| U256::from_limbs(l).shr_bits(shift))
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128(a: u128, b: u128, m: u64, d in 1u64..) {
            let (ua, ub) = (from_u128(a), from_u128(b));
            prop_assert_eq!(ua.cmp(&ub), a.cmp(&b));
            if let Some(s) = a.checked_add(b) { prop_assert_eq!(to_u128(ua.checked_add(ub).unwrap()), Some(s)); }
            prop_assert_eq!(ua.checked_sub(ub).and_then(to_u128), a.checked_sub(b));
            let got = ua.div_rem(ub).map(|(q, r)| (to_u128(q).unwrap(), to_u128(r).unwrap()));
            prop_assert_eq!(got, a.checked_div(b).zip(a.checked_rem(b)));
            let (q, r) = ua.div_rem_u64(d).unwrap();
            prop_assert_eq!((to_u128(q), u128::from(r)), (Some(a / u128::from(d)), a % u128::from(d)));
            if let Some(p) = a.checked_mul(u128::from(m)) {
                prop_assert_eq!(to_u128(ua.checked_mul_u64(m).unwrap()), Some(p));
                prop_assert_eq!(to_u128(ua.mul_div_u64(m, d).unwrap()), Some(p / u128::from(d)));
            }
        }

        #[test]
        fn division_identity(a in arb_u256(), b in arb_u256()) {
            match a.div_rem(b) {
                None => prop_assert!(b.is_zero()),
                Some((q, r)) => {
                    prop_assert!(r < b);
                    // q * b + r == a, checked limb-wise through a u64 divisor when b fits one.
                    if b.to_limbs()[1..] == [0, 0, 0] {
                        let back = q.checked_mul_u64(b.low_u64()).and_then(|p| p.checked_add(r));
                        prop_assert_eq!(back, Some(a));
                    }
                    // q = a / b implies a - r is divisible by b with quotient q.
                    let ar = a.checked_sub(r).unwrap();
                    prop_assert_eq!(ar.div_rem(b), Some((q, U256::ZERO)));
                }
            }
        }

        #[test]
        fn shift_roundtrip(a in arb_u256(), s in 0u32..300) {
            let back = a.shl_bits(s).shr_bits(s);
            if s < 256 && a.bits() + s <= 256 { prop_assert_eq!(back, a); }
            prop_assert_eq!(a.shr_bits(s).shl_bits(s) <= a, true);
        }

        #[test]
        fn next_bits_matches_a_u128_model(mantissa in 1u32..0x80_0000, exponent in 3u32..=8, first: u32, last: u32) {
            // Targets below 2^64 keep old × actual (actual < 2^19) inside a u128.
            let p = Params::main();
            let bits = (exponent << 24) | mantissa;
            let old = u128::from(mantissa) << (8 * (exponent - 3));
            let expected = 2016u128 * 60;
            let span = (i64::from(last) - i64::from(first)).clamp(expected as i64 / 4, expected as i64 * 4) as u128;
            let new = from_u128(old * span / expected);
            prop_assert_eq!(next_bits(&p, bits, first, last), Ok(Target::from_u256(new).to_compact()));
        }

        #[test]
        fn compact_roundtrip(bits: u32) {
            // Every valid compact decodes, and its canonical re-encoding decodes to the same value.
            if let Ok(t) = Target::from_compact(bits) {
                let c = t.to_compact();
                prop_assert_eq!(Target::from_compact(c), Ok(t));
                prop_assert_eq!(Target::from_compact(c).unwrap().to_compact(), c);
            }
        }

        #[test]
        fn compact_rounds_down(a in arb_u256()) {
            let t = Target::from_u256(a);
            let back = Target::from_compact(t.to_compact()).unwrap();
            prop_assert!(back <= t);
            // At most the top 24 significant bits survive (23 when the sign bit forces a shift).
            prop_assert!(a.checked_sub(back.to_u256()).unwrap().bits() <= a.bits().saturating_sub(16));
        }

        #[test]
        fn work_is_floor_of_two_pow_256_over_target_plus_one(a in arb_u256()) {
            // Check w = floor(2^256 / (t + 1)) via w·(t+1) <= 2^256 < (w+1)·(t+1), when t + 1 fits a u64.
            let w = Target::from_u256(a).work().to_u256();
            if let Some(t1) = a.checked_add(U256::ONE).filter(|t1| t1.bits() <= 63) {
                let t1 = t1.low_u64();
                let (q, r) = U256::MAX.div_rem_u64(t1).unwrap();
                // 2^256 = MAX + 1 = q·t1 + r + 1.
                // t = 0 gives 2^256, which saturates.
                let expected = if r + 1 == t1 { q.saturating_add(U256::ONE) } else { q };
                prop_assert_eq!(w, expected);
            }
            prop_assert!(!w.is_zero());
        }
    }
}
