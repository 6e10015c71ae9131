//! Job parameters (`docs/protocol.md` §13.2): what the client asks for, encoded once, hashed
//! into the job id. The prompt text travels beside them, checked against `prompt_hash`.

use core::fmt;

use crate::amount::Amount;
use crate::encode::{Decodable, DecodeError, Encodable, Reader, encode_to_vec, write_var_bytes};
use crate::hash::{JobId, ModelId, sha256};
use crate::keys::PublicKey;
use crate::rastic::{MAX_TEMPERATURE_MILLI, SamplingParams};

use super::read_pubkey;

/// The parameters' encoding version.
pub const PARAMS_VERSION: u8 = 1;
/// Longest prompt, bytes of UTF-8.
pub const MAX_PROMPT_BYTES: usize = 16_384;
/// Most output tokens a job may ask for.
pub const MAX_JOB_TOKENS: u32 = 2_048;
/// Longest client contact (a libp2p peer id's bytes).
pub const MAX_CONTACT_LEN: usize = 64;
/// Encoded size of parameters with the longest contact.
pub const MAX_PARAMS_SIZE: usize =
    1 + 32 + 1 + 32 + 4 + 4 + 4 + 8 + 8 + 4 + 8 + 8 + 33 + 1 + MAX_CONTACT_LEN + 16;

/// How the prompt text becomes tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PromptFormat {
    /// The text as it is.
    Raw,
    /// The text as one user message in the model's chat template, the assistant's turn open.
    Chat,
}

impl PromptFormat {
    pub fn to_byte(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Chat => 1,
        }
    }

    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Raw),
            1 => Some(Self::Chat),
            _ => None,
        }
    }
}

/// Why parameters (or a prompt for them) are not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobParamsError {
    Version(u8),
    Format(u8),
    PromptLen(u32),
    MaxTokens(u32),
    Temperature(u32),
    Reward(u64),
    /// The prompt does not match `prompt_hash` and `prompt_len`.
    PromptMismatch,
    /// The prompt is not UTF-8.
    PromptNotUtf8,
}

impl fmt::Display for JobParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Version(v) => write!(f, "job parameters version {v} (expected {PARAMS_VERSION})"),
            Self::Format(v) => write!(f, "prompt format {v} (expected 0 raw or 1 chat)"),
            Self::PromptLen(n) => write!(f, "prompt of {n} bytes (must be 1..={MAX_PROMPT_BYTES})"),
            Self::MaxTokens(n) => write!(f, "max tokens {n} (must be 1..={MAX_JOB_TOKENS})"),
            Self::Temperature(t) => write!(
                f,
                "temperature {t} thousandths (at most {MAX_TEMPERATURE_MILLI})"
            ),
            Self::Reward(r) => write!(f, "reward of {r} base units (must be 1..=MAX_MONEY)"),
            Self::PromptMismatch => write!(f, "the prompt does not match the job's prompt hash"),
            Self::PromptNotUtf8 => write!(f, "the prompt is not UTF-8 text"),
        }
    }
}

impl std::error::Error for JobParamsError {}

/// A job's parameters. Build with [`JobParams::new`]-style struct literals, then
/// [`JobParams::validate`]; the decoder validates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobParams {
    pub model: ModelId,
    pub prompt_format: PromptFormat,
    pub prompt_hash: [u8; 32],
    pub prompt_len: u32,
    pub max_tokens: u32,
    pub sampling: SamplingParams,
    /// Unix seconds, the client's clock.
    pub created_at: u64,
    /// The escrow's refund height.
    pub timelock: u32,
    pub reward: Amount,
    pub min_stake: Amount,
    pub client: PublicKey,
    /// The libp2p peer id (bytes) of the node that relays for the client; may be empty.
    pub contact: Vec<u8>,
    pub salt: [u8; 16],
}

impl JobParams {
    /// The job id: SHA-256d of the encoding.
    pub fn job_id(&self) -> JobId {
        JobId::hash(&encode_to_vec(self))
    }

    /// Hash and length fields for `prompt`.
    pub fn prompt_fields(prompt: &str) -> ([u8; 32], u32) {
        (
            sha256(prompt.as_bytes()),
            u32::try_from(prompt.len()).unwrap_or(u32::MAX),
        )
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), JobParamsError> {
        let prompt_ok = self.prompt_len >= 1 && self.prompt_len as usize <= MAX_PROMPT_BYTES;
        if !prompt_ok {
            return Err(JobParamsError::PromptLen(self.prompt_len));
        }
        if self.max_tokens == 0 || self.max_tokens > MAX_JOB_TOKENS {
            return Err(JobParamsError::MaxTokens(self.max_tokens));
        }
        if self.sampling.temperature_milli > MAX_TEMPERATURE_MILLI {
            return Err(JobParamsError::Temperature(self.sampling.temperature_milli));
        }
        if self.reward == Amount::ZERO {
            return Err(JobParamsError::Reward(0));
        }
        // Amounts cannot exceed MAX_MONEY by construction; the decoder checks the raw value.
        Ok(())
    }

    /// Checks `prompt` against `prompt_hash`, `prompt_len` and UTF-8.
    pub fn check_prompt(&self, prompt: &[u8]) -> Result<(), JobParamsError> {
        if u32::try_from(prompt.len()).ok() != Some(self.prompt_len)
            || sha256(prompt) != self.prompt_hash
        {
            return Err(JobParamsError::PromptMismatch);
        }
        if core::str::from_utf8(prompt).is_err() {
            return Err(JobParamsError::PromptNotUtf8);
        }
        Ok(())
    }
}

