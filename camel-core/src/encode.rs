//! Bitcoin-style consensus encoding: little-endian integers, CompactSize lengths, and
//! decoders over byte slices that can neither panic nor be made to over-allocate.
//!
//! Decoding always reads from a slice that is already in memory, so no length prefix can
//! make us allocate more than the input holds: a sequence of `n` items must have at least
//! `n` bytes left, and pre-allocation is additionally capped at [`MAX_PREALLOC_BYTES`].

use core::fmt;

/// Upper bound on any single up-front allocation driven by a length prefix.
pub const MAX_PREALLOC_BYTES: usize = 1 << 20;

/// Why a byte string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended before the value did.
    UnexpectedEnd { needed: usize, remaining: usize },
    /// A CompactSize used more bytes than needed for its value.
    NonCanonicalCompactSize(u64),
    /// A length or count prefix exceeds the limit for that field.
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// `decode_from_slice` found bytes after the value.
    TrailingBytes(usize),
    /// A field holds a value the protocol does not allow.
    Invalid(&'static str),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd { needed, remaining } => {
                write!(
                    f,
                    "unexpected end of data: needed {needed} bytes, {remaining} left"
                )
            }
            Self::NonCanonicalCompactSize(v) => write!(f, "non-canonical compact size for {v}"),
            Self::TooLong { what, len, max } => {
                write!(f, "{what} length {len} exceeds limit {max}")
            }
            Self::TrailingBytes(n) => write!(f, "{n} trailing bytes after value"),
            Self::Invalid(what) => write!(f, "invalid {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over a byte slice.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not yet consumed.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Consumes exactly `n` bytes.
    pub fn read_bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if n > self.buf.len() {
            return Err(DecodeError::UnexpectedEnd {
                needed: n,
                remaining: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.read_bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub fn read_u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_le_bytes(self.read_array()?))
    }
    pub fn read_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.read_array()?))
    }
    pub fn read_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.read_array()?))
    }
    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_le_bytes(self.read_array()?))
    }
    pub fn read_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.read_array()?))
    }

    /// Reads a canonical CompactSize (the shortest form for its value).
    pub fn read_compact_size(&mut self) -> Result<u64, DecodeError> {
        let first = self.read_u8()?;
        let (value, min) = match first {
            0xfd => (u64::from(self.read_u16()?), 0xfd),
            0xfe => (u64::from(self.read_u32()?), 0x1_0000),
            0xff => (self.read_u64()?, 0x1_0000_0000),
            n => return Ok(u64::from(n)),
        };
        if value < min {
            return Err(DecodeError::NonCanonicalCompactSize(value));
        }
        Ok(value)
    }

    /// Reads a CompactSize length and checks it against `max` and the bytes left, each
    /// element taking at least `min_elem_size` bytes.
    pub fn read_length(
        &mut self,
        what: &'static str,
        max: usize,
        min_elem_size: usize,
    ) -> Result<usize, DecodeError> {
        let len = self.read_compact_size()?;
        if len > max as u64 {
            return Err(DecodeError::TooLong {
                what,
                len,
                max: max as u64,
            });
        }
        let len = len as usize; // fits: len <= max, a usize
        let needed = len.saturating_mul(min_elem_size);
        if needed > self.remaining() {
            return Err(DecodeError::UnexpectedEnd {
                needed,
                remaining: self.remaining(),
            });
        }
        Ok(len)
    }

    /// Reads CompactSize-prefixed bytes of at most `max` bytes.
    pub fn read_var_bytes(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<u8>, DecodeError> {
        let len = self.read_length(what, max, 1)?;
        Ok(self.read_bytes(len)?.to_vec())
    }

    /// Reads a CompactSize-prefixed sequence of at most `max` items.
    pub fn read_vec<T: Decodable>(
        &mut self,
        what: &'static str,
        max: usize,
    ) -> Result<Vec<T>, DecodeError> {
        let len = self.read_length(what, max, T::MIN_ENCODED_SIZE.max(1))?;
        let cap = len.min(
            MAX_PREALLOC_BYTES
                .checked_div(core::mem::size_of::<T>())
                .unwrap_or(MAX_PREALLOC_BYTES),
        );
        let mut out = Vec::with_capacity(cap);
        for _ in 0..len {
            out.push(T::decode(self)?);
        }
        Ok(out)
    }
}

