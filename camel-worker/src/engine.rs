//! The llama.cpp glue: loading a model, tokenizing, generating with the job's checkable sampler,
//! and the batched teacher-forced forward pass that RASTiC verification reads logits from.
//!
//! Nothing outside this module (and [`crate::ffi`]) touches llama-cpp-2.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use camel_core::rastic::{self, SamplingParams, TokenId};
use camel_core::{JobId, ModelId};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaModel};
use llama_cpp_2::token::LlamaToken;

use crate::model::{ModelError, ModelFile};

/// Why inference could not run.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("llama.cpp backend: {0}")]
    Backend(String),
    #[error("max tokens is zero; ask for at least one output token")]
    ZeroMaxTokens,
    #[error("the prompt is empty")]
    EmptyPrompt,
    #[error(
        "prompt of {prompt} tokens plus up to {max_tokens} output tokens does not fit the context of {ctx} tokens; shorten the prompt, lower --max-tokens or raise --ctx-size"
    )]
    ContextTooSmall {
        prompt: usize,
        max_tokens: u32,
        ctx: u32,
    },
    #[error("a sequence of {len} tokens exceeds the model's training context of {train} tokens")]
    SequenceTooLong { len: usize, train: u32 },
    #[error("token id {token} is outside the model's vocabulary of {n_vocab}")]
    TokenOutOfVocab { token: TokenId, n_vocab: u32 },
    #[error("invalid engine setting: {0}")]
    Config(String),
    #[error("llama.cpp context: {0}")]
    Context(String),
    #[error("llama.cpp decode failed: {0}")]
    Decode(String),
    #[error(transparent)]
    Sampling(#[from] rastic::RasticError),
    #[error("chat template: {0}")]
    Template(String),
}

/// Runtime settings of a llama.cpp context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// CPU threads for both decode and batch processing.
    pub threads: u32,
    /// Context size (KV cache entries) for generation.
    pub ctx_size: u32,
    /// Logical batch: tokens submitted to one `llama_decode`.
    pub batch_size: u32,
    /// Physical micro-batch the batch is split into.
    pub ubatch_size: u32,
    /// Layers offloaded to the GPU (needs the `cuda` feature; 0 = CPU only).
    pub gpu_layers: u32,
    /// llama.cpp flash attention. Off in the canonical verification configuration: its CPU
    /// kernel tiles micro-batches of ≥ 64 queries differently from one-token decode.
    pub flash_attention: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8) as u32),
            ctx_size: 2048,
            batch_size: 512,
            ubatch_size: 512,
            gpu_layers: 0,
            flash_attention: false,
        }
    }
}

impl EngineConfig {
    fn validate(&self) -> Result<(), EngineError> {
        if self.threads == 0 || self.threads > 1024 {
            return Err(EngineError::Config(format!(
                "threads must be 1..=1024, not {}",
                self.threads
            )));
        }
        if self.batch_size == 0 || self.ubatch_size == 0 || self.ubatch_size > self.batch_size {
            return Err(EngineError::Config(format!(
                "need 0 < ubatch size ({}) <= batch size ({})",
                self.ubatch_size, self.batch_size
            )));
        }
        if self.ctx_size == 0 {
            return Err(EngineError::Config("context size must be positive".into()));
        }
        Ok(())
    }

    fn context_params(&self, n_ctx: u32, n_seq: u32) -> LlamaContextParams {
        let fa = if self.flash_attention {
            llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_ENABLED
        } else {
            llama_cpp_sys_2::LLAMA_FLASH_ATTN_TYPE_DISABLED
        };
        let threads = i32::try_from(self.threads).unwrap_or(1);
        LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(self.batch_size)
            .with_n_ubatch(self.ubatch_size)
            .with_n_threads(threads)
            .with_n_threads_batch(threads)
            .with_n_seq_max(n_seq.max(1))
            .with_kv_unified(false)
            .with_flash_attention_policy(fa)
    }
}

/// The parameters of a job that generation and verification depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobSpec {
    pub job_id: JobId,
    pub sampling: SamplingParams,
    pub max_tokens: u32,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model chose an end-of-generation token (it is the last output token).
    Eos,
    /// `max_tokens` tokens were generated.
    MaxTokens,
}

/// A finished generation.
#[derive(Debug, Clone)]
pub struct Generation {
    pub tokens: Vec<TokenId>,
    pub stop: StopReason,
    pub prompt_tokens: usize,
    /// Time to process the prompt and choose the first token.
    pub prefill: Duration,
    /// Time for the remaining tokens.
    pub decode: Duration,
    /// Context creation to last token.
    pub total: Duration,
}

/// One sequence of a teacher-forced pass: the tokens to feed and, sorted, the indices into
/// `tokens` whose next-token logits are wanted.
#[derive(Debug, Clone)]
pub struct ForwardSeq<'a> {
    pub tokens: &'a [TokenId],
    pub logits_at: &'a [usize],
}

