//! The script interpreter: a strict Bitcoin-Script subset plus two job opcodes.
//!
//! [`verify_script`] runs the scriptSig (which must be push-only) on an empty stack, then the
//! scriptPubKey on the resulting stack, and accepts when exactly one item is left and it is
//! true. There is no P2SH and no alt stack. Every rule is consensus; `docs/protocol.md` section 8
//! is the normative description, and the unit tests below pin each rule at its boundary.
//!
//! Signatures are checked through a [`SpendContext`] (the real one is [`TransactionChecker`]),
//! fraud proofs through a [`FraudProofOracle`], so the interpreter itself stays pure and can be
//! tested with mocks.

use core::fmt;

use crate::amount::Amount;
use crate::hash::{JobId, hash160, sha256};
use crate::keys::{self, KeyError, PublicKey};
use crate::script::opcodes::*;
use crate::script::{
    Instruction, InstructionError, MAX_SCRIPT_PUBKEY_SIZE, MAX_SCRIPT_SIG_SIZE, Script,
    ScriptNumError, decode_script_num, encode_script_num, is_minimal_push,
};
use crate::sighash::{SIGHASH_ALL, SighashCache, SighashError};
use crate::transaction::{SEQUENCE_FINAL, Transaction, TxOut};

pub use crate::script::MAX_ELEMENT_SIZE;

/// Most non-push opcodes (bytes above `OP_16`) one script may contain, executed or not.
pub const MAX_OPS_PER_SCRIPT: usize = 201;
/// Most items the stack may hold after any instruction (there is no alt stack).
pub const MAX_STACK_SIZE: usize = 1_000;
/// Longest script number `OP_CHECKLOCKTIMEVERIFY` accepts (a u32 height needs 5 bytes).
pub const MAX_LOCKTIME_NUM_SIZE: usize = 5;
/// Length of a compressed public key.
pub const PUBKEY_SIZE: usize = 33;

/// Why a script failed. `Display` gives the short reason (e.g. `eval-false`), with details in
/// parentheses where there are any; [`ScriptError::reason`] gives the short reason alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// The stack ended empty or with a false top item.
    EvalFalse,
    /// `OP_VERIFY` found a false item.
    Verify,
    /// `OP_EQUALVERIFY` found two different items.
    EqualVerify,
    /// `OP_CHECKSIGVERIFY` found a signature that is empty (the only false one NULLFAIL allows).
    CheckSigVerify,
    /// `OP_ELSE`/`OP_ENDIF` without `OP_IF`, a second `OP_ELSE`, `OP_IF` on an empty stack, or
    /// an `OP_IF` left open at the end of a script.
    UnbalancedConditional,
    /// `OP_CHECKLOCKTIMEVERIFY` operand below zero.
    NegativeLocktime,
    /// `OP_CHECKLOCKTIMEVERIFY` operand above the transaction's lock time, or the input is final.
    UnsatisfiedLocktime,
    /// A byte outside the opcode set, wherever it appears.
    BadOpcode(u8),
    /// A push announces more bytes than the script holds.
    TruncatedPush { offset: usize },
    /// `OP_RETURN` was executed.
    OpReturn,
    /// A script exceeds its size limit.
    ScriptSize { len: usize, max: usize },
    /// More than [`MAX_OPS_PER_SCRIPT`] non-push opcodes.
    OpCount,
    /// More than [`MAX_STACK_SIZE`] stack items.
    StackSize,
    /// An opcode needed more stack items than there were.
    InvalidStackOperation,
    /// A push that does not use its minimal encoding.
    MinimalData,
    /// An `OP_IF`/`OP_NOTIF` argument other than empty or `[1]`.
    MinimalIf,
    /// The scriptSig contains something other than pushes.
    SigPushOnly,
    /// More than one item left on the stack.
    CleanStack,
    /// A signature check failed with a non-empty signature.
    NullFail,
    /// A signature that is not strict DER.
    SigDer,
    /// A signature with S above half the group order.
    SigHighS,
    /// A signature whose last byte is not `SIGHASH_ALL`.
    SigHashType,
    /// A public key that is not a valid 33-byte compressed point.
    PubkeyType,
    /// A script number that is too long or not minimally encoded.
    ScriptNum(ScriptNumError),
    /// `OP_CHECKJOBVERIFY`: the top item is not the spending transaction's job id.
    JobMismatch,
    /// The oracle found the fraud proof invalid.
    FraudProofInvalid(String),
    /// The oracle cannot judge the fraud proof (it lacks the model). Returned only when every
    /// other check of both scripts passed: the spend is valid if and only if the proof is.
    FraudProofUnavailable(String),
    /// The input index is past the transaction's inputs.
    InputIndex { index: usize, inputs: usize },
    /// [`verify_input`] was handed a sighash cache built for another transaction.
    SighashCacheMismatch,
}

impl ScriptError {
    /// The short, stable reason string.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EvalFalse => "eval-false",
            Self::Verify => "verify",
            Self::EqualVerify => "equalverify",
            Self::CheckSigVerify => "checksigverify",
            Self::UnbalancedConditional => "unbalanced-conditional",
            Self::NegativeLocktime => "negative-locktime",
            Self::UnsatisfiedLocktime => "unsatisfied-locktime",
            Self::BadOpcode(_) => "bad-opcode",
            Self::TruncatedPush { .. } => "truncated-push",
            Self::OpReturn => "op-return",
            Self::ScriptSize { .. } => "script-size",
            Self::OpCount => "op-count",
            Self::StackSize => "stack-size",
            Self::InvalidStackOperation => "invalid-stack-operation",
            Self::MinimalData => "minimaldata",
            Self::MinimalIf => "minimalif",
            Self::SigPushOnly => "sig-pushonly",
            Self::CleanStack => "cleanstack",
            Self::NullFail => "nullfail",
            Self::SigDer => "sig-der",
            Self::SigHighS => "sig-high-s",
            Self::SigHashType => "sig-hashtype",
            Self::PubkeyType => "pubkey-type",
            Self::ScriptNum(_) => "scriptnum",
            Self::JobMismatch => "job-mismatch",
            Self::FraudProofInvalid(_) => "fraud-proof-invalid",
            Self::FraudProofUnavailable(_) => "fraud-proof-unavailable",
            Self::InputIndex { .. } => "input-index",
            Self::SighashCacheMismatch => "sighash-cache-mismatch",
        }
    }
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = self.reason();
        match self {
            Self::BadOpcode(op) => write!(f, "{reason} (0x{op:02x})"),
            Self::TruncatedPush { offset } => write!(f, "{reason} (at byte {offset})"),
            Self::ScriptSize { len, max } => write!(f, "{reason} ({len} bytes, limit {max})"),
            Self::ScriptNum(e) => write!(f, "{reason} ({e})"),
            Self::FraudProofInvalid(why) | Self::FraudProofUnavailable(why) => {
                write!(f, "{reason} ({why})")
            }
            Self::InputIndex { index, inputs } => {
                write!(f, "{reason} (input {index} of a transaction with {inputs})")
            }
            _ => f.write_str(reason),
        }
    }
}

