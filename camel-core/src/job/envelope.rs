//! Sealed envelopes (`docs/protocol.md` §13.4): NIP-44 version 2, byte for byte, with an
//! ephemeral sender key per message, and a purpose and job id inside the plaintext so that a
//! sealed body cannot be replayed into another role or job.
//!
//! NIP-44 v2: conversation key = HKDF-extract(SHA-256, salt "nip44-v2", ECDH x); per message a
//! 32-byte nonce, HKDF-expand(conversation key, nonce, 76) = ChaCha20 key ‖ ChaCha20 nonce ‖
//! HMAC key; the plaintext padded (`u16 BE length ‖ plaintext ‖ zeros`), encrypted with ChaCha20
//! and authenticated with HMAC-SHA256 over `nonce ‖ ciphertext`. Payload:
//! `0x02 ‖ nonce ‖ ciphertext ‖ mac`, carried here as raw bytes (NIP-44 base64-encodes it).

use core::fmt;

use chacha20::ChaCha20;
use chacha20::cipher::{KeyIvInit, StreamCipher};
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::encode::{DecodeError, Encodable, Reader, write_var_bytes};
use crate::hash::JobId;
use crate::keys::{PrivateKey, PublicKey};

use super::read_pubkey;

/// NIP-44's version byte.
pub const NIP44_VERSION: u8 = 2;
/// Longest plaintext NIP-44 v2 encrypts.
pub const MAX_PLAINTEXT: usize = 65_535;
/// Shortest and longest raw payloads: version, nonce, the padded minimum or maximum, MAC.
pub const MIN_PAYLOAD: usize = 1 + 32 + 2 + 32 + 32;
pub const MAX_PAYLOAD: usize = 1 + 32 + 2 + 65_536 + 32;
/// Longest body a sealed envelope carries (its plaintext also holds the purpose and job id).
pub const MAX_SEALED_BODY: usize = MAX_PLAINTEXT - 33;
/// Longest encoded sealed envelope.
pub const MAX_SEALED_SIZE: usize = 33 + 5 + MAX_PAYLOAD;

/// Why NIP-44 refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nip44Error {
    /// A plaintext of 0 or more than 65,535 bytes.
    PlaintextLength(usize),
    /// A payload of the wrong size.
    PayloadLength(usize),
    UnknownVersion(u8),
    /// The MAC does not verify: tampered, or another key.
    InvalidMac,
    /// The length prefix and the padding disagree.
    InvalidPadding,
}

impl fmt::Display for Nip44Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PlaintextLength(n) => {
                write!(f, "plaintext of {n} bytes (must be 1..={MAX_PLAINTEXT})")
            }
            Self::PayloadLength(n) => write!(
                f,
                "payload of {n} bytes (must be {MIN_PAYLOAD}..={MAX_PAYLOAD})"
            ),
            Self::UnknownVersion(v) => write!(f, "unknown encryption version {v}"),
            Self::InvalidMac => write!(f, "invalid MAC (tampered, or sealed to another key)"),
            Self::InvalidPadding => write!(f, "invalid padding"),
        }
    }
}

impl std::error::Error for Nip44Error {}

/// The conversation key of `ours` and `theirs` (symmetric: either side computes it).
pub fn conversation_key(ours: &PrivateKey, theirs: &PublicKey) -> [u8; 32] {
    let (prk, _) = Hkdf::<Sha256>::extract(Some(b"nip44-v2"), &ours.ecdh_x(theirs));
    let mut out = [0u8; 32];
    out.copy_from_slice(prk.as_slice());
    out
}

/// The per-message keys: ChaCha20 key, ChaCha20 nonce, HMAC key.
pub fn message_keys(
    conversation_key: &[u8; 32],
    nonce: &[u8; 32],
) -> ([u8; 32], [u8; 12], [u8; 32]) {
    let mut okm = [0u8; 76];
    // A 32-byte PRK and 76 bytes of output are always valid for HKDF-SHA256.
    if let Ok(h) = Hkdf::<Sha256>::from_prk(conversation_key) {
        let _ = h.expand(nonce, &mut okm);
    }
    let mut key = [0u8; 32];
    let mut iv = [0u8; 12];
    let mut mac = [0u8; 32];
    key.copy_from_slice(okm.get(..32).unwrap_or(&[0; 32]));
    iv.copy_from_slice(okm.get(32..44).unwrap_or(&[0; 12]));
    mac.copy_from_slice(okm.get(44..76).unwrap_or(&[0; 32]));
    (key, iv, mac)
}

/// NIP-44's padded length for a plaintext of `len` bytes (1..=65,535).
pub fn padded_len(len: usize) -> usize {
    if len <= 32 {
        return 32;
    }
    let prev = len.saturating_sub(1);
    let next_power = 1usize
        .checked_shl(usize::BITS.saturating_sub(prev.leading_zeros()))
        .unwrap_or(usize::MAX);
    let chunk = if next_power <= 256 {
        32
    } else {
        next_power / 8
    };
    chunk.saturating_mul(prev.checked_div(chunk).unwrap_or(0).saturating_add(1))
}

