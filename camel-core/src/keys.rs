//! secp256k1 keys and ECDSA signatures, Bitcoin-compatible.
//!
//! Public keys are always the 33-byte compressed form. Signatures are strict DER (BIP66)
//! with a low S value (BIP62/BIP146): a signature with high S is malleable, so it is refused
//! rather than normalised, and signing always produces low S.

use core::fmt;

use secp256k1::{Message, SecretKey, ecdsa};

use crate::hash::{Hash256, hash160};

/// Why a key or signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A private key must be 32 bytes in 1..n-1.
    InvalidPrivateKey,
    /// Not a 33-byte compressed point on the curve.
    InvalidPublicKey { len: usize },
    /// Not strict DER.
    SigDer,
    /// S above half the group order.
    HighS,
    /// A well-formed signature that does not verify.
    BadSignature,
    /// A WIF string that is not Base58Check, or has the wrong version or length.
    InvalidWif(&'static str),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPrivateKey => write!(
                f,
                "invalid private key (must be 32 bytes in the curve's range)"
            ),
            Self::InvalidPublicKey { len } => {
                write!(
                    f,
                    "invalid public key of {len} bytes (expected a 33-byte compressed point)"
                )
            }
            Self::SigDer => write!(f, "signature is not strict DER"),
            Self::HighS => write!(f, "signature has a high S value"),
            Self::BadSignature => write!(f, "signature does not verify"),
            Self::InvalidWif(why) => write!(f, "invalid WIF private key: {why}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// A secp256k1 private key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PrivateKey(SecretKey);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<secret>)")
    }
}

impl PrivateKey {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| KeyError::InvalidPrivateKey)?;
        SecretKey::from_secret_bytes(arr)
            .map(Self)
            .map_err(|_| KeyError::InvalidPrivateKey)
    }

    /// A fresh key from the operating system's random source (via `rand`).
    pub fn generate<R: secp256k1::rand::Rng + ?Sized>(rng: &mut R) -> Self {
        Self(SecretKey::new(rng))
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_secret_bytes()
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// The x-coordinate of the ECDH point `self · other`, unhashed (what NIP-44 derives its
    /// conversation key from).
    pub fn ecdh_x(&self, other: &PublicKey) -> [u8; 32] {
        let point = secp256k1::ecdh::shared_secret_point(&other.0, &self.0);
        let mut x = [0u8; 32];
        x.copy_from_slice(point.get(..32).unwrap_or(&[0u8; 32]));
        x
    }

    /// Wallet Import Format for a compressed key: Base58Check(version ‖ key ‖ 0x01).
    pub fn to_wif(&self, version: u8) -> String {
        let mut payload = self.0.to_secret_bytes().to_vec();
        payload.push(0x01);
        bs58::encode(payload)
            .with_check_version(version)
            .into_string()
    }

    /// Parses a compressed-key WIF string of the given version.
    pub fn from_wif(s: &str, version: u8) -> Result<Self, KeyError> {
        let data = bs58::decode(s)
            .with_check(None)
            .into_vec()
            .map_err(|_| KeyError::InvalidWif("bad base58check"))?;
        match data.as_slice() {
            [v, key @ .., 0x01] if key.len() == 32 => {
                if *v != version {
                    return Err(KeyError::InvalidWif("wrong network version byte"));
                }
                Self::from_slice(key)
            }
            _ => Err(KeyError::InvalidWif(
                "not a compressed-key WIF (wrong length)",
            )),
        }
    }
}

/// A compressed secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(secp256k1::PublicKey);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", crate::hash::to_hex(&self.to_bytes()))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::hash::to_hex(&self.to_bytes()))
    }
}

impl PublicKey {
    /// Parses a 33-byte compressed key; uncompressed and hybrid encodings are refused.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyError> {
        let err = KeyError::InvalidPublicKey { len: bytes.len() };
        match bytes.first() {
            Some(0x02 | 0x03) if bytes.len() == 33 => secp256k1::PublicKey::from_slice(bytes)
                .map(Self)
                .map_err(|_| err),
            _ => Err(err),
        }
    }

    pub fn to_bytes(&self) -> [u8; 33] {
        self.0.serialize()
    }

    /// HASH160 of the compressed encoding, as in a P2PKH script and an address.
    pub fn pubkey_hash(&self) -> [u8; 20] {
        hash160(&self.to_bytes())
    }
}

/// Signs a 32-byte digest: strict DER, low S (libsecp256k1 always produces low S), RFC 6979
/// deterministic nonces.
pub fn sign_hash(key: &PrivateKey, digest: &Hash256) -> Vec<u8> {
    key.0
        .sign_ecdsa(Message::from_digest(digest.to_byte_array()))
        .serialize_der()
        .to_vec()
}

/// Checks a DER signature over a digest: strict DER, low S, then the curve equation.
pub fn verify_hash(key: &PublicKey, digest: &Hash256, der: &[u8]) -> Result<(), KeyError> {
    if !is_strict_der(der) {
        return Err(KeyError::SigDer);
    }
    let sig = ecdsa::Signature::from_der(der).map_err(|_| KeyError::SigDer)?;
    let mut normalized = sig;
    normalized.normalize_s();
    if normalized != sig {
        return Err(KeyError::HighS);
    }
    sig.verify(Message::from_digest(digest.to_byte_array()), &key.0)
        .map_err(|_| KeyError::BadSignature)
}

