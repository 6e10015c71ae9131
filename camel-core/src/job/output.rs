//! The output side of a job (`docs/protocol.md` §13.3): the reverse hash chain over the output
//! tokens, the delivery plaintext (tokens and text), and its encryption under the one-time
//! delivery key *k* with ChaCha20-Poly1305.

use core::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::encode::{
    Decodable, DecodeError, Encodable, Reader, decode_from_slice, write_var_bytes,
};
use crate::hash::{JobId, sha256};
use crate::rastic::TokenId;

use super::params::MAX_JOB_TOKENS;
use super::{read_tokens, write_tokens};

/// Longest output text, bytes.
pub const MAX_OUTPUT_TEXT: usize = 24_576;
/// Poly1305's tag.
pub const TAG_LEN: usize = 16;
/// Longest delivery plaintext: `vec<u32>` of the most tokens and `var_bytes` of the longest text.
pub const MAX_DELIVERY_PLAINTEXT: usize = 3 + 4 * MAX_JOB_TOKENS as usize + 3 + MAX_OUTPUT_TEXT;
/// Longest delivery ciphertext.
pub const MAX_DELIVERY_CIPHERTEXT: usize = MAX_DELIVERY_PLAINTEXT + TAG_LEN;

const END_TAG: &[u8] = b"camelid/output/end";

/// `T_n`: the hash the chain starts from, after the last token.
pub fn end_hash() -> [u8; 32] {
    sha256(END_TAG)
}

/// One step of the chain: `SHA256(b_i LE ‖ T_{i+1})`.
fn link(token: TokenId, next: &[u8; 32]) -> [u8; 32] {
    let mut m = [0u8; 36];
    m[..4].copy_from_slice(&token.to_le_bytes());
    m[4..].copy_from_slice(next);
    sha256(&m)
}

/// `T_0` of `prefix` followed by a suffix whose chain hash is `suffix`.
pub fn prefix_hash(prefix: &[TokenId], suffix: &[u8; 32]) -> [u8; 32] {
    prefix.iter().rev().fold(*suffix, |h, &t| link(t, &h))
}

/// The output hash `T_0` of a whole output.
pub fn output_hash(tokens: &[TokenId]) -> [u8; 32] {
    prefix_hash(tokens, &end_hash())
}

/// `T_{x}` for every `x` in `0..=n`, so a worker can hand out any prefix proof.
pub fn chain_hashes(tokens: &[TokenId]) -> Vec<[u8; 32]> {
    let mut out = vec![end_hash(); tokens.len().saturating_add(1)];
    for i in (0..tokens.len()).rev() {
        if let (Some(&t), Some(&next)) = (tokens.get(i), out.get(i.saturating_add(1)))
            && let Some(slot) = out.get_mut(i)
        {
            *slot = link(t, &next);
        }
    }
    out
}

/// What the client reads once it has the key: the tokens the commitment hashes and their text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub tokens: Vec<TokenId>,
    /// The tokens' bytes, concatenated. Not always UTF-8: an output cut at its token limit
    /// can end inside a character.
    pub text: Vec<u8>,
}

impl Encodable for Delivery {
    fn encode(&self, out: &mut Vec<u8>) {
        write_tokens(out, &self.tokens);
        write_var_bytes(out, &self.text);
    }
}

impl Decodable for Delivery {
    const MIN_ENCODED_SIZE: usize = 2;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tokens = read_tokens(r, MAX_JOB_TOKENS as usize)?;
        let text = r.read_var_bytes("output text", MAX_OUTPUT_TEXT)?;
        Ok(Self { tokens, text })
    }
}

/// Why a delivery could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryError {
    /// The output exceeds the protocol's limits (too many tokens, text too long).
    TooLarge,
    /// The ciphertext is not authentic under the key (or is for another job).
    Decrypt,
    /// The plaintext does not decode as a delivery.
    Decode(DecodeError),
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge => write!(
                f,
                "output exceeds the delivery limits ({MAX_JOB_TOKENS} tokens, {MAX_OUTPUT_TEXT} bytes of text)"
            ),
            Self::Decrypt => write!(f, "delivery ciphertext does not decrypt under the key"),
            Self::Decode(e) => write!(f, "delivery plaintext: {e}"),
        }
    }
}