impl std::error::Error for ScriptError {}

impl From<InstructionError> for ScriptError {
    fn from(e: InstructionError) -> Self {
        match e {
            InstructionError::TruncatedPush { offset } => Self::TruncatedPush { offset },
        }
    }
}

/// What the interpreter needs to know about the spending transaction.
pub trait SpendContext {
    /// Checks a signature (DER ‖ sighash byte) by a public key over this input's sighash with
    /// `script_code` (the scriptPubKey being executed). `Ok(false)` for a well-formed signature
    /// that does not verify; an error for a malformed signature or key.
    fn check_sig(
        &self,
        sig: &[u8],
        pubkey: &[u8],
        script_code: &Script,
    ) -> Result<bool, ScriptError>;
    /// The spending transaction's lock time (always a block height).
    fn lock_time(&self) -> u32;
    /// The sequence of the input being verified.
    fn input_sequence(&self) -> u32;
    /// The spending transaction's job id.
    fn job_id(&self) -> JobId;
}

/// Why an oracle did not accept a fraud proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FraudProofError {
    /// The evidence does not prove the worker's committed output wrong.
    Invalid(String),
    /// This node cannot judge the evidence (it does not hold the model, for instance).
    Unavailable(String),
}

impl fmt::Display for FraudProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid(why) => write!(f, "fraud proof invalid: {why}"),
            Self::Unavailable(why) => write!(f, "fraud proof cannot be checked here: {why}"),
        }
    }
}

impl std::error::Error for FraudProofError {}

/// Judges the evidence `OP_CHECKFRAUDPROOFVERIFY` hands over.
pub trait FraudProofOracle {
    /// `Ok(())` if and only if `evidence` proves that an output `worker` committed to (by a
    /// commitment it signed) for job `job_id` is wrong.
    fn check_fraud_proof(
        &self,
        job_id: &JobId,
        worker: &PublicKey,
        evidence: &[u8],
    ) -> Result<(), FraudProofError>;
}

/// An oracle that finds every fraud proof invalid (tests, and nodes that must never accept one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoFraudProofs;

impl FraudProofOracle for NoFraudProofs {
    fn check_fraud_proof(&self, _: &JobId, _: &PublicKey, _: &[u8]) -> Result<(), FraudProofError> {
        Err(FraudProofError::Invalid(
            "this node accepts no fraud proofs".into(),
        ))
    }
}

/// An oracle that can judge no fraud proof: for nodes without the model, which follow the
/// most-work chain on spends whose validity only a model holder can decide.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FraudProofsUnavailable;

impl FraudProofOracle for FraudProofsUnavailable {
    fn check_fraud_proof(&self, _: &JobId, _: &PublicKey, _: &[u8]) -> Result<(), FraudProofError> {
        Err(FraudProofError::Unavailable(
            "this node holds no model".into(),
        ))
    }
}

/// Verifies that `script_sig` satisfies `script_pubkey`.
///
/// Returns [`ScriptError::FraudProofUnavailable`] only when the oracle could not judge a
/// fraud proof and every other check passed.
pub fn verify_script(
    script_sig: &Script,
    script_pubkey: &Script,
    ctx: &dyn SpendContext,
    oracle: &dyn FraudProofOracle,
) -> Result<(), ScriptError> {
    if script_sig.len() > MAX_SCRIPT_SIG_SIZE {
        return Err(ScriptError::ScriptSize {
            len: script_sig.len(),
            max: MAX_SCRIPT_SIG_SIZE,
        });
    }
    if script_pubkey.len() > MAX_SCRIPT_PUBKEY_SIZE {
        return Err(ScriptError::ScriptSize {
            len: script_pubkey.len(),
            max: MAX_SCRIPT_PUBKEY_SIZE,
        });
    }
    for ins in script_sig.instructions() {
        match ins? {
            Instruction::Push(_) => {}
            Instruction::Op(op) if op == OP_1NEGATE || (OP_1..=OP_16).contains(&op) => {}
            Instruction::Op(_) => return Err(ScriptError::SigPushOnly),
        }
    }
    let mut machine = Machine {
        stack: Vec::new(),
        ctx,
        oracle,
        unavailable: None,
    };
    machine.run(script_sig)?;
    machine.run(script_pubkey)?;
    match machine.stack.as_slice() {
        [] => return Err(ScriptError::EvalFalse),
        [.., top] if !cast_to_bool(top) => return Err(ScriptError::EvalFalse),
        [_] => {}
        _ => return Err(ScriptError::CleanStack),
    }
    match machine.unavailable {
        Some(why) => Err(ScriptError::FraudProofUnavailable(why)),
        None => Ok(()),
    }
}

/// Script truth: false is any string of zero bytes, optionally ending in 0x80 (negative zero).
pub fn cast_to_bool(item: &[u8]) -> bool {
    match item.split_last() {
        None => false,
        Some((&last, init)) => init.iter().any(|&b| b != 0) || (last != 0 && last != 0x80),
    }
}

fn bool_item(b: bool) -> Vec<u8> {
    if b { vec![1] } else { Vec::new() }
}

/// One level of `OP_IF` nesting.
struct Branch {
    /// Whether this level's current arm runs (ignoring enclosing levels).
    taken: bool,
    /// Whether this level already passed its `OP_ELSE`.
    seen_else: bool,
}

struct Machine<'c> {
    stack: Vec<Vec<u8>>,
    ctx: &'c dyn SpendContext,
    oracle: &'c dyn FraudProofOracle,
    /// Why the oracle could not judge a fraud proof, if it could not.
    unavailable: Option<String>,
}

