//! The data directory: where it is, an exclusive lock so two nodes never share one, and the
//! API cookie (bitcoind's model: a fresh random token each start, in a file only the owner
//! can read; whoever can read the file may control the node).
//!
//! Layout: `<dir>/chain.redb` (the store), `<dir>/LOCK` (holds the running node's process id
//! while it is locked), `<dir>/.cookie` (the API token, mode 0600, removed on clean shutdown).
//! The daemon adds `api.addr` and `p2p.addr`, camel-p2p the network key `p2p_key`, and
//! `camel-worker node` its `job_key`, `worker.json` and `worker/` (`docs/node.md`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use camel_core::params::Network;

/// File name of the store inside the data directory.
pub const STORE_FILE: &str = "chain.redb";
/// File name of the lock file.
pub const LOCK_FILE: &str = "LOCK";
/// File name of the API cookie.
pub const COOKIE_FILE: &str = ".cookie";

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error(
        "data directory {dir} is in use by another node (process {holder}); stop it or pass another --data-dir"
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("no home directory to put the data directory in; pass --data-dir")]
    NoHome,
    #[error("data directory {dir}: {source}")]
    Io {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The platform's data directory for `network`, e.g. `~/.local/share/camelidcoin/regtest`
/// on Linux.
pub fn default_data_dir(network: Network) -> Result<PathBuf, DataDirError> {
    directories::ProjectDirs::from("org", "CamelidCoin", "camelidcoin")
        .map(|d| d.data_dir().join(network.name()))
        .ok_or(DataDirError::NoHome)
}

/// A locked data directory. The lock is released when this value is dropped (or the
/// process dies: the operating system drops the lock with the file descriptor).
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates `path` if needed and takes its lock, or says which process holds it.
    pub fn open(path: &Path) -> Result<Self, DataDirError> {
        let io = |source| DataDirError::Io {
            dir: path.to_path_buf(),
            source,
        };
        fs::create_dir_all(path).map_err(io)?;
        let mut lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path.join(LOCK_FILE))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(DataDirError::Locked {
                    dir: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "unknown".to_owned()
                    } else {
                        holder.to_owned()
                    },
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        lock.set_len(0).map_err(io)?;
        lock.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(lock, "{}", std::process::id()).map_err(io)?;
        lock.sync_all().map_err(io)?;
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn store_path(&self) -> PathBuf {
        self.path.join(STORE_FILE)
    }

    pub fn cookie_path(&self) -> PathBuf {
        self.path.join(COOKIE_FILE)
    }

    /// Writes a fresh random API token to the cookie file (mode 0600, replacing any old
    /// one) and returns it.
    pub fn write_cookie(&self) -> Result<String, DataDirError> {
        let token = {
            use rand::RngCore;
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            camel_core::hash::to_hex(&bytes)
        };
        let path = self.cookie_path();
        let io = |source| DataDirError::Io {
            dir: self.path.clone(),
            source,
        };
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(io)?;
        file.write_all(token.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(token)
    }

    /// Removes the cookie file (on clean shutdown).
    pub fn remove_cookie(&self) {
        let _ = fs::remove_file(self.cookie_path());
    }
}

/// Reads the API token from a data directory's cookie file (for clients and tests).
pub fn read_cookie(dir: &Path) -> std::io::Result<String> {
    Ok(fs::read_to_string(dir.join(COOKIE_FILE))?.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "camel-node-datadir-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn second_open_names_the_directory_and_holder() {
        let dir = temp_dir("lock");
        let first = DataDir::open(&dir).unwrap();
        let err = DataDir::open(&dir).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&dir.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("process {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        // Released on drop: a new node may take it.
        let again = DataDir::open(&dir).unwrap();
        drop(again);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cookie_is_private_and_fresh() {
        let dir = temp_dir("cookie");
        let d = DataDir::open(&dir).unwrap();
        let a = d.write_cookie().unwrap();
        assert_eq!(read_cookie(&dir).unwrap(), a);
        assert_eq!(a.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(d.cookie_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let b = d.write_cookie().unwrap();
        assert_ne!(a, b);
        assert_eq!(read_cookie(&dir).unwrap(), b);
        d.remove_cookie();
        assert!(read_cookie(&dir).is_err());
        drop(d);
        fs::remove_dir_all(&dir).unwrap();
    }
}
