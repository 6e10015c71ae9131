//! Job records and the job rules: the small covenant that binds transactions to a job through
//! their `job_id` field, checked by consensus on top of the scripts.
//!
//! The chain keeps one [`JobRecord`] per job id: the height the job was created at, its escrow,
//! the worker's stake, the payment HTLCs paid out of the escrow, and when the job was paid,
//! claimed and disputed. [`check_job_rules`] checks one transaction against the records (seen
//! through a [`JobView`]) and returns the records it creates or changes.
//!
//! The rules, with `C` the job's creation height, `D = params.job_payment_delay`,
//! `W = params.dispute_window` and `h` the height of the block the transaction is in
//! (`docs/protocol.md` section 11 is the normative text):
//!
//! 1. an escrow, payment or stake output for job `J` may only be created by a transaction
//!    whose job id is `J` (`bad-job-escrow-mismatch`, `bad-job-payment-mismatch`,
//!    `bad-job-stake-mismatch`);
//! 2. a transaction with job id `J ≠ 0` and an escrow output creates `J`
//!    (`bad-job-duplicate` if `J` exists); any other transaction with job id `J ≠ 0` needs `J`
//!    to exist (`bad-job-unknown`), as does any spend of an escrow, payment or stake of `J`
//!    through its first branch;
//! 3. paying: spending an escrow of `J` through its first branch (selector `OP_1`) is valid
//!    only at `h ≥ C + D` (`bad-job-payment-early`) and only if the transaction creates a
//!    payment HTLC (`bad-job-payment-template`; by rule 1 it is for the transaction's job);
//!    the HTLCs it creates are recorded as the job's payments;
//! 4. claiming: spending a payment HTLC of `J` through its first branch (the worker reveals
//!    the key) is valid only in a transaction whose job id is `J` (`bad-job-claim-mismatch`),
//!    and that transaction must lock at least the claimed value into stake outputs for `J`
//!    naming the payment's worker and client, each with a window end of at least
//!    [`JobRecord::dispute_end`]`(h)` (`bad-job-claim-unlocked`), so a fraud proof can still
//!    void the payment;
//! 5. every stake output for `J` created at height `h` must have a window end of at least
//!    `dispute_end(h) = max(h, C + D) + W` (`bad-job-stake-unlocked`): the worker can never
//!    reclaim a stake while a fraud proof against it is still admissible;
//!    A claim is valid only before the payment's timeout, `h < timeout_height`
//!    (`bad-job-claim-late`), so that the last claim of a job has a known bound;
//! 6. disputing: spending a stake of `J` created at height `s` through its first branch (the
//!    fraud proof) is valid only at `h < max(dispute_end(s), claims_end)`
//!    (`bad-job-dispute-late`), `claims_end` being the largest `dispute_end` of the job's
//!    claims so far: every stake stays slashable for as long as any claim of its job is;
//! 7. reclaiming: spending a stake of `J` through its second branch is valid only at
//!    `h ≥ claims_end` and `h ≥ claimable_until`, the latest timeout of the payments made
//!    out of the job's escrow (`bad-job-reclaim-early`): a worker cannot take its stake back first and claim after.

use core::fmt;
use std::collections::HashMap;

use crate::amount::Amount;
use crate::encode::{Decodable, DecodeError, Encodable, Reader, write_vec};
use crate::hash::{JobId, Txid};
use crate::keys::PublicKey;
use crate::params::Params;
use crate::script::opcodes::OP_1;
use crate::script::{Instruction, Script};
use crate::templates::{Template, classify_job};
use crate::transaction::{MAX_TX_SIZE, OutPoint, Transaction};
use crate::utxo::Coin;

/// Most payment HTLCs one record can list: more than any block could create.
pub const MAX_RECORDED_PAYMENTS: usize = MAX_TX_SIZE / 9;

/// What the chain knows about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// Height of the block holding the transaction that created the job.
    pub created_height: u32,
    /// The creating transaction's first escrow output.
    pub escrow: OutPoint,
    /// The acceptance: the first stake output for the job created by a transaction that
    /// claims no payment.
    pub stake: Option<OutPoint>,
    /// Payment HTLCs created by paying the job's escrow, in the order they were mined.
    pub payments: Vec<OutPoint>,
    /// Height of the block holding the first payment.
    pub paid_height: Option<u32>,
    /// Height of the block holding the first claim of a payment.
    pub claimed_height: Option<u32>,
    /// Height of the block holding the first spend of a stake through its fraud-proof branch.
    pub disputed_height: Option<u32>,
    /// The latest `timeout_height` of the job's payment HTLCs: claims are possible until then.
    pub claimable_until: Option<u32>,
    /// The largest `dispute_end` of the job's claims: every stake of the job stays slashable
    /// until then.
    pub claims_end: Option<u32>,
}

impl JobRecord {
    /// A record for a job created at `created_height` with escrow `escrow`.
    pub fn new(created_height: u32, escrow: OutPoint) -> Self {
        Self {
            created_height,
            escrow,
            stake: None,
            payments: Vec::new(),
            paid_height: None,
            claimed_height: None,
            disputed_height: None,
            claimable_until: None,
            claims_end: None,
        }
    }

    /// The first height at which the escrow may be paid: `C + D` (saturating).
    pub fn payment_minable_from(&self, params: &Params) -> u32 {
        self.created_height.saturating_add(params.job_payment_delay)
    }

    /// The first height at which a fraud proof against a stake output of this job created at
    /// `stake_height` is no longer admissible: `max(stake_height, C + D) + W` (saturating).
    /// A stake output created at height `h` must lock until at least `dispute_end(h)`.
    pub fn dispute_end(&self, stake_height: u32, params: &Params) -> u32 {
        stake_height
            .max(self.payment_minable_from(params))
            .saturating_add(params.dispute_window)
    }

    /// The first height at which a stake of this job created at `stake_height` can no longer be
    /// slashed: its own `dispute_end`, extended to the job's last claim's.
    pub fn slashable_until(&self, stake_height: u32, params: &Params) -> u32 {
        self.dispute_end(stake_height, params)
            .max(self.claims_end.unwrap_or(0))
    }

