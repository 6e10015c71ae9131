//! Hash functions (SHA-256, SHA-256d, HASH160) and the 32-byte identifier newtypes.
//!
//! `Txid` and `BlockHash` display byte-reversed, as Bitcoin does, so proof-of-work shows as
//! leading zeros. `JobId`, `ModelId` and `Hash256` display in natural byte order, so a
//! model id reads exactly as `sha256sum` prints the model file.

use core::fmt;
use core::str::FromStr;

use ripemd::Ripemd160;
use sha2::{Digest, Sha256};

use crate::encode::{Decodable, DecodeError, Encodable, Reader};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// SHA-256 applied twice.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

/// RIPEMD-160 of SHA-256: the public-key hash inside an address.
pub fn hash160(data: &[u8]) -> [u8; 20] {
    Ripemd160::digest(sha256(data)).into()
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    use core::fmt::Write;
    let mut s = String::with_capacity(bytes.len().saturating_mul(2));
    for b in bytes {
        let _ = write!(s, "{b:02x}"); // writing to a String cannot fail
    }
    s
}

/// Why a hex string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    OddLength(usize),
    BadDigit(char),
    WrongLength { expected: usize, got: usize },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OddLength(n) => write!(f, "hex string has odd length {n}"),
            Self::BadDigit(c) => write!(f, "invalid hex digit {c:?}"),
            Self::WrongLength { expected, got } => {
                write!(f, "expected {expected} bytes of hex, got {got}")
            }
        }
    }
}

impl std::error::Error for HexError {}

/// Parses hex (either case) into bytes.
pub fn from_hex(s: &str) -> Result<Vec<u8>, HexError> {
    if !s.len().is_multiple_of(2) {
        return Err(HexError::OddLength(s.len()));
    }
    let digit = |c: u8| -> Result<u8, HexError> {
        char::from(c)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
            .ok_or(HexError::BadDigit(char::from(c)))
    };
    s.as_bytes()
        .chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Ok((digit(*hi)? << 4) | digit(*lo)?),
            _ => Err(HexError::OddLength(s.len())),
        })
        .collect()
}

fn parse_hex32(s: &str, reversed: bool) -> Result<[u8; 32], HexError> {
    let v = from_hex(s)?;
    let mut out: [u8; 32] = v.as_slice().try_into().map_err(|_| HexError::WrongLength {
        expected: 32,
        got: v.len(),
    })?;
    if reversed {
        out.reverse();
    }
    Ok(out)
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident, reversed = $rev:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The all-zero value.
            pub const ZERO: Self = Self([0u8; 32]);

            pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }
            pub const fn to_byte_array(self) -> [u8; 32] {
                self.0
            }
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
            pub fn is_zero(&self) -> bool {
                self.0 == [0u8; 32]
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut b = self.0;
                if $rev {
                    b.reverse();
                }
                f.write_str(&to_hex(&b))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = HexError;
            fn from_str(s: &str) -> Result<Self, HexError> {
                parse_hex32(s, $rev).map(Self)
            }
        }

        impl Encodable for $name {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.0);
            }
            fn encoded_len(&self) -> usize {
                32
            }
        }

        impl Decodable for $name {
            const MIN_ENCODED_SIZE: usize = 32;
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.read_array().map(Self)
            }
        }
    };
}

hash_newtype!(
    /// A 32-byte SHA-256d digest with no more specific meaning (merkle nodes, sighashes).
    Hash256, reversed = false
);
hash_newtype!(
    /// Transaction id: SHA-256d of the transaction's consensus encoding.
    Txid, reversed = true
);
hash_newtype!(
    /// Block id: SHA-256d of the 80-byte header.
    BlockHash, reversed = true
);
hash_newtype!(
    /// Job id: SHA-256d of the consensus encoding of the job parameters; zero means "no job".
    JobId, reversed = false
);
hash_newtype!(
    /// Model id: SHA-256 (single) of the GGUF file's bytes.
    ModelId, reversed = false
);

impl Hash256 {
    /// SHA-256d of `data`.
    pub fn hash(data: &[u8]) -> Self {
        Self(sha256d(data))
    }
}

impl Txid {
    pub fn hash(data: &[u8]) -> Self {
        Self(sha256d(data))
    }
}

impl BlockHash {
    pub fn hash(data: &[u8]) -> Self {
        Self(sha256d(data))
    }
}

impl JobId {
    pub fn hash(data: &[u8]) -> Self {
        Self(sha256d(data))
    }
}

impl ModelId {
    /// Model id of a model file held in memory; large files are hashed by streaming
    /// (`sha2::Sha256`) in the binaries, with the same result.
    pub fn of_bytes(data: &[u8]) -> Self {
        Self(sha256(data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        assert_eq!(
            to_hex(&sha256(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            to_hex(&sha256d(b"")),
            "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"
        );
        assert_eq!(
            to_hex(&sha256d(b"hello")),
            "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"
        );
        // HASH160 of the compressed public key of private key 1 (published Bitcoin vector).
        let pk =
            from_hex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798").unwrap();
        assert_eq!(
            to_hex(&hash160(&pk)),
            "751e76e8199196d454941c45d1b3a323f1433bd6"
        );
    }

    #[test]
    fn display_order() {
        let mut b = [0u8; 32];
        b[0] = 0xab;
        assert!(Txid::from_byte_array(b).to_string().ends_with("ab"));
        assert!(JobId::from_byte_array(b).to_string().starts_with("ab"));
        let t: Txid = Txid::from_byte_array(b).to_string().parse().unwrap();
        assert_eq!(t.to_byte_array(), b);
        let m: ModelId = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
            .parse()
            .unwrap();
        assert_eq!(m.as_bytes()[0], 0xb1);
    }

    #[test]
    fn hex_errors() {
        assert_eq!(from_hex("abc"), Err(HexError::OddLength(3)));
        assert_eq!(from_hex("zz"), Err(HexError::BadDigit('z')));
        assert_eq!(
            "00".parse::<Txid>(),
            Err(HexError::WrongLength {
                expected: 32,
                got: 1
            })
        );
        assert_eq!(from_hex("DEADbeef").unwrap(), vec![0xde, 0xad, 0xbe, 0xef]);
    }
}
