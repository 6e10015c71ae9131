//! Script parsing, disassembly, classification and interpretation never panic on any bytes.
#![no_main]

use camel_core::hash::JobId;
use camel_core::interpreter::{NoFraudProofs, ScriptError, SpendContext, verify_script};
use camel_core::script::Script;
use camel_core::templates::classify;
use libfuzzer_sys::fuzz_target;

/// A context whose signature checks fail unless the signature is exactly `[1]`, so the
/// fuzzer can reach the code after CHECKSIG without real keys.
struct Ctx;

impl SpendContext for Ctx {
    fn check_sig(&self, sig: &[u8], _pubkey: &[u8], _code: &Script) -> Result<bool, ScriptError> {
        Ok(sig == [1])
    }
    fn lock_time(&self) -> u32 {
        100
    }
    fn input_sequence(&self) -> u32 {
        0
    }
    fn job_id(&self) -> JobId {
        JobId::from_byte_array([7; 32])
    }
}

fuzz_target!(|data: &[u8]| {
    // First byte splits the input into scriptSig and scriptPubKey.
    let Some((&split, rest)) = data.split_first() else { return };
    let at = usize::from(split).min(rest.len());
    let (sig, pubkey) = rest.split_at(at);
    let sig = Script::new(sig.to_vec());
    let pubkey = Script::new(pubkey.to_vec());
    for ins in pubkey.instructions() {
        if ins.is_err() {
            break;
        }
    }
    let _ = pubkey.to_string();
    let _ = classify(&pubkey);
    let _ = verify_script(&sig, &pubkey, &Ctx, &NoFraudProofs);
});
