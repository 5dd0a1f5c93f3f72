//! The on-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes from milliseconds (a small
//! Rust step) to seconds (a Python interpreter). The cache stores the
//! compiled artifact under `<blake3 of the wasm>-<engine hash>.cwasm`, so a
//! change of the component or of the engine (version, settings, CPU
//! features) is a different entry.
//!
//! Loading a compiled artifact executes its machine code, so the host must
//! only ever load files it wrote itself. Each entry is sealed with a keyed
//! blake3 MAC; the key is random, created on first use and readable only by
//! the owner. An entry whose MAC does not verify (tampered, truncated, or
//! written by someone else) is discarded and the component is recompiled.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::RuntimeError;

const MAC_LEN: usize = 32;

/// A directory of compiled components sealed with a host-private key.
#[derive(Debug, Clone)]
pub struct CompiledCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl CompiledCache {
    /// Opens (creating if needed) a cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, RuntimeError> {
        let dir = dir.into();
        let err = |source| RuntimeError::Cache {
            path: dir.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(err)?;
        let key_path = dir.join("cache.key");
        let key = match fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let key: [u8; 32] = rand::random();
                write_atomically(&key_path, &key, true).map_err(err)?;
                key
            }
        };
        Ok(Self { dir, key })
    }

    /// The file for a component digest and an engine hash.
    pub(crate) fn entry_path(&self, digest: &str, engine_hash: &str) -> PathBuf {
        self.dir.join(format!("{digest}-{engine_hash}.cwasm"))
    }

    /// Returns the compiled bytes of an entry if it exists and its seal
    /// verifies. A bad entry is removed.
    pub(crate) fn get(&self, path: &Path) -> Option<Vec<u8>> {
        // The seal and the body are read apart, so that the body (tens of
        // megabytes for an interpreter) is read once into its own buffer,
        // never copied out of a buffer that also holds the seal.
        let mut file = fs::File::open(path).ok()?;
        let mut seal = [0u8; MAC_LEN];
        if file.read_exact(&mut seal).is_err() {
            let _ = fs::remove_file(path);
            return None;
        }
        let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let mut body = Vec::with_capacity(size.saturating_sub(MAC_LEN));
        file.read_to_end(&mut body).ok()?;
        if self.seal(&body) != blake3::Hash::from_bytes(seal) {
            tracing::warn!(path = %path.display(), "discarding a compiled component whose seal does not verify");
            let _ = fs::remove_file(path);
            return None;
        }
        Some(body)
    }

    /// The seal of compiled bytes: their blake3 MAC under this host's key.
    fn seal(&self, compiled: &[u8]) -> blake3::Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.key);
        crate::hash_into(&mut hasher, compiled);
        hasher.finalize()
    }

    /// Seals and stores compiled bytes.
    pub(crate) fn put(&self, path: &Path, compiled: &[u8]) -> Result<(), RuntimeError> {
        let mac = self.seal(compiled);
        let mut sealed = Vec::with_capacity(MAC_LEN + compiled.len());
        sealed.extend_from_slice(mac.as_bytes());
        sealed.extend_from_slice(compiled);
        write_atomically(path, &sealed, false).map_err(|source| RuntimeError::Cache {
            path: path.to_owned(),
            source,
        })
    }
}

/// A hex digest of the engine's compatibility hash: two engines with the
/// same value can load each other's compiled artifacts.
pub(crate) fn engine_hash(engine: &wasmtime::Engine) -> String {
    struct Blake3Hasher(blake3::Hasher);
    impl Hasher for Blake3Hasher {
        fn finish(&self) -> u64 {
            let hash = self.0.finalize();
            u64::from_le_bytes(hash.as_bytes()[..8].try_into().unwrap_or_default())
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = Blake3Hasher(blake3::Hasher::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hasher.0.finalize().to_hex()[..16].to_string()
}

/// Writes `bytes` to a temporary file next to `path`, then renames it, so a
/// reader sees either nothing or the whole file.
fn write_atomically(path: &Path, bytes: &[u8], private: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp_name = format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    );
    let tmp = dir.join(tmp_name);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampered_entry_is_rejected_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::open(dir.path()).unwrap();
        let path = cache.entry_path("abc", "def");
        cache.put(&path, b"compiled bytes").unwrap();
        assert_eq!(cache.get(&path).as_deref(), Some(&b"compiled bytes"[..]));

        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get(&path), None);
        assert!(!path.exists(), "a bad entry is removed");

        // Shorter than its seal: removed too; a missing entry is a miss.
        fs::write(&path, b"short").unwrap();
        assert_eq!(cache.get(&path), None);
        assert!(!path.exists(), "a truncated entry is removed");
        assert_eq!(cache.get(&path), None);
    }

    #[test]
    fn entry_from_another_key_is_rejected() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let cache_a = CompiledCache::open(a.path()).unwrap();
        let cache_b = CompiledCache::open(b.path()).unwrap();
        let path_a = cache_a.entry_path("x", "y");
        cache_a.put(&path_a, b"code").unwrap();
        let path_b = cache_b.entry_path("x", "y");
        fs::copy(&path_a, &path_b).unwrap();
        assert_eq!(cache_b.get(&path_b), None);
    }

    #[test]
    fn key_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompiledCache::open(dir.path()).unwrap();
        let path = cache.entry_path("k", "e");
        cache.put(&path, b"abc").unwrap();
        let again = CompiledCache::open(dir.path()).unwrap();
        assert_eq!(again.get(&path).as_deref(), Some(&b"abc"[..]));
    }
}