fn hmac(key: &[u8; 32], nonce: &[u8; 32], ciphertext: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| <Hmac<Sha256> as KeyInit>::new(&Default::default()));
    m.update(nonce);
    m.update(ciphertext);
    m
}

/// Encrypts `plaintext` under `conversation_key` with `nonce` (random, fresh per message).
pub fn encrypt(
    conversation_key: &[u8; 32],
    nonce: &[u8; 32],
    plaintext: &[u8],
) -> Result<Vec<u8>, Nip44Error> {
    let len = plaintext.len();
    if len == 0 || len > MAX_PLAINTEXT {
        return Err(Nip44Error::PlaintextLength(len));
    }
    let (key, iv, mac_key) = message_keys(conversation_key, nonce);
    let padded = padded_len(len);
    let mut out = Vec::with_capacity(padded.saturating_add(67));
    out.push(NIP44_VERSION);
    out.extend_from_slice(nonce);
    let start = out.len();
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(plaintext);
    out.resize(start.saturating_add(2).saturating_add(padded), 0);
    if let Some(body) = out.get_mut(start..) {
        ChaCha20::new(&key.into(), &iv.into()).apply_keystream(body);
    }
    let tag = hmac(&mac_key, nonce, out.get(start..).unwrap_or(&[]))
        .finalize()
        .into_bytes();
    out.extend_from_slice(&tag);
    Ok(out)
}

/// Decrypts a raw NIP-44 v2 payload.
pub fn decrypt(conversation_key: &[u8; 32], payload: &[u8]) -> Result<Vec<u8>, Nip44Error> {
    if payload.len() < MIN_PAYLOAD || payload.len() > MAX_PAYLOAD {
        return Err(Nip44Error::PayloadLength(payload.len()));
    }
    let (version, rest) = payload.split_first().ok_or(Nip44Error::PayloadLength(0))?;
    if *version != NIP44_VERSION {
        return Err(Nip44Error::UnknownVersion(*version));
    }
    let (nonce, rest) = rest
        .split_at_checked(32)
        .ok_or(Nip44Error::PayloadLength(payload.len()))?;
    let (ciphertext, mac) = rest
        .split_at_checked(rest.len().saturating_sub(32))
        .ok_or(Nip44Error::PayloadLength(payload.len()))?;
    let nonce: [u8; 32] = nonce
        .try_into()
        .map_err(|_| Nip44Error::PayloadLength(payload.len()))?;
    let (key, iv, mac_key) = message_keys(conversation_key, &nonce);
    hmac(&mac_key, &nonce, ciphertext)
        .verify_slice(mac)
        .map_err(|_| Nip44Error::InvalidMac)?;
    let mut padded = ciphertext.to_vec();
    ChaCha20::new(&key.into(), &iv.into()).apply_keystream(&mut padded);
    let (len_bytes, body) = padded
        .split_at_checked(2)
        .ok_or(Nip44Error::InvalidPadding)?;
    let len = usize::from(u16::from_be_bytes([
        *len_bytes.first().unwrap_or(&0),
        *len_bytes.get(1).unwrap_or(&0),
    ]));
    if len == 0 || body.len() != padded_len(len) {
        return Err(Nip44Error::InvalidPadding);
    }
    body.get(..len)
        .map(<[u8]>::to_vec)
        .ok_or(Nip44Error::InvalidPadding)
}

/// What a sealed body is for; the recipient refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Prompt = 1,
    Delivery = 2,
    VerifyRequest = 3,
    Verdict = 4,
}

/// A message sealed to a recipient's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The sender's one-time public key.
    pub ephemeral: PublicKey,
    /// The raw NIP-44 v2 payload.
    pub payload: Vec<u8>,
}

/// Why a sealed envelope could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealError {
    /// The body is longer than [`MAX_SEALED_BODY`].
    TooLarge(usize),
    Nip44(Nip44Error),
    /// Sealed for another purpose or another job: a replay.
    WrongContext,
}

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge(n) => write!(f, "sealed body of {n} bytes exceeds {MAX_SEALED_BODY}"),
            Self::Nip44(e) => write!(f, "{e}"),
            Self::WrongContext => write!(f, "envelope sealed for another purpose or job"),
        }
    }
}

impl std::error::Error for SealError {}

impl Sealed {
    /// Seals `body` to `recipient` with the one-time key `ephemeral` and NIP-44 nonce `nonce`
    /// (both fresh and random per message; [`Sealed::seal_random`] draws them).
    pub fn seal(
        ephemeral: &PrivateKey,
        nonce: &[u8; 32],
        recipient: &PublicKey,
        purpose: Purpose,
        job_id: &JobId,
        body: &[u8],
    ) -> Result<Self, SealError> {
        if body.len() > MAX_SEALED_BODY {
            return Err(SealError::TooLarge(body.len()));
        }
        let mut plaintext = Vec::with_capacity(body.len().saturating_add(33));
        plaintext.push(purpose as u8);
        plaintext.extend_from_slice(job_id.as_bytes());
        plaintext.extend_from_slice(body);
        let payload = encrypt(&conversation_key(ephemeral, recipient), nonce, &plaintext)
            .map_err(SealError::Nip44)?;
        Ok(Self {
            ephemeral: ephemeral.public_key(),
            payload,
        })
    }

