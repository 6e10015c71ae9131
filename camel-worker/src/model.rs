//! Model files: locating, hashing (the model id is the SHA-256 of the file) and the checks that
//! turn unreadable, truncated or wrong files into clear errors before llama.cpp sees them.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use camel_core::ModelId;
use sha2::{Digest, Sha256};

/// The bundled model's file name.
pub const BUNDLED_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
/// The bundled model's id (SHA-256 of the file).
pub const BUNDLED_MODEL_ID: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// The bundled model's size in bytes.
pub const BUNDLED_MODEL_SIZE: u64 = 98_362_432;

const GGUF_MAGIC: &[u8; 4] = b"GGUF";
/// Magic, version (u32), tensor count (u64), metadata count (u64).
const GGUF_HEADER_LEN: usize = 24;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "model file {path} not found; run scripts/fetch-model.sh to get the bundled model, or pass --model with a GGUF file"
    )]
    NotFound { path: PathBuf },
    #[error("cannot read model file {path}: {source}")]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("{path} is not a GGUF model file (it starts with {magic:02x?}, not \"GGUF\")")]
    NotGguf { path: PathBuf, magic: Vec<u8> },
    #[error("model file {path} is truncated ({len} bytes, shorter than a GGUF header)")]
    TooShort { path: PathBuf, len: u64 },
    #[error(
        "model file {path} has id {actual}, expected {expected}; the file is corrupt, truncated or a different model"
    )]
    WrongHash {
        path: PathBuf,
        expected: ModelId,
        actual: ModelId,
    },
    #[error(
        "llama.cpp could not load {path} ({size} bytes, id {id}); the file is truncated or corrupt, or its architecture is unsupported"
    )]
    Load {
        path: PathBuf,
        size: u64,
        id: ModelId,
    },
}

/// A model file whose header has been checked and whose id has been computed.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub path: PathBuf,
    pub id: ModelId,
    pub size: u64,
}

impl ModelFile {
    /// Opens `path`, checks the GGUF magic and computes the file's SHA-256. With `expected`,
    /// a different hash is an error.
    pub fn open(path: &Path, expected: Option<ModelId>) -> Result<Self, ModelError> {
        let unreadable = |source: io::Error| {
            if source.kind() == io::ErrorKind::NotFound {
                ModelError::NotFound {
                    path: path.to_path_buf(),
                }
            } else {
                ModelError::Unreadable {
                    path: path.to_path_buf(),
                    source,
                }
            }
        };
        let mut file = File::open(path).map_err(unreadable)?;
        let meta = file.metadata().map_err(unreadable)?;
        if meta.is_dir() {
            return Err(ModelError::Unreadable {
                path: path.to_path_buf(),
                source: io::Error::other("it is a directory"),
            });
        }
        let size = meta.len();
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut head: Vec<u8> = Vec::with_capacity(GGUF_HEADER_LEN);
        loop {
            let n = file.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            if head.len() < GGUF_HEADER_LEN {
                let take = (GGUF_HEADER_LEN - head.len()).min(n);
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(chunk);
        }
        if head.len() >= 4 && &head[..4] != GGUF_MAGIC {
            return Err(ModelError::NotGguf {
                path: path.to_path_buf(),
                magic: head[..4].to_vec(),
            });
        }
        if head.len() < GGUF_HEADER_LEN {
            return Err(ModelError::TooShort {
                path: path.to_path_buf(),
                len: size,
            });
        }
        let id = ModelId::from_byte_array(hasher.finalize().into());
        if let Some(expected) = expected
            && expected != id
        {
            return Err(ModelError::WrongHash {
                path: path.to_path_buf(),
                expected,
                actual: id,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            id,
            size,
        })
    }
}

/// The models directory: `$CAMEL_MODEL_DIR`, else `<workspace>/models`.
pub fn model_dir() -> PathBuf {
    match std::env::var_os("CAMEL_MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("models"),
    }
}

/// The bundled model's path inside [`model_dir`].
pub fn bundled_model_path() -> PathBuf {
    model_dir().join(BUNDLED_MODEL_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("camel-model-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let e = ModelFile::open(Path::new("/nonexistent/x.gguf"), None).unwrap_err();
        assert!(matches!(e, ModelError::NotFound { .. }));
        assert!(e.to_string().contains("fetch-model.sh"));
    }

    #[test]
    fn not_gguf_and_short() {
        let e = ModelFile::open(
            &tmp("a.gguf", b"PK\x03\x04 definitely not gguf bytes"),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ModelError::NotGguf { .. }), "{e}");
        let e = ModelFile::open(&tmp("b.gguf", b"GGUF\x03\0\0\0"), None).unwrap_err();
        assert!(matches!(e, ModelError::TooShort { len: 8, .. }), "{e}");
        let e = ModelFile::open(&tmp("c.gguf", b""), None).unwrap_err();
        assert!(matches!(e, ModelError::TooShort { len: 0, .. }), "{e}");
    }

    #[test]
    fn hash_is_checked() {
        let bytes = b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0rest";
        let p = tmp("d.gguf", bytes);
        let f = ModelFile::open(&p, None).unwrap();
        assert_eq!(f.id, ModelId::of_bytes(bytes));
        assert_eq!(f.size, bytes.len() as u64);
        assert!(ModelFile::open(&p, Some(f.id)).is_ok());
        let e = ModelFile::open(&p, Some(ModelId::ZERO)).unwrap_err();
        assert!(matches!(e, ModelError::WrongHash { .. }));
        assert!(e.to_string().contains(&f.id.to_string()));
    }
}
