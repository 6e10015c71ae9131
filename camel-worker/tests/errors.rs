//! Clear errors for bad model files, prompts that do not fit, and zero max tokens.

mod common;

use camel_core::rastic::{CheckMode, SamplingParams, Tolerance};
use camel_core::{Hash256, JobId, ModelId};
use camel_worker::engine::{Engine, EngineConfig, EngineError, JobSpec};
use camel_worker::model::ModelError;
use camel_worker::verify::{VerifyRequest, verify};
use common::{cfg, engine, model_path};

fn job(max_tokens: u32) -> JobSpec {
    JobSpec {
        job_id: JobId::ZERO,
        sampling: SamplingParams::GREEDY,
        max_tokens,
    }
}

fn load_err(path: &std::path::Path, expected: Option<ModelId>) -> EngineError {
    match Engine::load(path, expected, 0) {
        Ok(_) => panic!("{} loaded", path.display()),
        Err(e) => e,
    }
}

#[test]
fn bad_model_files() {
    let dir = std::env::temp_dir().join(format!("camel-bad-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let e = load_err(&dir.join("missing.gguf"), None);
    assert!(
        matches!(e, EngineError::Model(ModelError::NotFound { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("fetch-model.sh"), "{e}");

    let e = load_err(&dir, None);
    assert!(
        matches!(e, EngineError::Model(ModelError::Unreadable { .. })),
        "{e}"
    );

    let junk = dir.join("junk.gguf");
    std::fs::write(&junk, vec![0x42u8; 4096]).unwrap();
    let e = load_err(&junk, None);
    assert!(
        matches!(e, EngineError::Model(ModelError::NotGguf { .. })),
        "{e}"
    );

    // A truncated copy of the real model: refused by hash when the id is known, and by
    // llama.cpp (with a clear message) when it is not.
    let bytes = std::fs::read(model_path()).unwrap();
    let truncated = dir.join("truncated.gguf");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let real: ModelId = camel_worker::model::BUNDLED_MODEL_ID.parse().unwrap();
    let e = load_err(&truncated, Some(real));
    assert!(
        matches!(e, EngineError::Model(ModelError::WrongHash { .. })),
        "{e}"
    );
    let e = load_err(&truncated, None);
    assert!(
        matches!(e, EngineError::Model(ModelError::Load { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("truncated or corrupt"), "{e}");

    // The real file under a wrong expected id.
    let e = load_err(&model_path(), Some(ModelId::ZERO));
    assert!(
        matches!(e, EngineError::Model(ModelError::WrongHash { .. })),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains(camel_worker::model::BUNDLED_MODEL_ID),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn prompts_that_do_not_fit_and_zero_max_tokens() {
    let e = engine();
    let small = EngineConfig {
        ctx_size: 64,
        ..cfg(1)
    };
    let prompt = e.tokenize(&"The quick brown fox jumps over the lazy dog. ".repeat(8));
    assert!(prompt.len() > 60);
    let err = e
        .generate(&small, &prompt, &job(16), |_, _| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::ContextTooSmall { .. }), "{err}");
    assert!(err.to_string().contains("--ctx-size"), "{err}");

    let err = e
        .generate(&cfg(1), &prompt, &job(0), |_, _| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::ZeroMaxTokens), "{err}");
    let err = e.generate(&cfg(1), &[], &job(4), |_, _| {}).unwrap_err();
    assert!(matches!(err, EngineError::EmptyPrompt), "{err}");

    let req = |prompt: Vec<u32>, max_tokens: u32| VerifyRequest {
        prompt,
        output: vec![1, 2],
        job: job(max_tokens),
        mode: CheckMode::Full,
        commitment: Hash256::ZERO,
        nonce: [0; 32],
    };
    let err = verify(e, &cfg(1), &req(prompt.clone(), 0), &Tolerance::DEFAULT).unwrap_err();
    assert!(matches!(err, EngineError::ZeroMaxTokens), "{err}");

    // Longer than the model's training context.
    let huge = vec![prompt[1]; e.n_ctx_train() as usize + 10];
    let err = verify(e, &cfg(1), &req(huge, 4), &Tolerance::DEFAULT).unwrap_err();
    assert!(matches!(err, EngineError::SequenceTooLong { .. }), "{err}");

    // Token ids outside the vocabulary: an error in a prompt, an invalid verdict in an output.
    let err = verify(e, &cfg(1), &req(vec![e.n_vocab()], 4), &Tolerance::DEFAULT).unwrap_err();
    assert!(matches!(err, EngineError::TokenOutOfVocab { .. }), "{err}");
    let mut r = req(prompt.clone(), 4);
    r.output = vec![prompt[1], e.n_vocab() + 5, prompt[2], e.eog()[0]];
    let v = verify(e, &cfg(1), &r, &Tolerance::DEFAULT).unwrap();
    assert!(!v.verdict.is_valid());
    assert!(v.verdict.checks.len() <= 2);
}