/// Wanted logits rows of a batch: (sequence, index in the sequence, index in the batch).
type Rows = Vec<(usize, usize, i32)>;
/// Receives (sequence, index, logits) from a forward pass.
type LogitsSink<'a> = dyn FnMut(usize, usize, &[f32]) -> Result<(), EngineError> + 'a;

static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
static BACKEND_INIT: Mutex<()> = Mutex::new(());

/// The process-wide llama.cpp backend (llama.cpp allows one initialisation per process).
fn backend() -> Result<&'static LlamaBackend, EngineError> {
    if let Some(b) = BACKEND.get() {
        return Ok(b);
    }
    let _guard = BACKEND_INIT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(b) = BACKEND.get() {
        return Ok(b);
    }
    llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
    let b = LlamaBackend::init().map_err(|e| EngineError::Backend(e.to_string()))?;
    Ok(BACKEND.get_or_init(|| b))
}

/// A loaded model.
#[derive(Debug)]
pub struct Engine {
    model: LlamaModel,
    file: ModelFile,
    n_vocab: u32,
    eog: Vec<TokenId>,
    n_ctx_train: u32,
}

fn to_llama(t: TokenId) -> LlamaToken {
    LlamaToken(t as i32)
}

/// Feeds `prompt` to sequence 0 of `ctx` in batches of up to `n_batch` tokens, asking for the
/// logits of the last token only; returns that token's index in the last batch.
fn prefill(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    n_batch: usize,
    prompt: &[TokenId],
) -> Result<i32, EngineError> {
    let mut last = 0i32;
    for (c, chunk) in prompt.chunks(n_batch).enumerate() {
        batch.clear();
        for (j, &t) in chunk.iter().enumerate() {
            let pos = c * n_batch + j;
            let want = pos + 1 == prompt.len();
            batch
                .add(to_llama(t), pos as i32, &[0], want)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
            if want {
                last = j as i32;
            }
        }
        ctx.decode(batch)
            .map_err(|e| EngineError::Decode(e.to_string()))?;
    }
    Ok(last)
}

/// Decodes one token at `pos` of sequence 0, its logits wanted (index 0 of the batch).
fn decode_one(
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch,
    t: LlamaToken,
    pos: usize,
) -> Result<(), EngineError> {
    batch.clear();
    batch
        .add(t, pos as i32, &[0], true)
        .map_err(|e| EngineError::Decode(e.to_string()))?;
    ctx.decode(batch)
        .map_err(|e| EngineError::Decode(e.to_string()))
}

impl Engine {
    /// Loads a GGUF model. With `expected`, the file's SHA-256 must match it.
    pub fn load(
        path: &Path,
        expected: Option<ModelId>,
        gpu_layers: u32,
    ) -> Result<Self, EngineError> {
        let file = ModelFile::open(path, expected)?;
        let backend = backend()?;
        let params = LlamaModelParams::default().with_n_gpu_layers(gpu_layers);
        let model =
            LlamaModel::load_from_file(backend, path, &params).map_err(|_| ModelError::Load {
                path: file.path.clone(),
                size: file.size,
                id: file.id,
            })?;
        let n_vocab = u32::try_from(model.n_vocab())
            .map_err(|_| EngineError::Backend("negative vocabulary size".into()))?;
        let vocab = model.vocab();
        let eog = (0..n_vocab)
            .filter(|&t| vocab.is_eog(to_llama(t)))
            .collect();
        let n_ctx_train = model.n_ctx_train();
        Ok(Self {
            model,
            file,
            n_vocab,
            eog,
            n_ctx_train,
        })
    }

    pub fn model_id(&self) -> ModelId {
        self.file.id
    }

    pub fn model_file(&self) -> &ModelFile {
        &self.file
    }

    pub fn n_vocab(&self) -> u32 {
        self.n_vocab
    }

    /// The end-of-generation tokens.
    pub fn eog(&self) -> &[TokenId] {
        &self.eog
    }

    pub fn is_eog(&self, t: TokenId) -> bool {
        self.eog.contains(&t)
    }

    pub fn n_ctx_train(&self) -> u32 {
        self.n_ctx_train
    }