    /// The first height at which a stake of this job may be reclaimed, as far as the job rules
    /// go (the stake's own window end still applies): after every claim's dispute window and
    /// every payment's timeout.
    pub fn reclaimable_from(&self) -> u32 {
        self.claims_end
            .unwrap_or(0)
            .max(self.claimable_until.unwrap_or(0))
    }
}

fn encode_opt<T: Encodable>(v: &Option<T>, out: &mut Vec<u8>) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            v.encode(out);
        }
    }
}

fn decode_opt<T: Decodable>(r: &mut Reader<'_>) -> Result<Option<T>, DecodeError> {
    match r.read_u8()? {
        0 => Ok(None),
        1 => Ok(Some(T::decode(r)?)),
        _ => Err(DecodeError::Invalid("option tag (must be 0 or 1)")),
    }
}

/// `created_height: u32 ‖ escrow ‖ opt stake ‖ CompactSize n ‖ n payments ‖ opt paid_height ‖
/// opt claimed_height ‖ opt disputed_height ‖ opt claimable_until ‖ opt claims_end`, an option
/// being `0x00` or `0x01 ‖ value`.
impl Encodable for JobRecord {
    fn encode(&self, out: &mut Vec<u8>) {
        self.created_height.encode(out);
        self.escrow.encode(out);
        encode_opt(&self.stake, out);
        write_vec(out, &self.payments);
        encode_opt(&self.paid_height, out);
        encode_opt(&self.claimed_height, out);
        encode_opt(&self.disputed_height, out);
        encode_opt(&self.claimable_until, out);
        encode_opt(&self.claims_end, out);
    }
}

impl Decodable for JobRecord {
    const MIN_ENCODED_SIZE: usize = 4 + 36 + 1 + 1 + 1 + 1 + 1 + 1 + 1;
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            created_height: r.read_u32()?,
            escrow: OutPoint::decode(r)?,
            stake: decode_opt(r)?,
            payments: r.read_vec("payments", MAX_RECORDED_PAYMENTS)?,
            paid_height: decode_opt(r)?,
            claimed_height: decode_opt(r)?,
            disputed_height: decode_opt(r)?,
            claimable_until: decode_opt(r)?,
            claims_end: decode_opt(r)?,
        })
    }
}

/// Read access to the job records: the node's store, a map, or a block's overlay.
pub trait JobView {
    /// The record of job `id`, `None` if no such job was created.
    fn job(&self, id: &JobId) -> Option<JobRecord>;
}

impl<S: core::hash::BuildHasher> JobView for HashMap<JobId, JobRecord, S> {
    fn job(&self, id: &JobId) -> Option<JobRecord> {
        self.get(id).cloned()
    }
}

impl<V: JobView + ?Sized> JobView for &V {
    fn job(&self, id: &JobId) -> Option<JobRecord> {
        (**self).job(id)
    }
}

/// A record created or changed by a transaction: `before` is `None` for a job it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobChange {
    pub job_id: JobId,
    pub before: Option<JobRecord>,
    pub after: JobRecord,
}

/// Why a transaction breaks a job rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// An escrow output for a job other than the transaction's.
    EscrowMismatch {
        output: usize,
        escrow_job: JobId,
        tx_job: JobId,
    },
    /// A payment HTLC output for a job other than the transaction's.
    PaymentMismatch {
        output: usize,
        payment_job: JobId,
        tx_job: JobId,
    },
    /// A stake output for a job other than the transaction's.
    StakeMismatch {
        output: usize,
        stake_job: JobId,
        tx_job: JobId,
    },
    /// The transaction creates a job that already exists.
    Duplicate { job_id: JobId },
    /// The transaction refers to a job that does not exist.
    Unknown { job_id: JobId },
    /// An escrow paid before `minable_from`.
    PaymentEarly {
        job_id: JobId,
        input: usize,
        height: u32,
        minable_from: u32,
    },
    /// An escrow paid by a transaction without a payment HTLC output.
    PaymentTemplate { job_id: JobId, input: usize },
    /// A payment HTLC of one job claimed by a transaction of another.
    ClaimMismatch {
        input: usize,
        payment_job: JobId,
        tx_job: JobId,
    },
    /// Claimed payments not locked into stake outputs for the dispute window.
    ClaimUnlocked {
        job_id: JobId,
        claimed: Amount,
        locked: Amount,
        lock_until: u32,
    },
    /// A stake output whose window ends before disputes against it close.
    StakeUnlocked {
        job_id: JobId,
        output: usize,
        window_end: u32,
        required: u32,
    },
    /// A stake spent through its fraud-proof branch after the dispute window.
    DisputeLate {
        job_id: JobId,
        input: usize,
        height: u32,
        dispute_end: u32,
    },
    /// A payment claimed at or after its timeout.
    ClaimLate {
        job_id: JobId,
        input: usize,
        height: u32,
        timeout: u32,
    },
    /// A stake reclaimed while a claim of its job is still disputable or still possible.
    ReclaimEarly {
        job_id: JobId,
        input: usize,
        height: u32,
        reclaimable_from: u32,
    },
}

