//! The two llama.cpp calls llama-cpp-2 does not wrap: requantizing a model file (the attack
//! suite builds a lower-quality copy of the model with it) and the build's system information
//! (to show that the canonical build flags are in effect). The only `unsafe` in the crate.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::path::Path;

/// Target quantizations offered by [`requantize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    Q2K,
    Q3KS,
    Q4_0,
    Q8_0,
}

impl Quant {
    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            Self::Q2K => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q2_K,
            Self::Q3KS => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q3_K_S,
            Self::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
            Self::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
        }
    }
}

/// Why requantization failed.
#[derive(Debug, thiserror::Error)]
pub enum QuantizeError {
    #[error("path {0} is not valid UTF-8 without NUL bytes")]
    Path(String),
    #[error("llama.cpp could not quantize {input} to {output} (status {status})")]
    Failed {
        input: String,
        output: String,
        status: u32,
    },
}

/// Writes a copy of the GGUF model at `input` requantized to `quant` (requantizing already
/// quantized tensors is allowed) to `output`.
pub fn requantize(
    input: &Path,
    output: &Path,
    quant: Quant,
    threads: u32,
) -> Result<(), QuantizeError> {
    let c = |p: &Path| {
        p.to_str()
            .and_then(|s| CString::new(s).ok())
            .ok_or_else(|| QuantizeError::Path(p.display().to_string()))
    };
    let (cin, cout) = (c(input)?, c(output)?);
    // SAFETY: llama_model_quantize_default_params returns a plain struct by value.
    let mut params = unsafe { llama_cpp_sys_2::llama_model_quantize_default_params() };
    params.ftype = quant.ftype();
    params.allow_requantize = true;
    params.nthread = i32::try_from(threads).unwrap_or(1);
    // SAFETY: both strings are valid NUL-terminated C strings that outlive the call, and
    // `params` is a fully initialised struct obtained from llama.cpp's own defaults.
    let status =
        unsafe { llama_cpp_sys_2::llama_model_quantize(cin.as_ptr(), cout.as_ptr(), &params) };
    if status != 0 {
        return Err(QuantizeError::Failed {
            input: input.display().to_string(),
            output: output.display().to_string(),
            status,
        });
    }
    Ok(())
}

/// llama.cpp's system information line: the compiled-in CPU features of each registered backend.
pub fn system_info() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated buffer owned by llama.cpp.
    let p = unsafe { llama_cpp_sys_2::llama_print_system_info() };
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null pointer to a NUL-terminated string, copied out immediately.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Whether the linked llama.cpp was built with the llamafile kernels (not canonical).
pub fn llamafile_enabled() -> bool {
    // SAFETY: a pure query of a compile-time flag of the ggml CPU backend.
    unsafe { llama_cpp_sys_2::ggml_cpu_has_llamafile() != 0 }
}
