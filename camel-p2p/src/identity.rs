//! The node's network key. Its libp2p peer id (a hash of the public key) is the node's
//! identifier on the network; the key lives in the data directory so the id survives
//! restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

/// File name of the key inside the data directory.
pub const KEY_FILE: &str = "p2p_key";

/// Why the key could not be loaded or stored.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or write the network key {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the network key {path} is corrupt ({reason}); move it away to create a new identity")]
    Corrupt { path: PathBuf, reason: String },
}

/// Loads the ed25519 key from `dir/p2p_key` (libp2p's protobuf key encoding), creating it
/// (and `dir`) if absent. The file is written with mode 0600 on Unix.
pub fn load_or_create(dir: &Path) -> Result<Keypair, KeyError> {
    let path = dir.join(KEY_FILE);
    let io = |source| KeyError::Io {
        path: path.clone(),
        source,
    };
    match fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| KeyError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(io)?;
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(|e| KeyError::Corrupt {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let tmp = dir.join(format!("{KEY_FILE}.tmp"));
            let mut opts = fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            f.sync_all().map_err(io)?;
            fs::rename(&tmp, &path).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_survives_restart() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create(dir.path()).unwrap();
        let b = load_or_create(dir.path()).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        let other = tempfile::tempdir().unwrap();
        let c = load_or_create(&other.path().join("nested")).unwrap();
        assert_ne!(a.public().to_peer_id(), c.public().to_peer_id());
    }

    #[test]
    fn corrupt_key_is_an_error_not_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        let e = load_or_create(dir.path()).unwrap_err();
        assert!(matches!(e, KeyError::Corrupt { .. }), "{e}");
    }
}