    /// [`Sealed::seal`] with a fresh ephemeral key and nonce from `rng`.
    pub fn seal_random<R: secp256k1::rand::Rng + ?Sized>(
        rng: &mut R,
        recipient: &PublicKey,
        purpose: Purpose,
        job_id: &JobId,
        body: &[u8],
    ) -> Result<Self, SealError> {
        let ephemeral = PrivateKey::generate(rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        Self::seal(&ephemeral, &nonce, recipient, purpose, job_id, body)
    }

    /// Opens an envelope sealed to `recipient`'s key for `purpose` and `job_id`.
    pub fn open(
        &self,
        recipient: &PrivateKey,
        purpose: Purpose,
        job_id: &JobId,
    ) -> Result<Vec<u8>, SealError> {
        let plaintext = decrypt(&conversation_key(recipient, &self.ephemeral), &self.payload)
            .map_err(SealError::Nip44)?;
        match plaintext.split_first() {
            Some((p, rest))
                if *p == purpose as u8 && rest.get(..32) == Some(job_id.as_bytes().as_slice()) =>
            {
                Ok(rest.get(32..).unwrap_or(&[]).to_vec())
            }
            _ => Err(SealError::WrongContext),
        }
    }

    pub fn decode_from(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            ephemeral: read_pubkey(r)?,
            payload: r.read_var_bytes("sealed payload", MAX_PAYLOAD)?,
        })
    }
}

impl Encodable for Sealed {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ephemeral.to_bytes());
        write_var_bytes(out, &self.payload);
    }
}

impl crate::encode::Decodable for Sealed {
    const MIN_ENCODED_SIZE: usize = 33 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::decode_from(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PrivateKey {
        PrivateKey::from_slice(&[b; 32]).unwrap()
    }

    #[test]
    fn padding_matches_nip44() {
        for (n, p) in [
            (1, 32),
            (32, 32),
            (33, 64),
            (37, 64),
            (45, 64),
            (49, 64),
            (64, 64),
            (65, 96),
            (100, 128),
            (111, 128),
            (200, 224),
            (250, 256),
            (320, 320),
            (383, 384),
            (384, 384),
            (400, 448),
            (500, 512),
            (512, 512),
            (515, 640),
            (700, 768),
            (800, 896),
            (900, 1024),
            (1020, 1024),
            (65_536, 65_536),
        ] {
            assert_eq!(padded_len(n), p, "{n}");
        }
    }

    #[test]
    fn seal_open_and_refusals() {
        let (recipient, other) = (key(1), key(2));
        let job = JobId::hash(b"job");
        let s = Sealed::seal(
            &key(3),
            &[7; 32],
            &recipient.public_key(),
            Purpose::Prompt,
            &job,
            b"tell me",
        )
        .unwrap();
        assert_eq!(
            s.open(&recipient, Purpose::Prompt, &job).unwrap(),
            b"tell me"
        );
        assert_eq!(
            s.open(&other, Purpose::Prompt, &job),
            Err(SealError::Nip44(Nip44Error::InvalidMac))
        );
        assert_eq!(
            s.open(&recipient, Purpose::Delivery, &job),
            Err(SealError::WrongContext)
        );
        assert_eq!(
            s.open(&recipient, Purpose::Prompt, &JobId::hash(b"x")),
            Err(SealError::WrongContext)
        );
        let bytes = crate::encode::encode_to_vec(&s);
        let back: Sealed = crate::encode::decode_from_slice(&bytes).unwrap();
        assert_eq!(back, s);
        let mut t = s.clone();
        let last = t.payload.len() - 40;
        t.payload[last] ^= 1;
        assert_eq!(
            t.open(&recipient, Purpose::Prompt, &job),
            Err(SealError::Nip44(Nip44Error::InvalidMac))
        );
        assert!(
            Sealed::seal(
                &key(3),
                &[7; 32],
                &recipient.public_key(),
                Purpose::Prompt,
                &job,
                &vec![0; MAX_SEALED_BODY + 1]
            )
            .is_err()
        );
        let big = Sealed::seal(
            &key(3),
            &[7; 32],
            &recipient.public_key(),
            Purpose::Prompt,
            &job,
            &vec![0; MAX_SEALED_BODY],
        )
        .unwrap();
        assert!(crate::encode::encode_to_vec(&big).len() <= MAX_SEALED_SIZE);
        assert_eq!(
            big.open(&recipient, Purpose::Prompt, &job).unwrap().len(),
            MAX_SEALED_BODY
        );
    }

    #[test]
    fn conversation_key_is_symmetric() {
        let (a, b) = (key(4), key(5));
        assert_eq!(
            conversation_key(&a, &b.public_key()),
            conversation_key(&b, &a.public_key())
        );
    }
}