    /// Tokenizes text as a prompt: the model's BOS if it adds one, special tokens parsed (so a
    /// chat-templated prompt keeps its control tokens).
    pub fn tokenize(&self, text: &str) -> Vec<TokenId> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), true, true)
            .into_iter()
            .map(|t| t.0 as TokenId)
            .collect()
    }

    /// Tokenizes a continuation (no BOS), e.g. a claimed output given as text.
    pub fn tokenize_continuation(&self, text: &str) -> Vec<TokenId> {
        self.model
            .vocab()
            .tokenize(text.as_bytes(), false, true)
            .into_iter()
            .map(|t| t.0 as TokenId)
            .collect()
    }

    /// The bytes a token stands for (special tokens rendered).
    pub fn token_bytes(&self, t: TokenId) -> Vec<u8> {
        if t >= self.n_vocab {
            return Vec::new();
        }
        self.model.vocab().token_to_piece(to_llama(t), true, None)
    }

    /// The text of a token sequence (lossy UTF-8).
    pub fn detokenize(&self, tokens: &[TokenId]) -> String {
        let bytes: Vec<u8> = tokens.iter().flat_map(|&t| self.token_bytes(t)).collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Wraps a user message in the model's chat template, ending with the assistant's turn.
    pub fn chat_prompt(&self, user: &str) -> Result<String, EngineError> {
        let tmpl = self
            .model
            .chat_template(None)
            .map_err(|e| EngineError::Template(e.to_string()))?;
        let msg = LlamaChatMessage::new("user".into(), user.into())
            .map_err(|e| EngineError::Template(e.to_string()))?;
        self.model
            .apply_chat_template(&tmpl, &[msg], true)
            .map_err(|e| EngineError::Template(e.to_string()))
    }

    fn check_tokens(&self, tokens: &[TokenId]) -> Result<(), EngineError> {
        match tokens.iter().find(|&&t| t >= self.n_vocab) {
            Some(&token) => Err(EngineError::TokenOutOfVocab {
                token,
                n_vocab: self.n_vocab,
            }),
            None => Ok(()),
        }
    }

    fn new_context(
        &self,
        cfg: &EngineConfig,
        n_ctx: u32,
        n_seq: u32,
    ) -> Result<LlamaContext<'_>, EngineError> {
        cfg.validate()?;
        self.model
            .new_context(backend()?, cfg.context_params(n_ctx, n_seq))
            .map_err(|e| EngineError::Context(e.to_string()))
    }

    /// Generates the job's output for `prompt`, calling `on_token` with each token and its bytes
    /// as soon as it is chosen. Stops at an end-of-generation token (kept as the last output
    /// token) or after `max_tokens` tokens.
    pub fn generate(
        &self,
        cfg: &EngineConfig,
        prompt: &[TokenId],
        job: &JobSpec,
        mut on_token: impl FnMut(TokenId, &[u8]),
    ) -> Result<Generation, EngineError> {
        job.sampling.validate()?;
        if job.max_tokens == 0 {
            return Err(EngineError::ZeroMaxTokens);
        }
        if prompt.is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        self.check_tokens(prompt)?;
        let need = prompt.len().saturating_add(job.max_tokens as usize);
        if need > cfg.ctx_size as usize {
            return Err(EngineError::ContextTooSmall {
                prompt: prompt.len(),
                max_tokens: job.max_tokens,
                ctx: cfg.ctx_size,
            });
        }
        if need > self.n_ctx_train as usize {
            return Err(EngineError::SequenceTooLong {
                len: need,
                train: self.n_ctx_train,
            });
        }
        let start = Instant::now();
        let mut ctx = self.new_context(cfg, cfg.ctx_size, 1)?;
        let n_batch = cfg.batch_size as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut last_index = prefill(&mut ctx, &mut batch, n_batch, prompt)?;
        let mut tokens = Vec::with_capacity(job.max_tokens as usize);
        let mut prefill = Duration::ZERO;
        let mut stop = StopReason::MaxTokens;
        for i in 0..job.max_tokens {
            let pos = prompt.len() + i as usize;
            let logits = ctx.get_logits_ith(last_index);
            let t = rastic::choose_token(logits, &job.sampling, &job.job_id, i)?;
            if i == 0 {
                prefill = start.elapsed();
            }
            tokens.push(t);
            on_token(t, &self.token_bytes(t));
            if self.is_eog(t) {
                stop = StopReason::Eos;
                break;
            }
            if i + 1 == job.max_tokens {
                break;
            }
            decode_one(&mut ctx, &mut batch, to_llama(t), pos)?;
            last_index = 0;
        }
        let total = start.elapsed();
        Ok(Generation {
            tokens,
            stop,
            prompt_tokens: prompt.len(),
            prefill,
            decode: total.saturating_sub(prefill),
            total,
        })
    }

    /// One batched teacher-forced pass over several sequences at once (each its own llama.cpp
    /// sequence, packed into shared batches). `on_logits(seq, index, logits)` receives the
    /// next-token logits after `tokens[..=index]` for every wanted index, in order within each
    /// sequence.
    pub fn forward(
        &self,
        cfg: &EngineConfig,
        seqs: &[ForwardSeq<'_>],
        mut on_logits: impl FnMut(usize, usize, &[f32]) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let mut total = 0usize;
        for s in seqs {
            self.check_tokens(s.tokens)?;
            if s.tokens.len() > self.n_ctx_train as usize {
                return Err(EngineError::SequenceTooLong {
                    len: s.tokens.len(),
                    train: self.n_ctx_train,
                });
            }
            if let Some(&bad) = s.logits_at.iter().find(|&&i| i >= s.tokens.len()) {
                return Err(EngineError::Config(format!(
                    "logits wanted at index {bad} of a {}-token sequence",
                    s.tokens.len()
                )));
            }
            total = total.saturating_add(s.tokens.len());
        }
        if total == 0 {
            return Ok(());
        }
        // One KV stream per sequence (attention then costs Σ len² rather than (Σ len)²), each
        // rounded up to llama.cpp's 256-cell padding.
        let longest = seqs.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
        let n_seq = u32::try_from(seqs.len())
            .map_err(|_| EngineError::Config("too many sequences".into()))?;
        let n_ctx = u32::try_from(longest.div_ceil(256) * 256)
            .ok()
            .and_then(|per| per.checked_mul(n_seq))
            .ok_or_else(|| EngineError::Config("sequences too long".into()))?;
        let mut ctx = self.new_context(cfg, n_ctx, n_seq)?;
        let n_batch = cfg.batch_size as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        // (sequence, index in the sequence, index in the batch) of each wanted logits row.
        let mut rows: Rows = Vec::new();
        let flush = |ctx: &mut LlamaContext<'_>,
                     batch: &mut LlamaBatch,
                     rows: &mut Rows,
                     on_logits: &mut LogitsSink<'_>|
         -> Result<(), EngineError> {
            if batch.n_tokens() == 0 {
                return Ok(());
            }
            ctx.decode(batch)
                .map_err(|e| EngineError::Decode(e.to_string()))?;
            for &(s, i, b) in rows.iter() {
                on_logits(s, i, ctx.get_logits_ith(b))?;
            }
            batch.clear();
            rows.clear();
            Ok(())
        };
        for (s, seq) in seqs.iter().enumerate() {
            let mut wanted = seq.logits_at.iter().peekable();
            for (i, &t) in seq.tokens.iter().enumerate() {
                let want = wanted.peek().is_some_and(|&&w| w == i);
                if want {
                    wanted.next();
                }
                let b = batch.n_tokens();
                batch
                    .add(to_llama(t), i as i32, &[s as i32], want)
                    .map_err(|e| EngineError::Decode(e.to_string()))?;
                if want {
                    rows.push((s, i, b));
                }
                if batch.n_tokens() as usize == n_batch {
                    flush(&mut ctx, &mut batch, &mut rows, &mut on_logits)?;
                }
            }
        }
        flush(&mut ctx, &mut batch, &mut rows, &mut on_logits)?;
        Ok(())
    }

    /// Reference baseline for benchmarks: a bare llama-cpp-2 loop (llama.cpp's own greedy
    /// sampler, no RASTiC sampling, no callbacks) that prefills `prompt` and generates exactly
    /// `n` tokens. Returns the elapsed time from context creation to the last token.
    pub fn bare_decode_loop(
        &self,
        cfg: &EngineConfig,
        prompt: &[TokenId],
        n: u32,
    ) -> Result<Duration, EngineError> {
        self.check_tokens(prompt)?;
        let start = Instant::now();
        let mut ctx = self.new_context(cfg, cfg.ctx_size, 1)?;
        let mut sampler = llama_cpp_2::sampling::LlamaSampler::greedy();
        let n_batch = cfg.batch_size as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        let mut last = prefill(&mut ctx, &mut batch, n_batch, prompt)?;
        for i in 0..n {
            let pos = prompt.len() + i as usize;
            let t = sampler.sample(&ctx, last);
            if i + 1 == n {
                break;
            }
            decode_one(&mut ctx, &mut batch, t, pos)?;
            last = 0;
        }
        Ok(start.elapsed())
    }

    /// Reference baseline for benchmarks: a bare prefill of `tokens` (one sequence, batches of
    /// `batch_size`, logits for the last token only), from context creation to the end.
    pub fn bare_prefill(
        &self,
        cfg: &EngineConfig,
        tokens: &[TokenId],
    ) -> Result<Duration, EngineError> {
        self.check_tokens(tokens)?;
        let start = Instant::now();
        let n_ctx = u32::try_from(tokens.len().div_ceil(256) * 256).unwrap_or(u32::MAX);
        let mut ctx = self.new_context(cfg, n_ctx, 1)?;
        let n_batch = cfg.batch_size as usize;
        let mut batch = LlamaBatch::new(n_batch, 1);
        prefill(&mut ctx, &mut batch, n_batch, tokens)?;
        Ok(start.elapsed())
    }
}