impl Encodable for JobParams {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(PARAMS_VERSION);
        self.model.encode(out);
        out.push(self.prompt_format.to_byte());
        out.extend_from_slice(&self.prompt_hash);
        self.prompt_len.encode(out);
        self.max_tokens.encode(out);
        self.sampling.temperature_milli.encode(out);
        self.sampling.seed.encode(out);
        self.created_at.encode(out);
        self.timelock.encode(out);
        self.reward.to_base().encode(out);
        self.min_stake.to_base().encode(out);
        out.extend_from_slice(&self.client.to_bytes());
        write_var_bytes(out, &self.contact);
        out.extend_from_slice(&self.salt);
    }
}

pub(crate) fn read_amount(r: &mut Reader<'_>) -> Result<Amount, DecodeError> {
    Amount::from_base(r.read_u64()?).ok_or(DecodeError::Invalid("amount above the money supply"))
}

impl Decodable for JobParams {
    const MIN_ENCODED_SIZE: usize = MAX_PARAMS_SIZE - MAX_CONTACT_LEN;

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.read_u8()? != PARAMS_VERSION {
            return Err(DecodeError::Invalid("job parameters version"));
        }
        let model = ModelId::decode(r)?;
        let prompt_format =
            PromptFormat::from_byte(r.read_u8()?).ok_or(DecodeError::Invalid("prompt format"))?;
        let p = Self {
            model,
            prompt_format,
            prompt_hash: r.read_array()?,
            prompt_len: r.read_u32()?,
            max_tokens: r.read_u32()?,
            sampling: SamplingParams {
                temperature_milli: r.read_u32()?,
                seed: r.read_u64()?,
            },
            created_at: r.read_u64()?,
            timelock: r.read_u32()?,
            reward: read_amount(r)?,
            min_stake: read_amount(r)?,
            client: read_pubkey(r)?,
            contact: r.read_var_bytes("contact", MAX_CONTACT_LEN)?,
            salt: r.read_array()?,
        };
        p.validate().map_err(|e| match e {
            JobParamsError::PromptLen(_) => DecodeError::Invalid("prompt length"),
            JobParamsError::MaxTokens(_) => DecodeError::Invalid("max tokens"),
            JobParamsError::Temperature(_) => DecodeError::Invalid("temperature"),
            JobParamsError::Reward(_) => DecodeError::Invalid("reward"),
            _ => DecodeError::Invalid("job parameters"),
        })?;
        Ok(p)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::amount::MAX_MONEY;
    use crate::encode::decode_from_slice;
    use crate::keys::PrivateKey;

    pub(crate) fn sample(prompt: &str) -> JobParams {
        let (prompt_hash, prompt_len) = JobParams::prompt_fields(prompt);
        JobParams {
            model: ModelId::from_byte_array([7; 32]),
            prompt_format: PromptFormat::Raw,
            prompt_hash,
            prompt_len,
            max_tokens: 16,
            sampling: SamplingParams::GREEDY,
            created_at: 1_795_700_000,
            timelock: 330,
            reward: Amount::from_base(1_000_000).unwrap(),
            min_stake: Amount::from_base(500_000).unwrap(),
            client: PrivateKey::from_slice(&[3; 32]).unwrap().public_key(),
            contact: vec![0x00, 0x24, 0x08, 0x01],
            salt: [9; 16],
        }
    }

    #[test]
    fn roundtrip_and_id() {
        let p = sample("hello");
        let bytes = encode_to_vec(&p);
        assert_eq!(bytes.len(), MAX_PARAMS_SIZE - MAX_CONTACT_LEN + 4);
        let back: JobParams = decode_from_slice(&bytes).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.job_id(), JobId::hash(&bytes));
        let mut q = p.clone();
        q.salt[0] ^= 1;
        assert_ne!(q.job_id(), p.job_id());
    }

    #[test]
    fn decoder_refuses_out_of_range_fields() {
        let p = sample("hello");
        let good = encode_to_vec(&p);
        let mutate = |offset: usize, bytes: &[u8]| {
            let mut b = good.clone();
            b[offset..offset + bytes.len()].copy_from_slice(bytes);
            decode_from_slice::<JobParams>(&b)
        };
        assert!(mutate(0, &[2]).is_err(), "version");
        assert!(mutate(33, &[2]).is_err(), "format");
        assert!(mutate(66, &0u32.to_le_bytes()).is_err(), "empty prompt");
        assert!(mutate(66, &16_385u32.to_le_bytes()).is_err(), "long prompt");
        assert!(mutate(70, &0u32.to_le_bytes()).is_err(), "zero tokens");
        assert!(mutate(70, &2_049u32.to_le_bytes()).is_err(), "many tokens");
        assert!(mutate(74, &10_001u32.to_le_bytes()).is_err(), "temperature");
        assert!(mutate(98, &0u64.to_le_bytes()).is_err(), "zero reward");
        assert!(
            mutate(98, &(MAX_MONEY + 1).to_le_bytes()).is_err(),
            "reward"
        );
        assert!(mutate(114, &[0x04]).is_err(), "client key");
        for n in 0..good.len() {
            assert!(decode_from_slice::<JobParams>(&good[..n]).is_err());
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode_from_slice::<JobParams>(&long).is_err());
    }

    #[test]
    fn prompt_check() {
        let p = sample("hello");
        assert!(p.check_prompt(b"hello").is_ok());
        assert_eq!(
            p.check_prompt(b"hellO"),
            Err(JobParamsError::PromptMismatch)
        );
        let (h, n) = (sha256(&[0xff, 0xfe]), 2);
        let q = JobParams {
            prompt_hash: h,
            prompt_len: n,
            ..p
        };
        assert_eq!(
            q.check_prompt(&[0xff, 0xfe]),
            Err(JobParamsError::PromptNotUtf8)
        );
    }
}