/// Writes `n` as a CompactSize.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Size in bytes of `n` as a CompactSize.
pub fn compact_size_len(n: u64) -> usize {
    match n {
        0..=0xfc => 1,
        0xfd..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Writes CompactSize-prefixed bytes.
pub fn write_var_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_compact_size(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Writes a CompactSize-prefixed sequence.
pub fn write_vec<T: Encodable>(out: &mut Vec<u8>, items: &[T]) {
    write_compact_size(out, items.len() as u64);
    for item in items {
        item.encode(out);
    }
}

/// A value with a consensus encoding.
pub trait Encodable {
    fn encode(&self, out: &mut Vec<u8>);

    /// Length of the encoding; override when it can be computed without encoding.
    fn encoded_len(&self) -> usize {
        let mut v = Vec::new();
        self.encode(&mut v);
        v.len()
    }
}

/// A value that can be decoded from its consensus encoding.
pub trait Decodable: Sized {
    /// The fewest bytes any value of this type encodes to; bounds sequence lengths.
    const MIN_ENCODED_SIZE: usize;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
}

/// Encodes a value into a fresh vector.
pub fn encode_to_vec<T: Encodable + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    value.encode(&mut out);
    out
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error.
pub fn decode_from_slice<T: Decodable>(bytes: &[u8]) -> Result<T, DecodeError> {
    let mut r = Reader::new(bytes);
    let value = T::decode(&mut r)?;
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes(r.remaining()));
    }
    Ok(value)
}

macro_rules! impl_int {
    ($t:ty, $read:ident) => {
        impl Encodable for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn encoded_len(&self) -> usize {
                core::mem::size_of::<$t>()
            }
        }
        impl Decodable for $t {
            const MIN_ENCODED_SIZE: usize = core::mem::size_of::<$t>();
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$read()
            }
        }
    };
}
impl_int!(u8, read_u8);
impl_int!(u16, read_u16);
impl_int!(u32, read_u32);
impl_int!(i32, read_i32);
impl_int!(u64, read_u64);

impl<const N: usize> Encodable for [u8; N] {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
    fn encoded_len(&self) -> usize {
        N
    }
}

impl<const N: usize> Decodable for [u8; N] {
    const MIN_ENCODED_SIZE: usize = N;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.read_array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compact_size_boundaries() {
        for (n, len) in [
            (0u64, 1),
            (0xfc, 1),
            (0xfd, 3),
            (0xffff, 3),
            (0x1_0000, 5),
            (0xffff_ffff, 5),
            (0x1_0000_0000, 9),
            (u64::MAX, 9),
        ] {
            let mut v = Vec::new();
            write_compact_size(&mut v, n);
            assert_eq!(v.len(), len, "{n}");
            assert_eq!(compact_size_len(n), len);
            assert_eq!(Reader::new(&v).read_compact_size(), Ok(n));
        }
    }

    #[test]
    fn non_canonical_compact_size_rejected() {
        for bytes in [
            &[0xfd, 0xfc, 0x00][..],
            &[0xfe, 0xff, 0xff, 0, 0],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0],
        ] {
            assert!(matches!(
                Reader::new(bytes).read_compact_size(),
                Err(DecodeError::NonCanonicalCompactSize(_))
            ));
        }
    }

    #[test]
    fn truncated_inputs_error() {
        assert!(matches!(
            Reader::new(&[0xfd, 0x01]).read_compact_size(),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            decode_from_slice::<u32>(&[1, 2, 3]),
            Err(DecodeError::UnexpectedEnd {
                needed: 4,
                remaining: 3
            })
        ));
        assert_eq!(
            decode_from_slice::<u32>(&[1, 0, 0, 0, 9]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // Claims 2^64-1 items but carries 3 bytes: rejected before any allocation.
        let bytes = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3,
        ];
        assert!(matches!(
            Reader::new(&bytes).read_vec::<u32>("items", usize::MAX),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
        assert!(matches!(
            Reader::new(&bytes).read_var_bytes("bytes", 10),
            Err(DecodeError::TooLong { max: 10, .. })
        ));
        // Within the limit but more than the input holds.
        assert!(matches!(
            Reader::new(&[0x05, 1, 2]).read_var_bytes("bytes", 10),
            Err(DecodeError::UnexpectedEnd {
                needed: 5,
                remaining: 2
            })
        ));
        assert!(matches!(
            Reader::new(&[0x02, 1, 2, 3, 4, 5, 6, 7]).read_vec::<u32>("items", 10),
            Err(DecodeError::UnexpectedEnd { .. })
        ));
    }

    proptest! {
        #[test]
        fn compact_size_roundtrip(n: u64) {
            let mut v = Vec::new();
            write_compact_size(&mut v, n);
            let mut r = Reader::new(&v);
            prop_assert_eq!(r.read_compact_size(), Ok(n));
            prop_assert_eq!(r.remaining(), 0);
        }

        #[test]
        fn var_bytes_roundtrip(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut v = Vec::new();
            write_var_bytes(&mut v, &bytes);
            let mut r = Reader::new(&v);
            prop_assert_eq!(r.read_var_bytes("b", 1000), Ok(bytes));
        }

        #[test]
        fn vec_roundtrip(items in proptest::collection::vec(any::<u32>(), 0..300)) {
            let mut v = Vec::new();
            write_vec(&mut v, &items);
            let mut r = Reader::new(&v);
            prop_assert_eq!(r.read_vec::<u32>("items", 1000), Ok(items));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Reader::new(&bytes).read_vec::<u64>("items", 1 << 30);
            let _ = Reader::new(&bytes).read_var_bytes("b", 1 << 30);
        }
    }
}
