//! The keystore: the mnemonic encrypted at rest, and atomic file writes.
//!
//! File (JSON): `{"version":1,"kdf":"argon2id","m_kib","t","p","salt","nonce","ciphertext"}`,
//! bytes in hex. The key is argon2id(passphrase, salt) with those costs; the cipher is
//! ChaCha20-Poly1305 with a fresh random nonce, and the associated data is every other field,
//! so a file whose costs or salt were altered fails to open like a wrong passphrase does.
//! Every write goes to a temporary file, is synced, and renamed over the old one: a kill at
//! any moment leaves the old file or the new one.

use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params as ArgonParams, Version};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The largest keystore file read (a real one is about 400 bytes).
pub const MAX_KEYSTORE_SIZE: u64 = 16 * 1024;

/// argon2id's costs: OWASP's first recommendation (64 MiB, 3 passes, 1 lane).
pub const DEFAULT_COSTS: Costs = Costs {
    m_kib: 64 * 1024,
    t: 3,
    p: 1,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Costs {
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("no wallet at {0}: create one with `camel-wallet init` or `camel-wallet restore`")]
    Missing(String),
    #[error("a wallet already exists at {0}; pick another --wallet-dir, or move it away first")]
    Exists(String),
    #[error("wrong passphrase, or the keystore was altered")]
    WrongPassphrase,
    #[error(
        "the keystore at {path} is corrupt or truncated ({why}); restore the wallet from its recovery phrase"
    )]
    Corrupt { path: String, why: String },
    #[error("the passphrase must not be empty")]
    EmptyPassphrase,
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct File {
    version: u32,
    kdf: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
    nonce: String,
    ciphertext: String,
}

impl File {
    fn aad(&self) -> Vec<u8> {
        format!(
            "camelid/keystore/{}/{}/{}/{}/{}/{}",
            self.version, self.kdf, self.m_kib, self.t, self.p, self.salt
        )
        .into_bytes()
    }
}

fn derive(passphrase: &str, salt: &[u8], c: Costs) -> Result<Zeroizing<[u8; 32]>, String> {
    let params = ArgonParams::new(c.m_kib, c.t, c.p, Some(32)).map_err(|e| e.to_string())?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, &mut *key)
        .map_err(|e| e.to_string())?;
    Ok(key)
}

/// Encrypts `secret` under `passphrase` into the keystore's bytes.
pub fn seal(secret: &str, passphrase: &str, costs: Costs) -> Result<Vec<u8>, KeystoreError> {
    if passphrase.is_empty() {
        return Err(KeystoreError::EmptyPassphrase);
    }
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    let mut rng = secp256k1::rand::rng();
    secp256k1::rand::RngCore::fill_bytes(&mut rng, &mut salt);
    secp256k1::rand::RngCore::fill_bytes(&mut rng, &mut nonce);
    let mut file = File {
        version: 1,
        kdf: "argon2id".into(),
        m_kib: costs.m_kib,
        t: costs.t,
        p: costs.p,
        salt: hex::encode(salt),
        nonce: hex::encode(nonce),
        ciphertext: String::new(),
    };
    let key = derive(passphrase, &salt, costs).map_err(|why| KeystoreError::Corrupt {
        path: "(new keystore)".into(),
        why,
    })?;
    let ct = ChaCha20Poly1305::new(&Key::from(*key))
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: secret.as_bytes(),
                aad: &file.aad(),
            },
        )
        .map_err(|_| KeystoreError::WrongPassphrase)?;
    file.ciphertext = hex::encode(ct);
    Ok(serde_json::to_vec_pretty(&file).unwrap_or_default())
}