impl JobError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::EscrowMismatch { .. } => "bad-job-escrow-mismatch",
            Self::PaymentMismatch { .. } => "bad-job-payment-mismatch",
            Self::StakeMismatch { .. } => "bad-job-stake-mismatch",
            Self::Duplicate { .. } => "bad-job-duplicate",
            Self::Unknown { .. } => "bad-job-unknown",
            Self::PaymentEarly { .. } => "bad-job-payment-early",
            Self::PaymentTemplate { .. } => "bad-job-payment-template",
            Self::ClaimMismatch { .. } => "bad-job-claim-mismatch",
            Self::ClaimUnlocked { .. } => "bad-job-claim-unlocked",
            Self::StakeUnlocked { .. } => "bad-job-stake-unlocked",
            Self::DisputeLate { .. } => "bad-job-dispute-late",
            Self::ClaimLate { .. } => "bad-job-claim-late",
            Self::ReclaimEarly { .. } => "bad-job-reclaim-early",
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.reason();
        match self {
            Self::EscrowMismatch {
                output,
                escrow_job,
                tx_job,
            } => write!(
                f,
                "{r}: output {output} escrows for job {escrow_job} in a transaction of job {tx_job}"
            ),
            Self::PaymentMismatch {
                output,
                payment_job,
                tx_job,
            } => write!(
                f,
                "{r}: output {output} is a payment for job {payment_job} in a transaction of job {tx_job}"
            ),
            Self::StakeMismatch {
                output,
                stake_job,
                tx_job,
            } => write!(
                f,
                "{r}: output {output} stakes on job {stake_job} in a transaction of job {tx_job}"
            ),
            Self::Duplicate { job_id } => write!(f, "{r}: job {job_id} already exists"),
            Self::Unknown { job_id } => write!(f, "{r}: job {job_id} does not exist"),
            Self::PaymentEarly {
                job_id,
                input,
                height,
                minable_from,
            } => write!(
                f,
                "{r}: input {input} pays job {job_id} at height {height}, minable from {minable_from}"
            ),
            Self::PaymentTemplate { job_id, input } => write!(
                f,
                "{r}: input {input} pays job {job_id}'s escrow but no output is a payment HTLC"
            ),
            Self::ClaimMismatch {
                input,
                payment_job,
                tx_job,
            } => write!(
                f,
                "{r}: input {input} claims a payment of job {payment_job} in a transaction of job {tx_job}"
            ),
            Self::ClaimUnlocked {
                job_id,
                claimed,
                locked,
                lock_until,
            } => write!(
                f,
                "{r}: claims {claimed} of job {job_id} but locks only {locked} in stakes until height {lock_until} or later"
            ),
            Self::StakeUnlocked {
                job_id,
                output,
                window_end,
                required,
            } => write!(
                f,
                "{r}: output {output} stakes on job {job_id} until height {window_end}, at least {required} required"
            ),
            Self::DisputeLate {
                job_id,
                input,
                height,
                dispute_end,
            } => write!(
                f,
                "{r}: input {input} disputes job {job_id} at height {height}, disputes closed at {dispute_end}"
            ),
            Self::ClaimLate {
                job_id,
                input,
                height,
                timeout,
            } => write!(
                f,
                "{r}: input {input} claims a payment of job {job_id} at height {height}, timed out at {timeout}"
            ),
            Self::ReclaimEarly {
                job_id,
                input,
                height,
                reclaimable_from,
            } => write!(
                f,
                "{r}: input {input} reclaims a stake of job {job_id} at height {height}, reclaimable from {reclaimable_from}"
            ),
        }
    }
}

impl std::error::Error for JobError {}

/// Which branch a scriptSig selects in a job template: the final push is `OP_1` (the first
/// branch: pay, claim, slash) or `OP_0` (the second: refund, reclaim). `None` for anything
/// else, which the template's `OP_IF` rejects when the script runs.
pub fn selects_first_branch(script_sig: &Script) -> Option<bool> {
    let mut last = None;
    for ins in script_sig.instructions() {
        last = Some(ins.ok()?);
    }
    match last? {
        Instruction::Op(OP_1) => Some(true),
        Instruction::Push([]) => Some(false),
        _ => None,
    }
}

/// What a job rule needs to know about one input.
enum JobSpend {
    /// An escrow spent through its payment branch.
    Pay(JobId),
    /// A payment HTLC spent through its claim branch.
    Claim {
        job_id: JobId,
        worker: PublicKey,
        client: PublicKey,
        timeout: u32,
    },
    /// A stake spent through its fraud-proof branch.
    Slash(JobId),
    /// A stake spent through its reclaim branch.
    Reclaim(JobId),
}

fn classify_spend(script_sig: &Script, coin: &Coin) -> Option<JobSpend> {
    let template = classify_job(&coin.output.script_pubkey)?;
    if !selects_first_branch(script_sig)? {
        return match template {
            Template::Stake(s) => Some(JobSpend::Reclaim(s.job_id)),
            _ => None,
        };
    }
    match template {
        Template::Escrow(e) => Some(JobSpend::Pay(e.job_id)),
        Template::Payment(p) => Some(JobSpend::Claim {
            job_id: p.job_id,
            worker: p.worker,
            client: p.client,
            timeout: p.timeout_height,
        }),
        Template::Stake(s) => Some(JobSpend::Slash(s.job_id)),
        _ => None,
    }
}

/// A block's job records as they stand part-way through it: records changed by earlier
/// transactions of the block over the records before it.
#[derive(Debug)]
pub struct JobOverlay<'a, V: JobView + ?Sized> {
    base: &'a V,
    changed: HashMap<JobId, JobRecord>,
}

impl<'a, V: JobView + ?Sized> JobOverlay<'a, V> {
    pub fn new(base: &'a V) -> Self {
        Self {
            base,
            changed: HashMap::new(),
        }
    }

    /// Applies a transaction's changes on top.
    pub fn apply(&mut self, changes: &[JobChange]) {
        for c in changes {
            self.changed.insert(c.job_id, c.after.clone());
        }
    }
}

impl<V: JobView + ?Sized> JobView for JobOverlay<'_, V> {
    fn job(&self, id: &JobId) -> Option<JobRecord> {
        match self.changed.get(id) {
            Some(r) => Some(r.clone()),
            None => self.base.job(id),
        }
    }
}

/// Checks the job rules for `tx`, mined at `height`, spending `spent` (one coin per input, in
/// input order), against the records in `jobs`. Returns the records it creates or changes (at
/// most one change per job; empty for a transaction that touches no job). The checks run in
/// the order of the module documentation's rules, outputs and inputs in index order; the
/// first failure is reported.
pub fn check_job_rules(
    tx: &Transaction,
    spent: &[Coin],
    jobs: &impl JobView,
    height: u32,
    params: &Params,
) -> Result<Vec<JobChange>, JobError> {
    check_job_rules_of(tx, tx.txid(), spent, jobs, height, params)
}

