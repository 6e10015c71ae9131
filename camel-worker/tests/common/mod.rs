//! Shared helpers of the model tests: the bundled model, loaded once per test binary.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use camel_core::ModelId;
use camel_worker::engine::{Engine, EngineConfig};
use camel_worker::model;

/// The bundled model's path; fails the test with instructions when it is missing.
pub fn model_path() -> PathBuf {
    let p = model::bundled_model_path();
    assert!(
        p.is_file(),
        "the bundled model is missing at {} (CAMEL_MODEL_DIR={:?}); run `scripts/fetch-model.sh \"$CAMEL_MODEL_DIR\"` or scripts/test.sh",
        p.display(),
        std::env::var("CAMEL_MODEL_DIR").ok()
    );
    p
}

/// The bundled model, loaded (and hash-checked) once per test binary.
pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| {
        let id: ModelId = model::BUNDLED_MODEL_ID.parse().unwrap();
        Engine::load(&model_path(), Some(id), 0)
            .unwrap_or_else(|e| panic!("loading the bundled model: {e}"))
    })
}

/// The canonical CPU configuration with `threads` threads.
pub fn cfg(threads: u32) -> EngineConfig {
    EngineConfig {
        threads,
        ctx_size: 1024,
        ..EngineConfig::default()
    }
}
