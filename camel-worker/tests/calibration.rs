//! A small version of the calibration (`camel-worker calibrate` runs the full one): honest outputs
//! from 1 and 2 threads and two micro-batch sizes, every token checked by a verifier with the
//! other thread count and micro-batch size. The canonical configuration must reproduce every
//! token exactly, and the default tolerance must reject none.

mod common;

use camel_core::rastic::Tolerance;
use camel_worker::calibrate::{CalibrateOptions, run};
use common::{cfg, engine};

#[test]
fn canonical_configuration_reproduces_honest_outputs() {
    let e = engine();
    let opts = CalibrateOptions {
        first_prompt: 0,
        prompts: 4,
        max_tokens: 16,
        threads: vec![1, 2],
        ubatches: vec![512, 32],
        foreign: false,
        base: cfg(1),
        tolerance: Tolerance::DEFAULT,
    };
    let r = run(e, &opts, |_, _| {}).unwrap();
    assert_eq!(r.generations, 16);
    let c = &r.configs[0];
    assert!(c.tokens > 100, "{c:?}");
    assert!(c.greedy_tokens > 0 && c.sampled_tokens > 0);
    assert_eq!(c.false_rejections, 0, "honest tokens rejected: {c:?}");
    assert!(
        !r.llamafile,
        "llama.cpp was built with GGML_LLAMAFILE on; see .cargo/config.toml"
    );
    assert_eq!(
        (c.greedy_mismatches, c.sampled_mismatches),
        (0, 0),
        "the canonical configuration is not bit-exact on this machine: {c:?}"
    );
}