/// BIP66 strict DER: `0x30 len 0x02 rlen R 0x02 slen S`, minimal positive integers.
fn is_strict_der(sig: &[u8]) -> bool {
    let [0x30, total, 0x02, rlen, rest @ ..] = sig else {
        return false;
    };
    if usize::from(*total) != sig.len().saturating_sub(2) || sig.len() > 72 {
        return false;
    }
    let rlen = usize::from(*rlen);
    let Some((r, rest)) = rest.split_at_checked(rlen) else {
        return false;
    };
    let [0x02, slen, s @ ..] = rest else {
        return false;
    };
    if usize::from(*slen) != s.len() {
        return false;
    }
    let minimal_positive = |n: &[u8]| match n {
        [] => false,
        [first, ..] if first & 0x80 != 0 => false,
        [0x00, second, ..] => second & 0x80 != 0,
        [0x00] => false,
        _ => true,
    };
    minimal_positive(r) && minimal_positive(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{from_hex, to_hex};

    fn key_one() -> PrivateKey {
        let mut b = [0u8; 32];
        b[31] = 1;
        PrivateKey::from_slice(&b).unwrap()
    }

    #[test]
    fn private_key_one_vector() {
        let pk = key_one().public_key();
        assert_eq!(
            to_hex(&pk.to_bytes()),
            "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
        );
        assert_eq!(
            key_one().to_wif(0x80),
            "KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn"
        );
        assert_eq!(
            PrivateKey::from_wif("KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn", 0x80)
                .unwrap(),
            key_one()
        );
        assert!(matches!(
            PrivateKey::from_wif("KwDiBf89QgGbjEhKnhXJuH7LrciVrZi3qYjgd9M7rFU73sVHnoWn", 0xef),
            Err(KeyError::InvalidWif(_))
        ));
        // Uncompressed WIF (no 0x01 suffix) is refused.
        assert!(
            PrivateKey::from_wif("5HpHagT65TZzG1PH3CSu63k8DbpvD8s5ip4nEB3kEsreAnchuDf", 0x80)
                .is_err()
        );
    }

    #[test]
    fn invalid_keys() {
        assert_eq!(
            PrivateKey::from_slice(&[0u8; 32]),
            Err(KeyError::InvalidPrivateKey)
        );
        assert_eq!(
            PrivateKey::from_slice(&[1u8; 31]),
            Err(KeyError::InvalidPrivateKey)
        );
        let order =
            from_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap();
        assert_eq!(
            PrivateKey::from_slice(&order),
            Err(KeyError::InvalidPrivateKey)
        );
        let uncompressed = from_hex("0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8").unwrap();
        assert_eq!(
            PublicKey::from_slice(&uncompressed),
            Err(KeyError::InvalidPublicKey { len: 65 })
        );
        assert_eq!(
            PublicKey::from_slice(&[0x05; 33]),
            Err(KeyError::InvalidPublicKey { len: 33 })
        );
        assert_eq!(
            PublicKey::from_slice(&[]),
            Err(KeyError::InvalidPublicKey { len: 0 })
        );
    }

    #[test]
    fn sign_verify_and_malleability() {
        let key = key_one();
        let digest = Hash256::hash(b"message");
        let sig = sign_hash(&key, &digest);
        assert!(is_strict_der(&sig));
        assert_eq!(verify_hash(&key.public_key(), &digest, &sig), Ok(()));
        assert_eq!(
            verify_hash(&key.public_key(), &Hash256::hash(b"other"), &sig),
            Err(KeyError::BadSignature)
        );
        let other = PrivateKey::from_slice(&[7u8; 32]).unwrap().public_key();
        assert_eq!(
            verify_hash(&other, &digest, &sig),
            Err(KeyError::BadSignature)
        );

        // Flip S to n - S: same signature mathematically, refused as high S.
        let parsed = ecdsa::Signature::from_der(&sig).unwrap();
        let compact = parsed.serialize_compact();
        let n =
            from_hex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141").unwrap();
        let mut s_high = [0u8; 32];
        let mut borrow = 0i16;
        for i in (0..32).rev() {
            let v = i16::from(n[i]) - i16::from(compact[32 + i]) - borrow;
            s_high[i] = v.rem_euclid(256) as u8;
            borrow = i16::from(v < 0);
        }
        let mut high = compact;
        high[32..].copy_from_slice(&s_high);
        let high_der = ecdsa::Signature::from_compact(&high)
            .unwrap()
            .serialize_der()
            .to_vec();
        assert_eq!(
            verify_hash(&key.public_key(), &digest, &high_der),
            Err(KeyError::HighS)
        );
    }

    #[test]
    fn non_der_refused() {
        let key = key_one();
        let digest = Hash256::hash(b"message");
        let sig = sign_hash(&key, &digest);
        let mut padded = sig.clone();
        padded.push(0); // trailing garbage
        assert_eq!(
            verify_hash(&key.public_key(), &digest, &padded),
            Err(KeyError::SigDer)
        );
        assert_eq!(
            verify_hash(&key.public_key(), &digest, &[]),
            Err(KeyError::SigDer)
        );
        assert_eq!(
            verify_hash(&key.public_key(), &digest, &sig[..sig.len() - 1]),
            Err(KeyError::SigDer)
        );
        // Non-minimal R: one more leading zero is never minimal, whatever R's first byte.
        let r_len = usize::from(sig[3]);
        let mut nonmin = vec![0x30, sig[1] + 1, 0x02, sig[3] + 1, 0x00];
        nonmin.extend_from_slice(&sig[4..4 + r_len]);
        nonmin.extend_from_slice(&sig[4 + r_len..]);
        assert_eq!(
            verify_hash(&key.public_key(), &digest, &nonmin),
            Err(KeyError::SigDer)
        );
    }
}