impl Machine<'_> {
    fn pop(&mut self) -> Result<Vec<u8>, ScriptError> {
        self.stack.pop().ok_or(ScriptError::InvalidStackOperation)
    }

    fn top(&self) -> Result<&[u8], ScriptError> {
        self.stack
            .last()
            .map(Vec::as_slice)
            .ok_or(ScriptError::InvalidStackOperation)
    }

    fn run(&mut self, script: &Script) -> Result<(), ScriptError> {
        let mut branches: Vec<Branch> = Vec::new();
        let mut op_count: usize = 0;
        let mut it = script.instructions();
        while let Some(next) = it.next_with_opcode() {
            let (opcode, ins) = next?;
            let exec = branches.iter().all(|b| b.taken);
            match ins {
                Instruction::Push(data) => {
                    if !is_minimal_push(opcode, data) {
                        return Err(ScriptError::MinimalData);
                    }
                    if exec {
                        self.stack.push(data.to_vec());
                    }
                }
                Instruction::Op(op) => {
                    if op > OP_16 {
                        op_count = op_count.saturating_add(1);
                        if op_count > MAX_OPS_PER_SCRIPT {
                            return Err(ScriptError::OpCount);
                        }
                    }
                    if !is_known(op) {
                        return Err(ScriptError::BadOpcode(op));
                    }
                    match op {
                        OP_IF | OP_NOTIF => {
                            let mut taken = false;
                            if exec {
                                let arg =
                                    self.stack.pop().ok_or(ScriptError::UnbalancedConditional)?;
                                taken = match arg.as_slice() {
                                    [] => false,
                                    [1] => true,
                                    _ => return Err(ScriptError::MinimalIf),
                                };
                                if op == OP_NOTIF {
                                    taken = !taken;
                                }
                            }
                            branches.push(Branch {
                                taken,
                                seen_else: false,
                            });
                        }
                        OP_ELSE => match branches.last_mut() {
                            Some(b) if !b.seen_else => {
                                b.taken = !b.taken;
                                b.seen_else = true;
                            }
                            _ => return Err(ScriptError::UnbalancedConditional),
                        },
                        OP_ENDIF => {
                            branches.pop().ok_or(ScriptError::UnbalancedConditional)?;
                        }
                        _ if exec => self.execute(op, script)?,
                        _ => {}
                    }
                }
            }
            if self.stack.len() > MAX_STACK_SIZE {
                return Err(ScriptError::StackSize);
            }
        }
        if branches.is_empty() {
            Ok(())
        } else {
            Err(ScriptError::UnbalancedConditional)
        }
    }

    /// Runs one executed non-push, non-conditional opcode from the known set.
    fn execute(&mut self, op: u8, script: &Script) -> Result<(), ScriptError> {
        match op {
            OP_1NEGATE => self.stack.push(encode_script_num(-1)),
            OP_1..=OP_16 => self.stack.push(encode_script_num(
                i64::from(op.wrapping_sub(OP_1)).wrapping_add(1),
            )),
            OP_VERIFY => {
                if !cast_to_bool(&self.pop()?) {
                    return Err(ScriptError::Verify);
                }
            }
            OP_RETURN => return Err(ScriptError::OpReturn),
            OP_DROP => {
                self.pop()?;
            }
            OP_DUP => {
                let top = self.top()?.to_vec();
                self.stack.push(top);
            }
            OP_EQUAL | OP_EQUALVERIFY => {
                let b = self.pop()?;
                let a = self.pop()?;
                if op == OP_EQUAL {
                    self.stack.push(bool_item(a == b));
                } else if a != b {
                    return Err(ScriptError::EqualVerify);
                }
            }
            OP_SHA256 => {
                let item = self.pop()?;
                self.stack.push(sha256(&item).to_vec());
            }
            OP_HASH160 => {
                let item = self.pop()?;
                self.stack.push(hash160(&item).to_vec());
            }
            OP_CHECKSIG | OP_CHECKSIGVERIFY => {
                let pubkey = self.pop()?;
                let sig = self.pop()?;
                let ok = self.check_sig(&sig, &pubkey, script)?;
                if op == OP_CHECKSIG {
                    self.stack.push(bool_item(ok));
                } else if !ok {
                    return Err(ScriptError::CheckSigVerify);
                }
            }
            OP_CHECKLOCKTIMEVERIFY => {
                let height = decode_script_num(self.top()?, MAX_LOCKTIME_NUM_SIZE)
                    .map_err(ScriptError::ScriptNum)?;
                if height < 0 {
                    return Err(ScriptError::NegativeLocktime);
                }
                if height > i64::from(self.ctx.lock_time())
                    || self.ctx.input_sequence() == SEQUENCE_FINAL
                {
                    return Err(ScriptError::UnsatisfiedLocktime);
                }
            }
            OP_CHECKJOBVERIFY => {
                if self.top()? != self.ctx.job_id().as_bytes() {
                    return Err(ScriptError::JobMismatch);
                }
            }
            OP_CHECKFRAUDPROOFVERIFY => {
                let worker = self.pop()?;
                let job = self.pop()?;
                let evidence = self.pop()?;
                let job: [u8; 32] = job.as_slice().try_into().map_err(|_| {
                    ScriptError::FraudProofInvalid(format!(
                        "job id operand has {} bytes, not 32",
                        job.len()
                    ))
                })?;
                let worker = PublicKey::from_slice(&worker).map_err(|_| ScriptError::PubkeyType)?;
                match self.oracle.check_fraud_proof(
                    &JobId::from_byte_array(job),
                    &worker,
                    &evidence,
                ) {
                    Ok(()) => {}
                    Err(FraudProofError::Invalid(why)) => {
                        return Err(ScriptError::FraudProofInvalid(why));
                    }
                    Err(FraudProofError::Unavailable(why)) => {
                        if self.unavailable.is_none() {
                            self.unavailable = Some(why);
                        }
                    }
                }
            }
            _ => return Err(ScriptError::BadOpcode(op)),
        }
        Ok(())
    }

    /// The signature rules: the key must be a 33-byte compressed encoding; an empty signature
    /// is simply false; otherwise the signature must end in `SIGHASH_ALL` and verify, and a
    /// non-empty signature that does not verify fails the script (NULLFAIL).
    fn check_sig(&self, sig: &[u8], pubkey: &[u8], script: &Script) -> Result<bool, ScriptError> {
        if pubkey.len() != PUBKEY_SIZE || !matches!(pubkey.first(), Some(0x02 | 0x03)) {
            return Err(ScriptError::PubkeyType);
        }
        match sig.last() {
            None => return Ok(false),
            Some(&SIGHASH_ALL) => {}
            Some(_) => return Err(ScriptError::SigHashType),
        }
        if self.ctx.check_sig(sig, pubkey, script)? {
            Ok(true)
        } else {
            Err(ScriptError::NullFail)
        }
    }
}