/// [`check_job_rules`] for a transaction whose txid the caller already computed.
pub(crate) fn check_job_rules_of(
    tx: &Transaction,
    txid: Txid,
    spent: &[Coin],
    jobs: &impl JobView,
    height: u32,
    params: &Params,
) -> Result<Vec<JobChange>, JobError> {
    let tx_job = tx.job_id;
    let templates: Vec<Option<Template>> = tx
        .outputs
        .iter()
        .map(|o| classify_job(&o.script_pubkey))
        .collect();

    // Rule 1: escrow, payment and stake outputs name the transaction's job.
    for (output, t) in templates.iter().enumerate() {
        match t {
            Some(Template::Escrow(e)) if e.job_id != tx_job => {
                return Err(JobError::EscrowMismatch {
                    output,
                    escrow_job: e.job_id,
                    tx_job,
                });
            }
            Some(Template::Payment(p)) if p.job_id != tx_job => {
                return Err(JobError::PaymentMismatch {
                    output,
                    payment_job: p.job_id,
                    tx_job,
                });
            }
            Some(Template::Stake(s)) if s.job_id != tx_job => {
                return Err(JobError::StakeMismatch {
                    output,
                    stake_job: s.job_id,
                    tx_job,
                });
            }
            _ => {}
        }
    }

    // Rule 2: creation, or the job must exist.
    let mut changes: HashMap<JobId, JobChange> = HashMap::new();
    if !tx_job.is_zero() {
        let first_escrow = templates
            .iter()
            .position(|t| matches!(t, Some(Template::Escrow(_))));
        let existing = jobs.job(&tx_job);
        match (first_escrow, existing) {
            (Some(_), Some(_)) => return Err(JobError::Duplicate { job_id: tx_job }),
            (Some(index), None) => {
                let vout = u32::try_from(index).unwrap_or(u32::MAX);
                let record = JobRecord::new(height, OutPoint::new(txid, vout));
                changes.insert(
                    tx_job,
                    JobChange {
                        job_id: tx_job,
                        before: None,
                        after: record,
                    },
                );
            }
            (None, Some(record)) => {
                changes.insert(
                    tx_job,
                    JobChange {
                        job_id: tx_job,
                        before: Some(record.clone()),
                        after: record,
                    },
                );
            }
            (None, None) => return Err(JobError::Unknown { job_id: tx_job }),
        }
    }
    let record_of =
        |changes: &mut HashMap<JobId, JobChange>, job_id: JobId| -> Result<JobRecord, JobError> {
            if let Some(c) = changes.get(&job_id) {
                return Ok(c.after.clone());
            }
            let record = jobs.job(&job_id).ok_or(JobError::Unknown { job_id })?;
            changes.insert(
                job_id,
                JobChange {
                    job_id,
                    before: Some(record.clone()),
                    after: record.clone(),
                },
            );
            Ok(record)
        };

    let has_payment_output = templates
        .iter()
        .any(|t| matches!(t, Some(Template::Payment(_))));
    let mut pays_own_escrow = false;
    let mut disputed: Vec<JobId> = Vec::new();
    // Claimed value per (worker, client) pair.
    let mut claims: Vec<(PublicKey, PublicKey, Amount)> = Vec::new();

    // Rules 3, 4 (which payment is claimed) and 6, input by input.
    for (input, (txin, coin)) in tx.inputs.iter().zip(spent).enumerate() {
        match classify_spend(&txin.script_sig, coin) {
            None => {}
            Some(JobSpend::Pay(job_id)) => {
                let record = record_of(&mut changes, job_id)?;
                let minable_from = record.payment_minable_from(params);
                if height < minable_from {
                    return Err(JobError::PaymentEarly {
                        job_id,
                        input,
                        height,
                        minable_from,
                    });
                }
                if !has_payment_output {
                    return Err(JobError::PaymentTemplate { job_id, input });
                }
                // Paying another job's escrow fails its script (`OP_CHECKJOBVERIFY`).
                pays_own_escrow |= job_id == tx_job;
            }
            Some(JobSpend::Claim {
                job_id,
                worker,
                client,
                timeout,
            }) => {
                record_of(&mut changes, job_id)?;
                if job_id != tx_job {
                    return Err(JobError::ClaimMismatch {
                        input,
                        payment_job: job_id,
                        tx_job,
                    });
                }
                if height >= timeout {
                    return Err(JobError::ClaimLate {
                        job_id,
                        input,
                        height,
                        timeout,
                    });
                }
                match claims
                    .iter_mut()
                    .find(|(w, c, _)| *w == worker && *c == client)
                {
                    Some((_, _, total)) => {
                        *total = total.checked_add(coin.output.value).unwrap_or(Amount::MAX);
                    }
                    None => claims.push((worker, client, coin.output.value)),
                }
            }
            Some(JobSpend::Slash(job_id)) => {
                let record = record_of(&mut changes, job_id)?;
                let dispute_end = record.slashable_until(coin.height, params);
                if height >= dispute_end {
                    return Err(JobError::DisputeLate {
                        job_id,
                        input,
                        height,
                        dispute_end,
                    });
                }
                disputed.push(job_id);
            }
            Some(JobSpend::Reclaim(job_id)) => {
                // A stake of a job never created cannot exist (rule 1 and 2), but a view that
                // lost the record must not turn a reclaim into a panic or a pass.
                let record = record_of(&mut changes, job_id)?;
                let reclaimable_from = record.reclaimable_from();
                if height < reclaimable_from {
                    return Err(JobError::ReclaimEarly {
                        job_id,
                        input,
                        height,
                        reclaimable_from,
                    });
                }
            }
        }
    }

    // Stake outputs are for `tx_job` (rule 1); they must lock past the dispute window.
    let lock_until = if tx_job.is_zero() {
        0
    } else {
        record_of(&mut changes, tx_job)?.dispute_end(height, params)
    };
    let stakes: Vec<(usize, &crate::templates::Stake)> = templates
        .iter()
        .enumerate()
        .filter_map(|(i, t)| match t {
            Some(Template::Stake(s)) => Some((i, s)),
            _ => None,
        })
        .collect();

    // Rule 4: claimed value locked into stakes naming the payment's worker and client.
    for (worker, client, claimed) in &claims {
        let locked = Amount::checked_sum(
            stakes
                .iter()
                .filter(|(_, s)| {
                    s.worker == *worker && s.client == *client && s.window_end_height >= lock_until
                })
                .filter_map(|(i, _)| tx.outputs.get(*i).map(|o| o.value)),
        )
        .unwrap_or(Amount::MAX);
        if locked < *claimed {
            return Err(JobError::ClaimUnlocked {
                job_id: tx_job,
                claimed: *claimed,
                locked,
                lock_until,
            });
        }
    }

    // Rule 5: every stake locks past the dispute window.
    if let Some((output, s)) = stakes
        .iter()
        .find(|(_, s)| s.window_end_height < lock_until)
    {
        return Err(JobError::StakeUnlocked {
            job_id: tx_job,
            output: *output,
            window_end: s.window_end_height,
            required: lock_until,
        });
    }

    // Record what happened.
    let vout = |i: usize| u32::try_from(i).unwrap_or(u32::MAX);
    if let Some(change) = changes.get_mut(&tx_job) {
        let record = &mut change.after;
        if pays_own_escrow {
            for (i, t) in templates.iter().enumerate() {
                if matches!(t, Some(Template::Payment(_))) {
                    record.payments.push(OutPoint::new(txid, vout(i)));
                }
            }
            record.paid_height.get_or_insert(height);
            // The escrow's payments can be claimed until their timeout: rule 7 keeps the
            // stakes locked that long. Only these count: a payment HTLC funded from elsewhere
            // costs its maker nothing but dust, and counting it would let anyone lock a
            // worker's stake for as long as they like. A claim of such a payment still
            // carries its own stake, slashable until its dispute end (rule 5).
            for t in &templates {
                if let Some(Template::Payment(p)) = t {
                    let until = record.claimable_until.unwrap_or(0).max(p.timeout_height);
                    record.claimable_until = Some(until);
                }
            }
        }
        if claims.is_empty() {
            if let (None, Some((i, _))) = (record.stake, stakes.first()) {
                record.stake = Some(OutPoint::new(txid, vout(*i)));
            }
        } else {
            record.claimed_height.get_or_insert(height);
            record.claims_end = Some(record.claims_end.unwrap_or(0).max(lock_until));
        }
    }
    for job_id in disputed {
        if let Some(change) = changes.get_mut(&job_id) {
            change.after.disputed_height.get_or_insert(height);
        }
    }
    let mut out: Vec<JobChange> = changes
        .into_values()
        .filter(|c| c.before.as_ref() != Some(&c.after))
        .collect();
    out.sort_by_key(|c| c.job_id);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{decode_from_slice, encode_to_vec};
    use crate::keys::PrivateKey;
    use crate::templates::{Escrow, Payment, Stake, p2pkh};
    use crate::transaction::{TxIn, TxOut};
    use proptest::prelude::*;

    fn key(b: u8) -> PublicKey {
        PrivateKey::from_slice(&[b; 32]).unwrap().public_key()
    }

    fn job(b: u8) -> JobId {
        JobId::hash(&[b])
    }

    fn params() -> Params {
        Params::regtest().with_job_windows(10, 15)
    }

    fn out(value: u64, script: Script) -> TxOut {
        TxOut {
            value: Amount::from_base(value).unwrap(),
            script_pubkey: script,
        }
    }

    fn escrow(j: JobId) -> Script {
        Escrow {
            job_id: j,
            client: key(1),
            refund_height: 500,
        }
        .script_pubkey()
    }

    fn stake(j: JobId, window_end_height: u32) -> Script {
        Stake {
            job_id: j,
            worker: key(2),
            client: key(1),
            window_end_height,
        }
        .script_pubkey()
    }

    fn payment(j: JobId) -> Script {
        Payment {
            job_id: j,
            key_hash: [7; 32],
            worker: key(2),
            client: key(1),
            timeout_height: 600,
        }
        .script_pubkey()
    }

    fn coin(script: Script, value: u64, height: u32) -> Coin {
        Coin {
            output: out(value, script),
            height,
            is_coinbase: false,
        }
    }

    fn tx(job_id: JobId, inputs: Vec<(u8, Script)>, outputs: Vec<TxOut>) -> Transaction {
        Transaction {
            version: 1,
            inputs: inputs
                .into_iter()
                .map(|(n, script_sig)| TxIn {
                    prev_out: OutPoint::new(Txid::hash(&[n]), 0),
                    script_sig,
                    sequence: 0,
                })
                .collect(),
            outputs,
            lock_time: 0,
            job_id,
        }
    }

    fn first() -> Script {
        Script::new(vec![1, 0xaa, OP_1])
    }

    fn second() -> Script {
        Script::new(vec![1, 0xaa, 0x00])
    }

    fn reason<T>(r: Result<T, JobError>) -> &'static str {
        r.err().map_or("ok", |e| e.reason())
    }

    fn jobs_with(j: JobId, record: JobRecord) -> HashMap<JobId, JobRecord> {
        HashMap::from([(j, record)])
    }

    fn arb_outpoint() -> impl Strategy<Value = OutPoint> {
        (any::<[u8; 32]>(), any::<u32>())
            .prop_map(|(t, v)| OutPoint::new(Txid::from_byte_array(t), v))
    }

    fn arb_record() -> impl Strategy<Value = JobRecord> {
        (
            any::<u32>(),
            arb_outpoint(),
            proptest::option::of(arb_outpoint()),
            proptest::collection::vec(arb_outpoint(), 0..4),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(|(c, escrow, stake, payments, p, cl, d, cu, ce)| JobRecord {
                created_height: c,
                escrow,
                stake,
                payments,
                paid_height: p,
                claimed_height: cl,
                disputed_height: d,
                claimable_until: cu,
                claims_end: ce,
            })
    }

    proptest! {
        #[test]
        fn record_roundtrip(r in arb_record()) {
            let bytes = encode_to_vec(&r);
            let back: JobRecord = decode_from_slice(&bytes).unwrap();
            prop_assert_eq!(&back, &r);
            prop_assert_eq!(encode_to_vec(&back), bytes);
        }

        #[test]
        fn record_truncation_errors(r in arb_record(), cut in any::<proptest::sample::Index>()) {
            let bytes = encode_to_vec(&r);
            let n = cut.index(bytes.len());
            prop_assert!(decode_from_slice::<JobRecord>(&bytes[..n]).is_err());
        }

        #[test]
        fn record_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = decode_from_slice::<JobRecord>(&bytes);
        }
    }

    #[test]
    fn record_encoding_is_fixed() {
        let mut r = JobRecord::new(5, OutPoint::new(Txid::from_byte_array([3; 32]), 1));
        let bytes = encode_to_vec(&r);
        assert_eq!(bytes.len(), 4 + 36 + 1 + 1 + 5);
        assert_eq!(&bytes[..4], &[5, 0, 0, 0]);
        assert_eq!(&bytes[40..], &[0, 0, 0, 0, 0, 0, 0]);
        r.paid_height = Some(9);
        r.claims_end = Some(7);
        let bytes = encode_to_vec(&r);
        assert_eq!(&bytes[42..], &[1, 9, 0, 0, 0, 0, 0, 0, 1, 7, 0, 0, 0]);
        let mut bad = bytes.clone();
        bad[40] = 2;
        assert_eq!(
            decode_from_slice::<JobRecord>(&bad),
            Err(DecodeError::Invalid("option tag (must be 0 or 1)"))
        );
    }

    #[test]
    fn windows() {
        let p = params();
        let r = JobRecord::new(100, OutPoint::NULL);
        assert_eq!(r.payment_minable_from(&p), 110);
        assert_eq!(r.dispute_end(100, &p), 125);
        assert_eq!(r.dispute_end(110, &p), 125);
        assert_eq!(r.dispute_end(111, &p), 126);
        let late = JobRecord::new(u32::MAX - 3, OutPoint::NULL);
        assert_eq!(late.payment_minable_from(&p), u32::MAX);
        assert_eq!(late.dispute_end(0, &p), u32::MAX);
    }

    #[test]
    fn selector() {
        assert_eq!(selects_first_branch(&first()), Some(true));
        assert_eq!(selects_first_branch(&second()), Some(false));
        assert_eq!(selects_first_branch(&Script::new(vec![])), None);
        assert_eq!(selects_first_branch(&Script::new(vec![1, 1])), None);
        assert_eq!(selects_first_branch(&Script::new(vec![0x52])), None);
        assert_eq!(selects_first_branch(&Script::new(vec![0x51, 5])), None);
    }

    #[test]
    fn creation_and_existence() {
        let p = params();
        let j = job(1);
        let none: HashMap<JobId, JobRecord> = HashMap::new();
        let create = tx(
            j,
            vec![(1, first())],
            vec![out(5, escrow(j)), out(1, escrow(j))],
        );
        let changes = check_job_rules(&create, &[], &none, 7, &p).unwrap();
        let record = JobRecord::new(7, OutPoint::new(create.txid(), 0));
        assert_eq!(
            changes,
            vec![JobChange {
                job_id: j,
                before: None,
                after: record.clone()
            }]
        );
        let existing = jobs_with(j, record.clone());
        assert_eq!(
            check_job_rules(&create, &[], &existing, 8, &p),
            Err(JobError::Duplicate { job_id: j })
        );
        // Escrow for another job, or in a transaction without a job.
        let other = tx(job(2), vec![], vec![out(5, escrow(j))]);
        assert_eq!(
            reason(check_job_rules(&other, &[], &none, 7, &p)),
            "bad-job-escrow-mismatch"
        );
        let plain = tx(JobId::ZERO, vec![], vec![out(5, escrow(j))]);
        assert_eq!(
            reason(check_job_rules(&plain, &[], &none, 7, &p)),
            "bad-job-escrow-mismatch"
        );
        // A job transaction without an escrow needs the job to exist.
        let tagged = tx(j, vec![], vec![out(5, p2pkh(&[0; 20]))]);
        assert_eq!(
            check_job_rules(&tagged, &[], &none, 7, &p),
            Err(JobError::Unknown { job_id: j })
        );
        assert_eq!(check_job_rules(&tagged, &[], &existing, 7, &p), Ok(vec![]));
        // Transactions without a job touch nothing.
        let ordinary = tx(JobId::ZERO, vec![], vec![out(5, p2pkh(&[0; 20]))]);
        assert_eq!(check_job_rules(&ordinary, &[], &none, 7, &p), Ok(vec![]));
    }

    #[test]
    fn acceptance_records_the_first_stake() {
        let p = params();
        let j = job(1);
        let record = JobRecord::new(100, OutPoint::NULL);
        let jobs = jobs_with(j, record.clone());
        // Created at 104: disputes close at max(104, 110) + 15 = 125.
        let accept = tx(
            j,
            vec![],
            vec![out(9, stake(j, 125)), out(3, stake(j, 200))],
        );
        let changes = check_job_rules(&accept, &[], &jobs, 104, &p).unwrap();
        assert_eq!(
            changes[0].after.stake,
            Some(OutPoint::new(accept.txid(), 0))
        );
        assert_eq!(changes[0].before, Some(record.clone()));
        // A later stake leaves the recorded one alone (no change at all).
        let mut accepted = record.clone();
        accepted.stake = Some(OutPoint::NULL);
        assert_eq!(
            check_job_rules(&accept, &[], &jobs_with(j, accepted), 104, &p),
            Ok(vec![])
        );
        // One block short of the window.
        let short = tx(j, vec![], vec![out(9, stake(j, 124))]);
        assert_eq!(
            check_job_rules(&short, &[], &jobs, 104, &p),
            Err(JobError::StakeUnlocked {
                job_id: j,
                output: 0,
                window_end: 124,
                required: 125
            })
        );
        // After the payment delay the window runs from the stake's own height.
        assert_eq!(
            reason(check_job_rules(&accept, &[], &jobs, 111, &p)),
            "bad-job-stake-unlocked"
        );
        let wrong_job = tx(j, vec![], vec![out(9, stake(job(2), 500))]);
        assert_eq!(
            reason(check_job_rules(&wrong_job, &[], &jobs, 104, &p)),
            "bad-job-stake-mismatch"
        );
    }

    #[test]
    fn payment_rules() {
        let p = params();
        let j = job(1);
        let jobs = jobs_with(j, JobRecord::new(100, OutPoint::NULL));
        let spent = [coin(escrow(j), 50, 100)];
        let pay = tx(j, vec![(1, first())], vec![out(50, payment(j))]);
        let changes = check_job_rules(&pay, &spent, &jobs, 110, &p).unwrap();
        assert_eq!(
            changes[0].after.payments,
            vec![OutPoint::new(pay.txid(), 0)]
        );
        assert_eq!(changes[0].after.paid_height, Some(110));
        assert_eq!(
            check_job_rules(&pay, &spent, &jobs, 109, &p),
            Err(JobError::PaymentEarly {
                job_id: j,
                input: 0,
                height: 109,
                minable_from: 110
            })
        );
        let no_htlc = tx(j, vec![(1, first())], vec![out(50, p2pkh(&[0; 20]))]);
        assert_eq!(
            reason(check_job_rules(&no_htlc, &spent, &jobs, 110, &p)),
            "bad-job-payment-template"
        );
        // The refund branch is not a payment: no job rule (its lock is the script's).
        let refund = tx(
            JobId::ZERO,
            vec![(1, second())],
            vec![out(50, p2pkh(&[0; 20]))],
        );
        assert_eq!(check_job_rules(&refund, &spent, &jobs, 101, &p), Ok(vec![]));
        // A payment HTLC funded from elsewhere is fine, but only for the transaction's job.
        let direct = tx(j, vec![], vec![out(50, payment(j))]);
        // It does not extend the job's claimable period: otherwise anyone could lock the
        // worker's stake with a dust HTLC timing out far away (rule 7 counts escrow payments).
        let changes = check_job_rules(&direct, &[], &jobs, 105, &p).unwrap();
        assert!(
            changes
                .iter()
                .all(|c| c.after.claimable_until.is_none() && c.after.paid_height.is_none()),
            "{changes:?}"
        );
        let foreign = tx(j, vec![], vec![out(50, payment(job(2)))]);
        assert_eq!(
            check_job_rules(&foreign, &[], &jobs, 110, &p),
            Err(JobError::PaymentMismatch {
                output: 0,
                payment_job: job(2),
                tx_job: j
            })
        );
        let untagged = tx(JobId::ZERO, vec![], vec![out(50, payment(j))]);
        assert_eq!(
            reason(check_job_rules(&untagged, &[], &jobs, 110, &p)),
            "bad-job-payment-mismatch"
        );
        // Paying the escrow of an unknown job.
        let unknown = [coin(escrow(job(3)), 50, 100)];
        assert_eq!(
            reason(check_job_rules(&pay, &unknown, &jobs, 110, &p)),
            "bad-job-unknown"
        );
    }

    #[test]
    fn claim_rules() {
        let p = params();
        let j = job(1);
        let jobs = jobs_with(j, JobRecord::new(100, OutPoint::NULL));
        let spent = [coin(payment(j), 50, 112)];
        // Claimed at 113: disputes on the locked payment close at 113 + 15 = 128.
        let claim = tx(j, vec![(1, first())], vec![out(50, stake(j, 128))]);
        let changes = check_job_rules(&claim, &spent, &jobs, 113, &p).unwrap();
        assert_eq!(changes[0].after.claimed_height, Some(113));
        assert_eq!(changes[0].after.stake, None, "a claim is not an acceptance");
        assert_eq!(
            check_job_rules(&claim, &spent, &jobs, 114, &p),
            Err(JobError::ClaimUnlocked {
                job_id: j,
                claimed: Amount::from_base(50).unwrap(),
                locked: Amount::ZERO,
                lock_until: 129
            })
        );
        let short_value = tx(
            j,
            vec![(1, first())],
            vec![out(49, stake(j, 128)), out(1, p2pkh(&[0; 20]))],
        );
        assert_eq!(
            reason(check_job_rules(&short_value, &spent, &jobs, 113, &p)),
            "bad-job-claim-unlocked"
        );
        let to_key = tx(j, vec![(1, first())], vec![out(50, p2pkh(&[0; 20]))]);
        assert_eq!(
            reason(check_job_rules(&to_key, &spent, &jobs, 113, &p)),
            "bad-job-claim-unlocked"
        );
        // The lock must name the payment's worker and client.
        let other_client = Stake {
            job_id: j,
            worker: key(2),
            client: key(9),
            window_end_height: 200,
        }
        .script_pubkey();
        let escape = tx(j, vec![(1, first())], vec![out(50, other_client)]);
        assert_eq!(
            reason(check_job_rules(&escape, &spent, &jobs, 113, &p)),
            "bad-job-claim-unlocked"
        );
        // Only a transaction of the payment's job may claim it.
        let untagged = tx(
            JobId::ZERO,
            vec![(1, first())],
            vec![out(50, p2pkh(&[0; 20]))],
        );
        assert_eq!(
            check_job_rules(&untagged, &spent, &jobs, 113, &p),
            Err(JobError::ClaimMismatch {
                input: 0,
                payment_job: j,
                tx_job: JobId::ZERO
            })
        );
        // The branch selector decides, not the scriptSig's other items: a claim revealing a
        // key of another length (the worker chose the hash) is still a claim.
        let mut odd_key = vec![1, 0xaa, 33];
        odd_key.extend_from_slice(&[0x5a; 33]);
        odd_key.push(OP_1);
        let odd = tx(
            j,
            vec![(1, Script::new(odd_key))],
            vec![out(50, p2pkh(&[0; 20]))],
        );
        assert_eq!(
            reason(check_job_rules(&odd, &spent, &jobs, 113, &p)),
            "bad-job-claim-unlocked"
        );
        // A payment of an unknown job.
        let unknown = [coin(payment(job(4)), 50, 112)];
        assert_eq!(
            reason(check_job_rules(&claim, &unknown, &jobs, 113, &p)),
            "bad-job-unknown"
        );
        // The client's refund branch of the HTLC is free.
        let back = tx(
            JobId::ZERO,
            vec![(1, second())],
            vec![out(50, p2pkh(&[0; 20]))],
        );
        assert_eq!(check_job_rules(&back, &spent, &jobs, 113, &p), Ok(vec![]));
    }

    #[test]
    fn dispute_rules() {
        let p = params();
        let j = job(1);
        let jobs = jobs_with(j, JobRecord::new(100, OutPoint::NULL));
        let slash = tx(
            JobId::ZERO,
            vec![(1, first())],
            vec![out(9, p2pkh(&[0; 20]))],
        );
        // A stake created at 104 is disputable until 124 inclusive.
        let spent = [coin(stake(j, 125), 9, 104)];
        let changes = check_job_rules(&slash, &spent, &jobs, 124, &p).unwrap();
        assert_eq!(changes[0].after.disputed_height, Some(124));
        assert_eq!(
            check_job_rules(&slash, &spent, &jobs, 125, &p),
            Err(JobError::DisputeLate {
                job_id: j,
                input: 0,
                height: 125,
                dispute_end: 125
            })
        );
        // A claimed payment locked at 113 is disputable until 127 inclusive.
        let claimed = [coin(stake(j, 128), 50, 113)];
        assert!(check_job_rules(&slash, &claimed, &jobs, 127, &p).is_ok());
        assert_eq!(
            reason(check_job_rules(&slash, &claimed, &jobs, 128, &p)),
            "bad-job-dispute-late"
        );
        // With no claim and no payment, the reclaim branch's timing is the script's business.
        let reclaim = tx(
            JobId::ZERO,
            vec![(1, second())],
            vec![out(9, p2pkh(&[0; 20]))],
        );
        assert_eq!(
            check_job_rules(&reclaim, &spent, &jobs, 500, &p),
            Ok(vec![])
        );
        let unknown = [coin(stake(job(5), 125), 9, 104)];
        assert_eq!(
            reason(check_job_rules(&slash, &unknown, &jobs, 110, &p)),
            "bad-job-unknown"
        );
    }

    /// Hole 1: an acceptance stake whose own window has closed stays slashable while a later
    /// claim of its job is, and cannot be reclaimed before the job's claims are settled.
    #[test]
    fn stakes_stay_slashable_as_long_as_any_claim() {
        let p = params();
        let j = job(1);
        let w = key(2);
        let c = key(1);
        let mut record = JobRecord::new(100, OutPoint::NULL);
        // The acceptance stake, mined at 104, is disputable until 124 on its own.
        let acceptance = [coin(stake(j, 125), 9, 104)];
        // The client pays at 110 with a timeout at 600.
        let pay = tx(j, vec![(1, first())], vec![out(50, payment(j))]);
        let escrow_coin = [coin(escrow(j), 50, 100)];
        let changes =
            check_job_rules(&pay, &escrow_coin, &jobs_with(j, record.clone()), 110, &p).unwrap();
        record = changes[0].after.clone();
        assert_eq!(record.claimable_until, Some(600));
        // The worker may not take its stake back while the payment can still be claimed.
        let reclaim = tx(
            JobId::ZERO,
            vec![(1, second())],
            vec![out(9, p2pkh(&[0; 20]))],
        );
        assert_eq!(
            check_job_rules(
                &reclaim,
                &acceptance,
                &jobs_with(j, record.clone()),
                130,
                &p
            ),
            Err(JobError::ReclaimEarly {
                job_id: j,
                input: 0,
                height: 130,
                reclaimable_from: 600
            })
        );
        // It claims at 300, past the acceptance stake's own window: the claim locks until 315.
        let claim = tx(
            j,
            vec![(1, first())],
            vec![out(
                50,
                crate::templates::Stake {
                    job_id: j,
                    worker: w,
                    client: c,
                    window_end_height: 315,
                }
                .script_pubkey(),
            )],
        );
        let payment_coin = [coin(payment(j), 50, 110)];
        let changes = check_job_rules(
            &claim,
            &payment_coin,
            &jobs_with(j, record.clone()),
            300,
            &p,
        )
        .unwrap();
        record = changes[0].after.clone();
        assert_eq!(record.claims_end, Some(315));
        // The acceptance stake is slashable again until the claim's window closes.
        let slash = tx(
            JobId::ZERO,
            vec![(1, first())],
            vec![out(9, p2pkh(&[0; 20]))],
        );
        let jobs = jobs_with(j, record.clone());
        assert!(check_job_rules(&slash, &acceptance, &jobs, 314, &p).is_ok());
        assert_eq!(
            reason(check_job_rules(&slash, &acceptance, &jobs, 315, &p)),
            "bad-job-dispute-late"
        );
        // Reclaims wait for the claim's window and the payment's timeout.
        assert_eq!(
            reason(check_job_rules(&reclaim, &acceptance, &jobs, 400, &p)),
            "bad-job-reclaim-early"
        );
        assert_eq!(
            check_job_rules(&reclaim, &acceptance, &jobs, 600, &p),
            Ok(vec![])
        );
        // A claim at or after the payment's timeout is refused: the client may be refunding.
        let jobs = jobs_with(
            j,
            JobRecord {
                claimable_until: Some(600),
                ..JobRecord::new(100, OutPoint::NULL)
            },
        );
        assert_eq!(
            check_job_rules(&claim, &payment_coin, &jobs, 600, &p),
            Err(JobError::ClaimLate {
                job_id: j,
                input: 0,
                height: 600,
                timeout: 600
            })
        );
    }

    #[test]
    fn overlay_sees_earlier_changes() {
        let base: HashMap<JobId, JobRecord> = HashMap::new();
        let mut overlay = JobOverlay::new(&base);
        let j = job(1);
        assert_eq!(overlay.job(&j), None);
        let record = JobRecord::new(3, OutPoint::NULL);
        overlay.apply(&[JobChange {
            job_id: j,
            before: None,
            after: record.clone(),
        }]);
        assert_eq!(overlay.job(&j), Some(record));
    }

    #[test]
    fn errors_name_their_values() {
        let e = JobError::PaymentEarly {
            job_id: job(1),
            input: 2,
            height: 109,
            minable_from: 110,
        };
        let s = e.to_string();
        assert!(
            s.starts_with("bad-job-payment-early: input 2 pays job "),
            "{s}"
        );
        assert!(
            s.contains(&job(1).to_string()) && s.ends_with("at height 109, minable from 110"),
            "{s}"
        );
    }
}