/// Decrypts the keystore's bytes; `path` only names the file in errors.
pub fn open(
    bytes: &[u8],
    passphrase: &str,
    path: &str,
) -> Result<Zeroizing<String>, KeystoreError> {
    let corrupt = |why: &str| KeystoreError::Corrupt {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let file: File = serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()))?;
    if file.version != 1 || file.kdf != "argon2id" {
        return Err(corrupt("unknown version or key derivation"));
    }
    // Costs beyond these would let a planted file exhaust the machine's memory or time.
    if file.m_kib > 4 * 1024 * 1024 || file.t > 64 || file.p == 0 || file.p > 16 {
        return Err(corrupt("key derivation costs out of range"));
    }
    let salt = hex::decode(&file.salt).map_err(|_| corrupt("salt is not hex"))?;
    let nonce = hex::decode(&file.nonce).map_err(|_| corrupt("nonce is not hex"))?;
    let ct = hex::decode(&file.ciphertext).map_err(|_| corrupt("ciphertext is not hex"))?;
    let nonce: [u8; 12] = match (salt.len() >= 16, ct.len() >= 16, nonce.try_into()) {
        (true, true, Ok(n)) => n,
        _ => return Err(corrupt("field lengths")),
    };
    let costs = Costs {
        m_kib: file.m_kib,
        t: file.t,
        p: file.p,
    };
    let key = derive(passphrase, &salt, costs).map_err(|why| corrupt(&why))?;
    let plain = ChaCha20Poly1305::new(&Key::from(*key))
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &ct,
                aad: &file.aad(),
            },
        )
        .map_err(|_| KeystoreError::WrongPassphrase)?;
    let plain = Zeroizing::new(plain);
    String::from_utf8(plain.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| corrupt("secret is not text"))
}

/// Reads a file of at most `limit` bytes.
pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, KeystoreError> {
    let io = |source| KeystoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            KeystoreError::Missing(path.display().to_string())
        } else {
            io(e)
        }
    })?;
    if meta.len() > limit {
        return Err(KeystoreError::Corrupt {
            path: path.display().to_string(),
            why: format!("{} bytes, more than {limit}", meta.len()),
        });
    }
    std::fs::read(path).map_err(io)
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed over
/// it, then the directory synced. Secret files are created readable by the owner only.
pub fn write_atomic(path: &Path, bytes: &[u8], secret: bool) -> Result<(), KeystoreError> {
    let io = |source| KeystoreError::Io {
        path: path.display().to_string(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts.open(&tmp).map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Costs = Costs {
        m_kib: 256,
        t: 1,
        p: 1,
    };

    #[test]
    fn opens_with_its_passphrase_only() {
        let bytes = seal("abandon about", "correct horse", CHEAP).unwrap();
        assert_eq!(
            &*open(&bytes, "correct horse", "k").unwrap(),
            "abandon about"
        );
        assert!(matches!(
            open(&bytes, "wrong horse", "k"),
            Err(KeystoreError::WrongPassphrase)
        ));
        // The secret does not appear in the file.
        assert!(!String::from_utf8_lossy(&bytes).contains("abandon"));
        assert!(matches!(
            seal("x", "", CHEAP),
            Err(KeystoreError::EmptyPassphrase)
        ));
    }

    #[test]
    fn altered_truncated_or_hostile_files_are_refused() {
        let bytes = seal("abandon about", "pw", CHEAP).unwrap();
        // Truncated anywhere: corrupt, never a panic.
        for n in [0, 1, bytes.len() / 2, bytes.len() - 2] {
            assert!(
                matches!(
                    open(&bytes[..n], "pw", "k"),
                    Err(KeystoreError::Corrupt { .. })
                ),
                "truncated at {n}"
            );
        }
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        // Lowering the costs (to brute-force faster) breaks the authentication.
        v["t"] = 2.into();
        let altered = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            open(&altered, "pw", "k"),
            Err(KeystoreError::WrongPassphrase)
        ));
        // Costs that would exhaust memory are refused before any work.
        v["m_kib"] = (u32::MAX).into();
        let hostile = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            open(&hostile, "pw", "k"),
            Err(KeystoreError::Corrupt { .. })
        ));
        // A flipped ciphertext byte.
        let mut v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let mut ct = v["ciphertext"].as_str().unwrap().to_owned();
        let flipped = if ct.starts_with('0') { "1" } else { "0" };
        ct.replace_range(0..1, flipped);
        v["ciphertext"] = ct.into();
        assert!(matches!(
            open(&serde_json::to_vec(&v).unwrap(), "pw", "k"),
            Err(KeystoreError::WrongPassphrase)
        ));
    }

    #[test]
    fn atomic_writes_replace_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keystore.json");
        write_atomic(&p, b"old", true).unwrap();
        write_atomic(&p, b"new", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert!(!p.with_extension("tmp").exists());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "keystore readable by others: {mode:o}");
        }
        assert!(matches!(
            read_limited(&dir.path().join("none"), 10),
            Err(KeystoreError::Missing(_))
        ));
        assert!(matches!(
            read_limited(&p, 2),
            Err(KeystoreError::Corrupt { .. })
        ));
    }
}