/// The real [`SpendContext`]: input `input_index` of the transaction a [`SighashCache`] was
/// built for, spending an output worth `spent_amount`.
#[derive(Debug, Clone, Copy)]
pub struct TransactionChecker<'a> {
    tx: &'a Transaction,
    input_index: usize,
    spent_amount: Amount,
    cache: &'a SighashCache<'a>,
}

impl<'a> TransactionChecker<'a> {
    pub fn new(cache: &'a SighashCache<'a>, input_index: usize, spent_amount: Amount) -> Self {
        Self {
            tx: cache.transaction(),
            input_index,
            spent_amount,
            cache,
        }
    }

    pub fn transaction(&self) -> &'a Transaction {
        self.tx
    }

    pub fn input_index(&self) -> usize {
        self.input_index
    }
}

impl SpendContext for TransactionChecker<'_> {
    fn check_sig(
        &self,
        sig: &[u8],
        pubkey: &[u8],
        script_code: &Script,
    ) -> Result<bool, ScriptError> {
        let key = PublicKey::from_slice(pubkey).map_err(|_| ScriptError::PubkeyType)?;
        let Some((&hash_type, der)) = sig.split_last() else {
            return Ok(false);
        };
        if hash_type != SIGHASH_ALL {
            return Err(ScriptError::SigHashType);
        }
        let digest = self
            .cache
            .signature_hash(self.input_index, script_code, self.spent_amount)
            .map_err(|e| match e {
                SighashError::InputIndex { index, inputs } => {
                    ScriptError::InputIndex { index, inputs }
                }
            })?;
        match keys::verify_hash(&key, &digest, der) {
            Ok(()) => Ok(true),
            Err(KeyError::BadSignature) => Ok(false),
            Err(KeyError::HighS) => Err(ScriptError::SigHighS),
            Err(KeyError::InvalidPublicKey { .. }) => Err(ScriptError::PubkeyType),
            Err(_) => Err(ScriptError::SigDer),
        }
    }

    fn lock_time(&self) -> u32 {
        self.tx.lock_time
    }

    fn input_sequence(&self) -> u32 {
        self.tx
            .inputs
            .get(self.input_index)
            .map_or(SEQUENCE_FINAL, |i| i.sequence)
    }

    fn job_id(&self) -> JobId {
        self.tx.job_id
    }
}

