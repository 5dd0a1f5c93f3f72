//! weft's secrets: values that stacks, plugin configurations and steps
//! need (a database password, an API token) but that must never be written
//! where weft keeps what it records.
//!
//! A setting refers to a secret by name, `${secret:NAME}`, anywhere in a
//! string: `postgres://weft:${secret:pg-password}@db:5432/weft`. The value
//! comes, first, from the environment variable `WEFT_SECRET_<NAME>` (the
//! name upper-cased, `-` as `_`): how CI and batch workers are handed
//! secrets. Otherwise from the store that `weft secret set NAME` writes:
//! `<WEFT_HOME>/secrets.toml`, each value encrypted with
//! ChaCha20-Poly1305 under a key the user controls: `WEFT_SECRET_KEY` (64
//! hex digits) or, when that is not set, `<WEFT_HOME>/secret.key` (made on
//! the first `set`, readable by its owner only). The secret's name is the
//! associated data, so a value moved under another name does not decrypt.
//!
//! What is resolved is used and forgotten: the setting as written (with
//! its references) is what is stored and shown, and [`mask`] hides the
//! values in whatever a step or plugin printed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// How a reference starts: `${secret:NAME}`.
pub const REFERENCE_START: &str = "${secret:";

/// The environment variable that holds the encryption key (64 hex digits).
pub const KEY_VAR: &str = "WEFT_SECRET_KEY";

/// What shows in place of a secret's value in logs.
pub const MASK: &str = "***";

/// Errors of the secrets store and of resolving references.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The name is not one a secret may have.
    #[error("'{0}' is not a secret name: use 1 to 128 letters, digits, '_' or '-'")]
    BadName(String),
    /// Neither the environment nor the store has it.
    #[error("secret '{name}' is not set: run `weft secret set {name}` or set {var}")]
    Missing { name: String, var: String },
    /// A `${secret:` without its `}`.
    #[error("a secret reference is not closed: write ${{secret:NAME}}")]
    Unterminated,
    /// The key cannot be had.
    #[error("the secret key: {0}")]
    Key(String),
    /// The stored value does not decrypt with this key (another key, or
    /// the file was changed).
    #[error("secret '{0}' cannot be decrypted with this key ({KEY_VAR} or secret.key); was it set with another key?")]
    Decrypt(String),
    /// Reading or writing the store failed.
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

type Result<T> = std::result::Result<T, SecretError>;

/// Checks a secret's name: 1 to 128 letters, digits, `_` or `-`.
pub fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(SecretError::BadName(name.to_string()))
    }
}

/// The environment variable that gives secret `name` a value.
pub fn env_var(name: &str) -> String {
    format!("WEFT_SECRET_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// The names that `text` refers to, in order (repeats included).
pub fn references(text: &str) -> Result<Vec<&str>> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(REFERENCE_START) {
        let after = &rest[start + REFERENCE_START.len()..];
        let end = after.find('}').ok_or(SecretError::Unterminated)?;
        let name = &after[..end];
        validate_name(name)?;
        names.push(name);
        rest = &after[end + 1..];
    }
    Ok(names)
}

/// Replaces every occurrence of each value in `text` with [`MASK`]
/// (longest first, so a value inside another is not half shown).
pub fn mask(text: &str, values: &[Zeroizing<String>]) -> String {
    let mut values: Vec<&str> = values.iter().map(|v| v.as_str()).filter(|v| !v.is_empty()).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = text.to_string();
    for value in values {
        if out.contains(value) {
            out = out.replace(value, MASK);
        }
    }
    out
}

/// A text with its references replaced by their values, and the values
/// used (to [`mask`] them where they might be printed).
pub struct Resolved {
    pub text: Zeroizing<String>,
    pub values: Vec<Zeroizing<String>>,
}

#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreFile {
    /// Name -> base64 of nonce (12 bytes) and ciphertext.
    #[serde(default)]
    secrets: BTreeMap<String, String>,
}

/// The secrets of one weft home (see the crate documentation).
#[derive(Debug, Clone)]
pub struct Secrets {
    home: PathBuf,
}

impl Secrets {
    /// The secrets kept under `home` (weft's home directory).
    pub fn new(home: impl Into<PathBuf>) -> Self {
        Self { home: home.into() }
    }

    fn file(&self) -> PathBuf {
        self.home.join("secrets.toml")
    }

    /// Where the key is kept when [`KEY_VAR`] is not set.
    pub fn key_file(&self) -> PathBuf {
        self.home.join("secret.key")
    }

