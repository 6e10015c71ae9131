//! The job protocol's pure half: everything a client, a worker, a verifier and a fraud-proof
//! oracle must agree on byte for byte (`docs/protocol.md` sections 11 and 13).
//!
//! - [`params`]: job parameters, their limits and the job id.
//! - [`output`]: the output's reverse hash chain, the delivery plaintext and its encryption under
//!   the one-time delivery key.
//! - [`commitment`]: the worker's signed commitment.
//! - [`envelope`]: NIP-44 v2 and the sealed envelopes everything relayed travels in.
//! - [`message`]: the job messages (offer, announce, bid, assign, commit, release, and the
//!   GetJob request) and their stateless checks.
//! - [`verdict`]: verification requests and signed verdicts.
//! - [`evidence`]: fraud-proof evidence and the oracle's model-free half ([`evidence::JobOracle`]).
//! - [`txs`]: building and signing the job transactions of both parties.
//! - [`rules`]: job records and the consensus job rules (escrow, payment, stake, dispute).

pub mod commitment;
pub mod envelope;
pub mod evidence;
pub mod message;
pub mod output;
pub mod params;
pub mod rules;
pub mod txs;
pub mod verdict;

pub use commitment::Commitment;
pub use params::{JobParams, PromptFormat};

use crate::encode::{DecodeError, Reader};
use crate::hash::Hash256;
use crate::keys::{self, KeyError, PrivateKey, PublicKey};

/// The digest job messages sign: `SHA256d(tag ‖ fields)`.
pub(crate) fn tagged_digest(tag: &[u8], fields: &[u8]) -> Hash256 {
    let mut m = Vec::with_capacity(tag.len().saturating_add(fields.len()));
    m.extend_from_slice(tag);
    m.extend_from_slice(fields);
    Hash256::hash(&m)
}

/// Signs `fields` under `tag`.
pub(crate) fn sign_tagged(key: &PrivateKey, tag: &[u8], fields: &[u8]) -> Vec<u8> {
    keys::sign_hash(key, &tagged_digest(tag, fields))
}

/// Checks a signature over `fields` under `tag`.
pub(crate) fn verify_tagged(
    key: &PublicKey,
    tag: &[u8],
    fields: &[u8],
    sig: &[u8],
) -> Result<(), KeyError> {
    keys::verify_hash(key, &tagged_digest(tag, fields), sig)
}

/// Most bytes of a DER signature.
pub const MAX_SIG_LEN: usize = 72;

pub(crate) fn read_pubkey(r: &mut Reader<'_>) -> Result<PublicKey, DecodeError> {
    let b: [u8; 33] = r.read_array()?;
    PublicKey::from_slice(&b).map_err(|_| DecodeError::Invalid("public key"))
}

pub(crate) fn read_sig(r: &mut Reader<'_>) -> Result<Vec<u8>, DecodeError> {
    r.read_var_bytes("signature", MAX_SIG_LEN)
}

pub(crate) fn read_bool(r: &mut Reader<'_>) -> Result<bool, DecodeError> {
    match r.read_u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::Invalid("flag (must be 0 or 1)")),
    }
}

/// Token lists are `vec<u32>`.
pub(crate) fn write_tokens(out: &mut Vec<u8>, tokens: &[u32]) {
    crate::encode::write_vec(out, tokens);
}

pub(crate) fn read_tokens(r: &mut Reader<'_>, max: usize) -> Result<Vec<u32>, DecodeError> {
    r.read_vec("tokens", max)
}

/// How deep a payment must be confirmed before its worker claims it (§13.7): a claim reveals
/// the delivery key, and a client could replace a payment that is not deep enough.
pub fn claim_depth(params: &crate::params::Params) -> u32 {
    match params.network {
        crate::params::Network::Regtest => 2,
        _ => 6,
    }
}