impl std::error::Error for DeliveryError {}

fn cipher(key: &[u8; 32]) -> ChaCha20Poly1305 {
    ChaCha20Poly1305::new(&Key::from(*key))
}

/// Encrypts a delivery under the one-time key `key` for job `job_id`.
pub fn seal_delivery(
    key: &[u8; 32],
    job_id: &JobId,
    delivery: &Delivery,
) -> Result<Vec<u8>, DeliveryError> {
    if delivery.tokens.len() > MAX_JOB_TOKENS as usize || delivery.text.len() > MAX_OUTPUT_TEXT {
        return Err(DeliveryError::TooLarge);
    }
    let plaintext = crate::encode::encode_to_vec(delivery);
    cipher(key)
        .encrypt(
            &Nonce::from([0u8; 12]),
            Payload {
                msg: &plaintext,
                aad: job_id.as_bytes(),
            },
        )
        .map_err(|_| DeliveryError::TooLarge)
}

/// Decrypts and decodes a delivery.
pub fn open_delivery(
    key: &[u8; 32],
    job_id: &JobId,
    ciphertext: &[u8],
) -> Result<Delivery, DeliveryError> {
    if ciphertext.len() > MAX_DELIVERY_CIPHERTEXT {
        return Err(DeliveryError::TooLarge);
    }
    let plaintext = cipher(key)
        .decrypt(
            &Nonce::from([0u8; 12]),
            Payload {
                msg: ciphertext,
                aad: job_id.as_bytes(),
            },
        )
        .map_err(|_| DeliveryError::Decrypt)?;
    decode_from_slice(&plaintext).map_err(DeliveryError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn chain_matches_prefix_proofs() {
        let tokens = [5u32, 17, 2, 99, 0];
        let chain = chain_hashes(&tokens);
        assert_eq!(chain[5], end_hash());
        assert_eq!(chain[0], output_hash(&tokens));
        for x in 0..tokens.len() {
            assert_eq!(prefix_hash(&tokens[..=x], &chain[x + 1]), chain[0]);
        }
        assert_ne!(output_hash(&[5, 17]), output_hash(&[17, 5]));
        assert_ne!(output_hash(&[]), output_hash(&[0]));
    }

    #[test]
    fn delivery_roundtrip_and_tamper() {
        let job = JobId::hash(b"job");
        let d = Delivery {
            tokens: vec![1, 2, 3],
            text: "héllo".into(),
        };
        let key = [4u8; 32];
        let ct = seal_delivery(&key, &job, &d).unwrap();
        assert_eq!(ct.len(), crate::encode::encode_to_vec(&d).len() + TAG_LEN);
        assert_eq!(open_delivery(&key, &job, &ct).unwrap(), d);
        assert_eq!(
            open_delivery(&[5; 32], &job, &ct),
            Err(DeliveryError::Decrypt)
        );
        assert_eq!(
            open_delivery(&key, &JobId::hash(b"other"), &ct),
            Err(DeliveryError::Decrypt)
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(open_delivery(&key, &job, &bad), Err(DeliveryError::Decrypt));
        let too_long = Delivery {
            tokens: vec![0; MAX_JOB_TOKENS as usize + 1],
            text: Vec::new(),
        };
        assert_eq!(
            seal_delivery(&key, &job, &too_long),
            Err(DeliveryError::TooLarge)
        );
    }

    #[test]
    fn largest_delivery_fits_its_limit() {
        let d = Delivery {
            tokens: vec![u32::MAX; MAX_JOB_TOKENS as usize],
            text: vec![b'x'; MAX_OUTPUT_TEXT],
        };
        let ct = seal_delivery(&[1; 32], &JobId::ZERO, &d).unwrap();
        assert_eq!(ct.len(), MAX_DELIVERY_CIPHERTEXT);
    }

    proptest! {
        #[test]
        fn delivery_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_from_slice::<Delivery>(&bytes);
        }
    }
}