    /// The key: from [`KEY_VAR`], else from the key file, which `create`
    /// makes when missing (`Ok(None)`: there is no key).
    fn key(&self, create: bool) -> Result<Option<Zeroizing<[u8; 32]>>> {
        let parse = |text: &str, from: &str| -> Result<Zeroizing<[u8; 32]>> {
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(text.trim(), key.as_mut_slice())
                .map_err(|_| SecretError::Key(format!("{from} must hold 64 hex digits (32 bytes)")))?;
            Ok(key)
        };
        if let Some(text) = std::env::var(KEY_VAR).ok().filter(|t| !t.is_empty()) {
            let text = Zeroizing::new(text);
            return parse(&text, KEY_VAR).map(Some);
        }
        let path = self.key_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                parse(&text, &path.display().to_string()).map(Some)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                let text = Zeroizing::new(hex::encode(key.as_slice()));
                write_private(&path, text.as_bytes())?;
                let mut out = Zeroizing::new([0u8; 32]);
                out.copy_from_slice(key.as_slice());
                Ok(Some(out))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SecretError::Key(format!("{}: {e}", path.display()))),
        }
    }

    fn load(&self) -> Result<StoreFile> {
        let path = self.file();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| SecretError::File {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::default()),
            Err(e) => Err(SecretError::File {
                path,
                message: e.to_string(),
            }),
        }
    }

    fn save(&self, file: &StoreFile) -> Result<()> {
        let text = toml::to_string_pretty(file).map_err(|e| SecretError::File {
            path: self.file(),
            message: e.to_string(),
        })?;
        write_private(&self.file(), text.as_bytes())
    }

    /// Stores `value` under `name`, encrypted (replacing what was there).
    /// Returns whether the key file was made by this call (the user must
    /// keep it: without it the secrets cannot be read).
    pub fn set(&self, name: &str, value: &str) -> Result<bool> {
        validate_name(name)?;
        let made_key = std::env::var(KEY_VAR).map_or(true, |v| v.is_empty()) && !self.key_file().exists();
        let key = self
            .key(true)?
            .ok_or_else(|| SecretError::Key("none could be made".into()))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: value.as_bytes(),
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Key("encryption failed".into()))?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&sealed);
        let mut file = self.load()?;
        file.secrets
            .insert(name.to_string(), base64::engine::general_purpose::STANDARD.encode(blob));
        self.save(&file)?;
        Ok(made_key)
    }

    /// Deletes a stored secret; false when there was none.
    pub fn delete(&self, name: &str) -> Result<bool> {
        validate_name(name)?;
        let mut file = self.load()?;
        let removed = file.secrets.remove(name).is_some();
        if removed {
            self.save(&file)?;
        }
        Ok(removed)
    }

    /// The names of the stored secrets (not those only in the environment).
    pub fn names(&self) -> Result<Vec<String>> {
        Ok(self.load()?.secrets.into_keys().collect())
    }

    /// The value of secret `name`: from its environment variable, else
    /// from the store.
    pub fn get(&self, name: &str) -> Result<Zeroizing<String>> {
        validate_name(name)?;
        let var = env_var(name);
        if let Ok(value) = std::env::var(&var) {
            return Ok(Zeroizing::new(value));
        }
        let missing = || SecretError::Missing {
            name: name.to_string(),
            var: var.clone(),
        };
        let file = self.load()?;
        let blob = file.secrets.get(name).ok_or_else(missing)?;
        let blob = base64::engine::general_purpose::STANDARD
            .decode(blob)
            .map_err(|_| SecretError::Decrypt(name.to_string()))?;
        if blob.len() < 12 {
            return Err(SecretError::Decrypt(name.to_string()));
        }
        let key = self
            .key(false)?
            .ok_or_else(|| SecretError::Key(format!("set {KEY_VAR}, or restore {}", self.key_file().display())))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_slice()));
        let (nonce, sealed) = blob.split_at(12);
        let plain = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt(name.to_string()))?;
        String::from_utf8(plain)
            .map(Zeroizing::new)
            .map_err(|_| SecretError::Decrypt(name.to_string()))
    }

    /// `text` with every `${secret:NAME}` replaced by the secret's value.
    pub fn resolve(&self, text: &str) -> Result<Resolved> {
        let mut out = Zeroizing::new(String::with_capacity(text.len()));
        let mut values = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(REFERENCE_START) {
            out.push_str(&rest[..start]);
            let after = &rest[start + REFERENCE_START.len()..];
            let end = after.find('}').ok_or(SecretError::Unterminated)?;
            let value = self.get(&after[..end])?;
            out.push_str(&value);
            values.push(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Resolved { text: out, values })
    }

    /// Like [`Secrets::resolve`], for references inside the strings of a
    /// JSON text: each value goes in escaped as JSON string content, so the
    /// text stays valid JSON whatever the value holds. The values returned
    /// include both forms, to mask either.
    pub fn resolve_json(&self, json: &str) -> Result<Resolved> {
        let mut out = Zeroizing::new(String::with_capacity(json.len()));
        let mut values = Vec::new();
        let mut rest = json;
        while let Some(start) = rest.find(REFERENCE_START) {
            out.push_str(&rest[..start]);
            let after = &rest[start + REFERENCE_START.len()..];
            let end = after.find('}').ok_or(SecretError::Unterminated)?;
            let value = self.get(&after[..end])?;
            let quoted = Zeroizing::new(serde_json::to_string(value.as_str()).unwrap_or_default());
            let escaped = Zeroizing::new(quoted[1..quoted.len() - 1].to_string());
            out.push_str(&escaped);
            if *escaped != *value {
                values.push(escaped);
            }
            values.push(value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Resolved { text: out, values })
    }
}

/// Writes a file readable by its owner only, atomically (aside, then
/// renamed into place).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |e: std::io::Error| SecretError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let aside = path.with_extension(format!("{}.new", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = (|| {
        use std::io::Write as _;
        let mut file = options.open(&aside)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&aside, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&aside);
    }
    written.map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_stored_encrypted_and_read_back_under_its_own_name_only() {
        let home = tempfile::tempdir().unwrap();
        let secrets = Secrets::new(home.path());
        assert!(
            secrets.set("pg-password", "hunter2-value").unwrap(),
            "the key is made on first use"
        );
        assert!(!secrets.set("token", "abc").unwrap());
        assert_eq!(secrets.get("pg-password").unwrap().as_str(), "hunter2-value");
        let stored = std::fs::read_to_string(home.path().join("secrets.toml")).unwrap();
        assert!(!stored.contains("hunter2"), "{stored}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            for file in ["secrets.toml", "secret.key"] {
                let mode = std::fs::metadata(home.path().join(file)).unwrap().permissions().mode();
                assert_eq!(mode & 0o077, 0, "{file} is readable by others: {mode:o}");
            }
        }

        // A value moved under another name does not decrypt.
        let swapped = stored.replace("pg-password", "other");
        std::fs::write(home.path().join("secrets.toml"), swapped).unwrap();
        assert!(matches!(secrets.get("other"), Err(SecretError::Decrypt(_))));
        assert!(matches!(secrets.get("pg-password"), Err(SecretError::Missing { .. })));
    }

    #[test]
    fn references_resolve_and_values_are_masked() {
        let home = tempfile::tempdir().unwrap();
        let secrets = Secrets::new(home.path());
        secrets.set("user", "alice").unwrap();
        secrets.set("pw", "s3cr3t-pw").unwrap();
        let resolved = secrets
            .resolve("postgres://${secret:user}:${secret:pw}@db/weft")
            .unwrap();
        assert_eq!(resolved.text.as_str(), "postgres://alice:s3cr3t-pw@db/weft");
        assert_eq!(
            mask("connected as alice with s3cr3t-pw", &resolved.values),
            "connected as *** with ***"
        );
        assert_eq!(
            references("a ${secret:user} b ${secret:pw}").unwrap(),
            vec!["user", "pw"]
        );
        assert!(matches!(secrets.resolve("${secret:pw"), Err(SecretError::Unterminated)));
        assert!(matches!(
            secrets.resolve("${secret:no such}"),
            Err(SecretError::BadName(_))
        ));
        match secrets.resolve("${secret:absent}") {
            Err(SecretError::Missing { var, .. }) => assert_eq!(var, "WEFT_SECRET_ABSENT"),
            _ => panic!("a missing secret is an error"),
        }
        assert_eq!(secrets.names().unwrap(), vec!["pw".to_string(), "user".to_string()]);
        secrets.set("quoted", "a\"b\\c").unwrap();
        let json = secrets.resolve_json(r#"{"url": "x${secret:quoted}y"}"#).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json.text).unwrap();
        assert_eq!(parsed["url"], "xa\"b\\cy");
        assert_eq!(mask(&json.text, &json.values), r#"{"url": "x***y"}"#);
        assert!(secrets.delete("pw").unwrap());
        assert!(!secrets.delete("pw").unwrap());
    }
}