/// Verifies input `input_index` of `tx`, which spends `spent`. `cache` must have been built
/// from `tx` (one cache serves every input of a transaction).
pub fn verify_input(
    tx: &Transaction,
    input_index: usize,
    spent: &TxOut,
    cache: &SighashCache<'_>,
    oracle: &dyn FraudProofOracle,
) -> Result<(), ScriptError> {
    if !core::ptr::eq(cache.transaction(), tx) && cache.transaction() != tx {
        return Err(ScriptError::SighashCacheMismatch);
    }
    let input = tx.inputs.get(input_index).ok_or(ScriptError::InputIndex {
        index: input_index,
        inputs: tx.inputs.len(),
    })?;
    let checker = TransactionChecker {
        tx,
        input_index,
        spent_amount: spent.value,
        cache,
    };
    verify_script(&input.script_sig, &spent.script_pubkey, &checker, oracle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::{Builder, MAX_ELEMENT_SIZE};
    use proptest::prelude::*;

    const OP_2: u8 = 0x52;
    const OP_3: u8 = 0x53;
    const PK: [u8; 33] = [0x02; 33];
    const GOOD_SIG: &[u8] = &[0x30, 0x01, SIGHASH_ALL];
    const BAD_SIG: &[u8] = &[0x30, 0x02, SIGHASH_ALL];

    /// Accepts exactly `GOOD_SIG` by `PK`.
    struct Mock {
        lock_time: u32,
        sequence: u32,
        job: JobId,
    }

    impl Default for Mock {
        fn default() -> Self {
            Self {
                lock_time: 100,
                sequence: 0,
                job: JobId::from_byte_array([7; 32]),
            }
        }
    }

    impl SpendContext for Mock {
        fn check_sig(&self, sig: &[u8], pubkey: &[u8], _: &Script) -> Result<bool, ScriptError> {
            Ok(sig == GOOD_SIG && pubkey == PK)
        }
        fn lock_time(&self) -> u32 {
            self.lock_time
        }
        fn input_sequence(&self) -> u32 {
            self.sequence
        }
        fn job_id(&self) -> JobId {
            self.job
        }
    }

    fn s(b: Builder) -> Script {
        b.into_script()
    }

    fn raw(bytes: &[u8]) -> Script {
        Script::new(bytes.to_vec())
    }

    fn run(sig: &Script, pk: &Script) -> Result<(), ScriptError> {
        verify_script(sig, pk, &Mock::default(), &NoFraudProofs)
    }

    fn run_with(sig: &Script, pk: &Script, ctx: &Mock) -> Result<(), ScriptError> {
        verify_script(sig, pk, ctx, &NoFraudProofs)
    }

    #[test]
    fn truth_values() {
        for f in [&[][..], &[0], &[0, 0], &[0x80], &[0, 0, 0x80]] {
            assert!(!cast_to_bool(f), "{f:?}");
        }
        for t in [&[1][..], &[0, 1], &[0x80, 0], &[0x81], &[0, 0x80, 0]] {
            assert!(cast_to_bool(t), "{t:?}");
        }
    }

    #[test]
    fn final_stack_rules() {
        let empty = Script::default();
        assert_eq!(run(&empty, &raw(&[OP_1])), Ok(()));
        assert_eq!(run(&empty, &empty), Err(ScriptError::EvalFalse));
        assert_eq!(run(&empty, &raw(&[OP_0])), Err(ScriptError::EvalFalse));
        assert_eq!(
            run(&raw(&[OP_1]), &raw(&[OP_1])),
            Err(ScriptError::CleanStack)
        );
        assert_eq!(
            run(&raw(&[OP_1]), &raw(&[OP_0])),
            Err(ScriptError::EvalFalse)
        );
        // Negative zero is false.
        assert_eq!(run(&raw(&[1, 0x80]), &empty), Err(ScriptError::EvalFalse));
    }

    #[test]
    fn script_sig_must_be_push_only() {
        assert_eq!(
            run(&raw(&[OP_1, OP_DUP]), &raw(&[OP_DROP])),
            Err(ScriptError::SigPushOnly)
        );
        assert_eq!(
            run(&raw(&[OP_1, 0x50]), &raw(&[OP_DROP])),
            Err(ScriptError::SigPushOnly)
        );
        assert_eq!(run(&raw(&[OP_1NEGATE, OP_16]), &raw(&[OP_DROP])), Ok(()));
        assert_eq!(
            run(&raw(&[OP_1, 3, 0]), &raw(&[OP_1])),
            Err(ScriptError::TruncatedPush { offset: 1 })
        );
    }

    #[test]
    fn minimal_data_in_both_scripts() {
        // 0x01 0x05 pushes [5], which OP_5 pushes minimally.
        assert_eq!(
            run(&raw(&[1, 5]), &Script::default()),
            Err(ScriptError::MinimalData)
        );
        assert_eq!(
            run(&raw(&[OP_PUSHDATA1, 1, 17]), &Script::default()),
            Err(ScriptError::MinimalData)
        );
        assert_eq!(run(&raw(&[1, 17]), &Script::default()), Ok(()));
        // In an unexecuted branch too.
        assert_eq!(
            run(
                &Script::default(),
                &raw(&[OP_0, OP_IF, 1, 5, OP_ENDIF, OP_1])
            ),
            Err(ScriptError::MinimalData)
        );
        assert_eq!(
            run(
                &Script::default(),
                &raw(&[OP_0, OP_IF, 1, 17, OP_ENDIF, OP_1])
            ),
            Ok(())
        );
    }

    #[test]
    fn conditionals() {
        let pk = raw(&[OP_IF, OP_1, OP_ELSE, OP_0, OP_ENDIF]);
        assert_eq!(run(&raw(&[OP_1]), &pk), Ok(()));
        assert_eq!(run(&raw(&[OP_0]), &pk), Err(ScriptError::EvalFalse));
        let notif = raw(&[OP_NOTIF, OP_1, OP_ELSE, OP_0, OP_ENDIF]);
        assert_eq!(run(&raw(&[OP_0]), &notif), Ok(()));
        assert_eq!(run(&raw(&[OP_1]), &notif), Err(ScriptError::EvalFalse));
        // MINIMALIF: only [] and [1].
        assert_eq!(run(&raw(&[OP_2]), &pk), Err(ScriptError::MinimalIf));
        assert_eq!(run(&raw(&[1, 0]), &pk), Err(ScriptError::MinimalIf));
        assert_eq!(run(&raw(&[2, 1, 0]), &pk), Err(ScriptError::MinimalIf));
        // Nesting: the inner IF in a skipped branch pops nothing.
        let nested = raw(&[OP_IF, OP_IF, OP_0, OP_ENDIF, OP_ELSE, OP_1, OP_ENDIF]);
        assert_eq!(run(&raw(&[OP_0]), &nested), Ok(()));
        let unbalanced = Err(ScriptError::UnbalancedConditional);
        assert_eq!(run(&raw(&[OP_1]), &raw(&[OP_IF, OP_1])), unbalanced);
        assert_eq!(run(&Script::default(), &raw(&[OP_1, OP_ENDIF])), unbalanced);
        assert_eq!(
            run(&Script::default(), &raw(&[OP_1, OP_ELSE, OP_ENDIF])),
            unbalanced
        );
        assert_eq!(
            run(&Script::default(), &raw(&[OP_IF, OP_1, OP_ENDIF])),
            unbalanced
        );
        // One ELSE per IF.
        assert_eq!(
            run(
                &raw(&[OP_1]),
                &raw(&[OP_IF, OP_0, OP_ELSE, OP_0, OP_ELSE, OP_1, OP_ENDIF])
            ),
            unbalanced
        );
    }

    #[test]
    fn verify_return_drop_dup_equal_hashes() {
        let e = Script::default();
        assert_eq!(run(&e, &raw(&[OP_1, OP_VERIFY, OP_1])), Ok(()));
        assert_eq!(
            run(&e, &raw(&[OP_0, OP_VERIFY, OP_1])),
            Err(ScriptError::Verify)
        );
        assert_eq!(
            run(&e, &raw(&[OP_1, OP_RETURN])),
            Err(ScriptError::OpReturn)
        );
        assert_eq!(
            run(&e, &raw(&[OP_0, OP_IF, OP_RETURN, OP_ENDIF, OP_1])),
            Ok(())
        );
        assert_eq!(run(&e, &raw(&[OP_1, OP_2, OP_DROP])), Ok(()));
        assert_eq!(
            run(&e, &raw(&[OP_DROP])),
            Err(ScriptError::InvalidStackOperation)
        );
        assert_eq!(
            run(&e, &raw(&[OP_DUP])),
            Err(ScriptError::InvalidStackOperation)
        );
        assert_eq!(run(&e, &raw(&[OP_2, OP_DUP, OP_EQUAL])), Ok(()));
        assert_eq!(
            run(&e, &raw(&[OP_2, OP_3, OP_EQUAL])),
            Err(ScriptError::EvalFalse)
        );
        assert_eq!(
            run(&e, &raw(&[OP_2, OP_3, OP_EQUALVERIFY, OP_1])),
            Err(ScriptError::EqualVerify)
        );
        assert_eq!(
            run(&e, &raw(&[OP_2, OP_EQUAL])),
            Err(ScriptError::InvalidStackOperation)
        );
        let sha = crate::hash::sha256(b"abc");
        let pk = s(Builder::new()
            .push_opcode(OP_SHA256)
            .push_array(&sha)
            .push_opcode(OP_EQUAL));
        assert_eq!(
            run(&s(Builder::new().push_slice(b"abc").unwrap()), &pk),
            Ok(())
        );
        assert_eq!(
            run(&s(Builder::new().push_slice(b"abd").unwrap()), &pk),
            Err(ScriptError::EvalFalse)
        );
        let h160 = crate::hash::hash160(b"abc");
        let pk = s(Builder::new()
            .push_opcode(OP_HASH160)
            .push_array(&h160)
            .push_opcode(OP_EQUAL));
        assert_eq!(
            run(&s(Builder::new().push_slice(b"abc").unwrap()), &pk),
            Ok(())
        );
        assert_eq!(
            run(&e, &raw(&[OP_SHA256])),
            Err(ScriptError::InvalidStackOperation)
        );
    }

    #[test]
    fn unknown_opcodes_fail_even_unexecuted() {
        for op in [
            0x4e, 0x50, 0x61, 0x62, 0x65, 0x66, 0x6b, 0x7e, 0x93, 0xa6, 0xb0, 0xb2, 0xb5, 0xff,
        ] {
            assert_eq!(
                run(&Script::default(), &raw(&[OP_0, OP_IF, op, OP_ENDIF, OP_1])),
                Err(ScriptError::BadOpcode(op)),
                "{op:#x}"
            );
        }
    }

    #[test]
    fn small_numbers() {
        let pk = s(Builder::new()
            .push_slice(&[16])
            .unwrap()
            .push_opcode(OP_EQUAL));
        assert_eq!(run(&raw(&[OP_16]), &pk), Ok(()));
        let pk = s(Builder::new()
            .push_slice(&[0x81])
            .unwrap()
            .push_opcode(OP_EQUAL));
        assert_eq!(run(&raw(&[OP_1NEGATE]), &pk), Ok(()));
    }

    #[test]
    fn op_count_limit() {
        // OP_1 then n OP_DUPs: n non-push opcodes, n + 1 items.
        let dups = |n: usize| {
            let mut v = vec![OP_1];
            v.extend(std::iter::repeat_n(OP_DUP, n));
            Script::new(v)
        };
        // Exactly the limit runs (and ends unclean); one more is refused.
        let e = Script::default();
        assert_eq!(
            run(&e, &dups(MAX_OPS_PER_SCRIPT)),
            Err(ScriptError::CleanStack)
        );
        assert_eq!(
            run(&e, &dups(MAX_OPS_PER_SCRIPT + 1)),
            Err(ScriptError::OpCount)
        );
        // Unexecuted opcodes count too (IF and ENDIF included); pushes and OP_1..OP_16 do not.
        let mut v = vec![OP_0, OP_IF];
        v.extend(std::iter::repeat_n(OP_DUP, MAX_OPS_PER_SCRIPT - 2));
        v.extend([OP_ENDIF, OP_1]);
        v.extend(std::iter::repeat_n(OP_16, 500));
        assert_eq!(
            run(&e, &Script::new(v.clone())),
            Err(ScriptError::CleanStack)
        );
        v.insert(2, OP_DUP);
        assert_eq!(run(&e, &Script::new(v)), Err(ScriptError::OpCount));
    }

    #[test]
    fn stack_size_limit() {
        // scriptSig pushes, scriptPubKey removes with VERIFYs (each one op).
        let at = raw(&vec![OP_1; MAX_STACK_SIZE]);
        let mut pk = vec![OP_VERIFY; 200];
        pk.push(OP_1);
        // 1,000 items after the scriptSig is fine (the failure is the unclean stack later).
        assert_eq!(run(&at, &raw(&pk)), Err(ScriptError::CleanStack));
        let past = raw(&vec![OP_1; MAX_STACK_SIZE + 1]);
        assert_eq!(run(&past, &raw(&pk)), Err(ScriptError::StackSize));
        // Reaching 1,001 inside the scriptPubKey.
        assert_eq!(run(&at, &raw(&[OP_DUP])), Err(ScriptError::StackSize));
        let mut reach = vec![OP_1; MAX_STACK_SIZE - 1];
        reach.push(OP_DUP);
        assert_eq!(
            run(&Script::default(), &raw(&reach)),
            Err(ScriptError::CleanStack)
        );
    }

    #[test]
    fn script_sizes_at_and_past_the_limits() {
        let sig = |len: usize| {
            // Two PUSHDATA2 pushes (3-byte headers each) filling exactly `len` bytes.
            let first = MAX_ELEMENT_SIZE;
            Builder::new()
                .push_slice(&vec![1; first])
                .unwrap()
                .push_slice(&vec![1; len - first - 6])
                .unwrap()
                .into_script()
        };
        let drop = raw(&[OP_DROP]);
        let at = sig(MAX_SCRIPT_SIG_SIZE);
        assert_eq!(at.len(), MAX_SCRIPT_SIG_SIZE);
        assert_eq!(run(&at, &drop), Ok(()));
        let past = sig(MAX_SCRIPT_SIG_SIZE + 1);
        assert_eq!(
            run(&past, &drop),
            Err(ScriptError::ScriptSize {
                len: MAX_SCRIPT_SIG_SIZE + 1,
                max: MAX_SCRIPT_SIG_SIZE
            })
        );
        // scriptPubKey: OP_1, one big push and a DROP, exactly at the limit.
        let mut pk = vec![OP_1];
        let filler = MAX_SCRIPT_PUBKEY_SIZE - 1 - 4;
        pk.extend([OP_PUSHDATA2]);
        pk.extend((filler as u16).to_le_bytes());
        pk.extend(vec![9; filler]);
        pk.push(OP_DROP);
        assert_eq!(pk.len(), MAX_SCRIPT_PUBKEY_SIZE);
        assert_eq!(run(&Script::default(), &raw(&pk)), Ok(()));
        let mut past = pk.clone();
        past.insert(0, OP_1);
        assert_eq!(past.len(), MAX_SCRIPT_PUBKEY_SIZE + 1);
        assert_eq!(
            run(&Script::default(), &raw(&past)),
            Err(ScriptError::ScriptSize {
                len: MAX_SCRIPT_PUBKEY_SIZE + 1,
                max: MAX_SCRIPT_PUBKEY_SIZE
            })
        );
    }

    #[test]
    fn largest_element() {
        let sig = s(Builder::new()
            .push_slice(&vec![3; MAX_ELEMENT_SIZE])
            .unwrap());
        let pk = s(Builder::new()
            .push_opcode(OP_SHA256)
            .push_array(&crate::hash::sha256(&vec![3; MAX_ELEMENT_SIZE]))
            .push_opcode(OP_EQUAL));
        assert_eq!(run(&sig, &pk), Ok(()));
    }

    #[test]
    fn checksig_rules() {
        let pk = s(Builder::new().push_array(&PK).push_opcode(OP_CHECKSIG));
        let sig = |b: &[u8]| s(Builder::new().push_slice(b).unwrap());
        assert_eq!(run(&sig(GOOD_SIG), &pk), Ok(()));
        // Empty signature: false, no error; under NOTIF it can be spent deliberately.
        assert_eq!(run(&sig(&[]), &pk), Err(ScriptError::EvalFalse));
        let notpk = s(Builder::new()
            .push_array(&PK)
            .push_opcode(OP_CHECKSIG)
            .push_opcode(OP_NOTIF)
            .push_opcode(OP_1)
            .push_opcode(OP_ELSE)
            .push_opcode(OP_0)
            .push_opcode(OP_ENDIF));
        assert_eq!(run(&sig(&[]), &notpk), Ok(()));
        // NULLFAIL: a failing non-empty signature is an error even under NOT.
        assert_eq!(run(&sig(BAD_SIG), &notpk), Err(ScriptError::NullFail));
        assert_eq!(run(&sig(BAD_SIG), &pk), Err(ScriptError::NullFail));
        assert_eq!(
            run(&sig(&[0x30, 0x01, 0x02]), &pk),
            Err(ScriptError::SigHashType)
        );
        assert_eq!(
            run(&sig(&[0x30, 0x01, 0x81]), &pk),
            Err(ScriptError::SigHashType)
        );
        for bad_key in [&[0x04; 33][..], &[0x02; 32], &[0x02; 34], &[0x02; 65]] {
            let pk = s(Builder::new()
                .push_slice(bad_key)
                .unwrap()
                .push_opcode(OP_CHECKSIG));
            assert_eq!(run(&sig(GOOD_SIG), &pk), Err(ScriptError::PubkeyType));
            assert_eq!(run(&sig(&[]), &pk), Err(ScriptError::PubkeyType));
        }
        let verify = s(Builder::new()
            .push_array(&PK)
            .push_opcode(OP_CHECKSIGVERIFY)
            .push_opcode(OP_1));
        assert_eq!(run(&sig(GOOD_SIG), &verify), Ok(()));
        assert_eq!(run(&sig(&[]), &verify), Err(ScriptError::CheckSigVerify));
        assert_eq!(run(&sig(BAD_SIG), &verify), Err(ScriptError::NullFail));
        assert_eq!(
            run(&Script::default(), &verify),
            Err(ScriptError::InvalidStackOperation)
        );
    }

    #[test]
    fn checklocktimeverify() {
        let cltv = |h: i64| {
            s(Builder::new()
                .push_int(h)
                .push_opcode(OP_CHECKLOCKTIMEVERIFY)
                .push_opcode(OP_DROP)
                .push_opcode(OP_1))
        };
        let e = Script::default();
        let ctx = Mock {
            lock_time: 500,
            ..Mock::default()
        };
        assert_eq!(run_with(&e, &cltv(500), &ctx), Ok(()));
        assert_eq!(run_with(&e, &cltv(499), &ctx), Ok(()));
        assert_eq!(run_with(&e, &cltv(0), &ctx), Ok(()));
        assert_eq!(
            run_with(&e, &cltv(501), &ctx),
            Err(ScriptError::UnsatisfiedLocktime)
        );
        assert_eq!(
            run_with(&e, &cltv(-1), &ctx),
            Err(ScriptError::NegativeLocktime)
        );
        let final_input = Mock {
            sequence: SEQUENCE_FINAL,
            ..ctx
        };
        assert_eq!(
            run_with(&e, &cltv(1), &final_input),
            Err(ScriptError::UnsatisfiedLocktime)
        );
        let top = Mock {
            lock_time: u32::MAX,
            ..Mock::default()
        };
        assert_eq!(run_with(&e, &cltv(i64::from(u32::MAX)), &top), Ok(()));
        assert_eq!(
            run_with(&e, &cltv(i64::from(u32::MAX) + 1), &top),
            Err(ScriptError::UnsatisfiedLocktime)
        );
        // Five bytes at most, minimally encoded.
        assert_eq!(
            run_with(&e, &cltv(1 << 40), &top),
            Err(ScriptError::ScriptNum(ScriptNumError::TooLong {
                len: 6,
                max: 5
            }))
        );
        let nonminimal = s(Builder::new()
            .push_slice(&[5, 0])
            .unwrap()
            .push_opcode(OP_CHECKLOCKTIMEVERIFY));
        assert_eq!(
            run_with(&e, &nonminimal, &ctx),
            Err(ScriptError::ScriptNum(ScriptNumError::NonMinimal))
        );
        assert_eq!(
            run_with(&e, &raw(&[OP_CHECKLOCKTIMEVERIFY]), &ctx),
            Err(ScriptError::InvalidStackOperation)
        );
        // The operand stays on the stack.
        let keep = s(Builder::new()
            .push_int(3)
            .push_opcode(OP_CHECKLOCKTIMEVERIFY));
        assert_eq!(run_with(&e, &keep, &ctx), Ok(()));
    }

    #[test]
    fn checkjobverify() {
        let ctx = Mock::default();
        let pk = |j: &[u8]| {
            s(Builder::new()
                .push_slice(j)
                .unwrap()
                .push_opcode(OP_CHECKJOBVERIFY))
        };
        assert_eq!(
            run_with(&Script::default(), &pk(ctx.job.as_bytes()), &ctx),
            Ok(())
        );
        assert_eq!(
            run_with(&Script::default(), &pk(&[8; 32]), &ctx),
            Err(ScriptError::JobMismatch)
        );
        assert_eq!(
            run_with(&Script::default(), &pk(&[7; 31]), &ctx),
            Err(ScriptError::JobMismatch)
        );
        assert_eq!(
            run_with(&Script::default(), &pk(&[7; 33]), &ctx),
            Err(ScriptError::JobMismatch)
        );
        assert_eq!(
            run_with(&Script::default(), &raw(&[OP_CHECKJOBVERIFY]), &ctx),
            Err(ScriptError::InvalidStackOperation)
        );
    }

    /// Accepts evidence "fraud" for job [7; 32] by `worker`, and says "unavailable" for
    /// evidence "unknown".
    struct TestOracle {
        worker: PublicKey,
    }

    impl FraudProofOracle for TestOracle {
        fn check_fraud_proof(
            &self,
            job: &JobId,
            worker: &PublicKey,
            evidence: &[u8],
        ) -> Result<(), FraudProofError> {
            if evidence == b"unknown" {
                return Err(FraudProofError::Unavailable("no model".into()));
            }
            if *job == JobId::from_byte_array([7; 32])
                && *worker == self.worker
                && evidence == b"fraud"
            {
                Ok(())
            } else {
                Err(FraudProofError::Invalid("does not prove fraud".into()))
            }
        }
    }

    #[test]
    fn checkfraudproofverify() {
        let worker = crate::keys::PrivateKey::from_slice(&[5; 32])
            .unwrap()
            .public_key();
        let oracle = TestOracle { worker };
        let ctx = Mock::default();
        let pk = |job: &[u8], tail: &[u8]| {
            let mut b = Builder::new()
                .push_slice(job)
                .unwrap()
                .push_array(&worker.to_bytes())
                .push_opcode(OP_CHECKFRAUDPROOFVERIFY);
            for &op in tail {
                b = b.push_opcode(op);
            }
            b.into_script()
        };
        let ev = |e: &[u8]| s(Builder::new().push_slice(e).unwrap());
        let go = |sig: &Script, pk: &Script| verify_script(sig, pk, &ctx, &oracle);
        // Pops all three operands.
        assert_eq!(go(&ev(b"fraud"), &pk(&[7; 32], &[OP_1])), Ok(()));
        assert_eq!(
            go(&ev(b"fraud"), &pk(&[7; 32], &[])),
            Err(ScriptError::EvalFalse)
        );
        assert!(matches!(
            go(&ev(b"nope"), &pk(&[7; 32], &[OP_1])),
            Err(ScriptError::FraudProofInvalid(_))
        ));
        assert!(matches!(
            go(&ev(b"fraud"), &pk(&[8; 32], &[OP_1])),
            Err(ScriptError::FraudProofInvalid(_))
        ));
        assert!(matches!(
            go(&ev(b"fraud"), &pk(&[7; 31], &[OP_1])),
            Err(ScriptError::FraudProofInvalid(_))
        ));
        assert_eq!(
            verify_script(&ev(b"fraud"), &pk(&[7; 32], &[OP_1]), &ctx, &NoFraudProofs),
            Err(ScriptError::FraudProofInvalid(
                "this node accepts no fraud proofs".into()
            ))
        );
        assert_eq!(
            verify_script(
                &ev(b"fraud"),
                &pk(&[7; 32], &[OP_1]),
                &ctx,
                &FraudProofsUnavailable
            ),
            Err(ScriptError::FraudProofUnavailable(
                "this node holds no model".into()
            ))
        );
        // Unavailable is reported only if everything else passes.
        assert_eq!(
            go(&ev(b"unknown"), &pk(&[7; 32], &[OP_1])),
            Err(ScriptError::FraudProofUnavailable("no model".into()))
        );
        assert_eq!(
            go(&ev(b"unknown"), &pk(&[7; 32], &[OP_0])),
            Err(ScriptError::EvalFalse)
        );
        assert_eq!(
            go(&ev(b"unknown"), &pk(&[7; 32], &[OP_1, OP_1])),
            Err(ScriptError::CleanStack)
        );
        // A worker operand that is not a key.
        let bad = s(Builder::new()
            .push_slice(b"fraud")
            .unwrap()
            .push_array(&[7; 32])
            .push_array(&[4; 33])
            .push_opcode(OP_CHECKFRAUDPROOFVERIFY)
            .push_opcode(OP_1));
        assert_eq!(go(&Script::default(), &bad), Err(ScriptError::PubkeyType));
        let short = s(Builder::new()
            .push_array(&[7; 32])
            .push_array(&worker.to_bytes())
            .push_opcode(OP_CHECKFRAUDPROOFVERIFY)
            .push_opcode(OP_1));
        assert_eq!(
            go(&Script::default(), &short),
            Err(ScriptError::InvalidStackOperation)
        );
    }

    #[test]
    fn error_messages() {
        assert_eq!(ScriptError::EvalFalse.to_string(), "eval-false");
        assert_eq!(
            ScriptError::BadOpcode(0xba).to_string(),
            "bad-opcode (0xba)"
        );
        assert_eq!(
            ScriptError::FraudProofUnavailable("no model".into()).to_string(),
            "fraud-proof-unavailable (no model)"
        );
        assert_eq!(
            ScriptError::ScriptSize { len: 5, max: 4 }.to_string(),
            "script-size (5 bytes, limit 4)"
        );
    }

    proptest! {
        #[test]
        fn random_scripts_never_panic(
            sig in proptest::collection::vec(any::<u8>(), 0..200),
            pk in proptest::collection::vec(any::<u8>(), 0..200),
            lock_time in any::<u32>(),
            sequence in any::<u32>(),
        ) {
            let ctx = Mock { lock_time, sequence, ..Mock::default() };
            let _ = verify_script(&Script::new(sig.clone()), &Script::new(pk.clone()), &ctx, &NoFraudProofs);
            let _ = verify_script(&Script::default(), &Script::new(pk), &ctx, &FraudProofsUnavailable);
            let _ = verify_script(&Script::default(), &Script::new(sig), &ctx, &NoFraudProofs);
        }

        #[test]
        fn random_opcode_soup_never_panics(
            ops in proptest::collection::vec(prop_oneof![
                Just(OP_0), Just(OP_1), Just(OP_16), Just(OP_1NEGATE), Just(OP_IF), Just(OP_NOTIF),
                Just(OP_ELSE), Just(OP_ENDIF), Just(OP_VERIFY), Just(OP_RETURN), Just(OP_DROP),
                Just(OP_DUP), Just(OP_EQUAL), Just(OP_EQUALVERIFY), Just(OP_SHA256), Just(OP_HASH160),
                Just(OP_CHECKSIG), Just(OP_CHECKSIGVERIFY), Just(OP_CHECKLOCKTIMEVERIFY),
                Just(OP_CHECKJOBVERIFY), Just(OP_CHECKFRAUDPROOFVERIFY), Just(0x02u8), Just(0x21u8),
            ], 0..300),
        ) {
            let _ = verify_script(&raw(&[OP_1, OP_0, OP_1]), &Script::new(ops), &Mock::default(), &FraudProofsUnavailable);
        }
    }
}
