//! Bundles: a pipeline in one file, to run where its sources, build
//! outputs and toolchains are not (`weft bundle`, `weft run FILE.weft`).
//!
//! A bundle is a tar archive of exactly these entries, in this order:
//! - `bundle.json`: the [`Header`]: the manifest's text, the component of
//!   every step and (with `--with-data`) every external input, pinned by
//!   digest, and the digest and size of every blob;
//! - `blobs/<digest>`: each component and input file once, named by the
//!   BLAKE3 digest of its bytes;
//! - `bundle.digest`: the BLAKE3 digest of `bundle.json`'s bytes, which is
//!   the bundle's digest. As the header names every blob by the digest of
//!   its bytes, it covers the whole content;
//! - `bundle.sig`, when signed: an Ed25519 signature of that digest (its
//!   64 hex digits) and the public key that made it, as JSON ([`Signature`]).
//!
//! Keys are the standard PEM files of OpenSSL and others:
//! `openssl genpkey -algorithm ed25519 -out weft.key` makes a signing key,
//! `openssl pkey -in weft.key -pubout -out weft.pub` its public key.
//!
//! [`open`] checks all of it while it reads, before anything runs: any
//! other entry, a blob whose bytes do not match its name or size, a
//! missing or extra blob, a header that does not match `bundle.digest`, or
//! a file cut short is refused with a [`BundleError`] that says which.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registered::{is_plain_name, PinnedInput, Pins};
use crate::Manifest;

/// The format this weft writes and reads.
pub const FORMAT: u32 = 1;

/// The largest `bundle.json` read.
const MAX_HEADER_BYTES: u64 = 16 << 20;

const HEADER: &str = "bundle.json";
const DIGEST: &str = "bundle.digest";
const SIGNATURE: &str = "bundle.sig";
const BLOBS: &str = "blobs/";

/// What a bundle holds, as `bundle.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Header {
    /// The bundle format ([`FORMAT`]).
    pub format: u32,
    /// The weft version that wrote it.
    pub weft: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// The manifest (weft.toml) as written.
    pub manifest: String,
    /// Components by step; external inputs by name (only those bundled).
    pub pins: Pins,
    /// Every blob: digest → size in bytes.
    pub blobs: BTreeMap<String, u64>,
}

/// A bundle written or opened.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle's digest (of its `bundle.json`).
    pub digest: String,
    pub header: Header,
    /// The public key (hex) whose signature of the digest verified.
    pub signed_by: Option<String>,
}

/// `bundle.sig`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    /// `ed25519`.
    pub algorithm: String,
    /// The signer's public key, 32 bytes in hex.
    pub public_key: String,
    /// The signature of the bundle's digest (its hex text), 64 bytes in hex.
    pub signature: String,
}

/// An Ed25519 signing key, from a PEM `PRIVATE KEY` (PKCS#8) file.
pub struct SigningKey(ring::signature::Ed25519KeyPair);

/// An Ed25519 public key, from a PEM `PUBLIC KEY` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410), before
/// the 32 bytes of the key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

fn pem_file(path: &Path, tag: &str, how: &str) -> Result<Vec<u8>, BundleError> {
    let bad = |why: String| BundleError::Key {
        path: path.to_owned(),
        reason: format!("{why}; {how}"),
    };
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let pem = pem::parse(&text).map_err(|e| bad(format!("not a PEM file ({e})")))?;
    if pem.tag() != tag {
        return Err(bad(format!("a PEM {} where a {tag} was expected", pem.tag())));
    }
    Ok(pem.contents().to_vec())
}

impl SigningKey {
    /// Reads an Ed25519 private key (PEM, PKCS#8).
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let how = "make one with `openssl genpkey -algorithm ed25519 -out weft.key`";
        let der = pem_file(path, "PRIVATE KEY", how)?;
        ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
            .map(Self)
            .map_err(|e| BundleError::Key {
                path: path.to_owned(),
                reason: format!("not an Ed25519 private key ({e}); {how}"),
            })
    }

    fn public_hex(&self) -> String {
        use ring::signature::KeyPair;
        hex::encode(self.0.public_key().as_ref())
    }
}

impl PublicKey {
    /// Reads an Ed25519 public key (PEM, SubjectPublicKeyInfo).
    pub fn load(path: &Path) -> Result<Self, BundleError> {
        let how = "make it with `openssl pkey -in weft.key -pubout -out weft.pub`";
        let der = pem_file(path, "PUBLIC KEY", how)?;
        match der.strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(key) if key.len() == 32 => {
                let mut bytes = [0u8; 32];
                bytes.copy_from_slice(key);
                Ok(Self(bytes))
            }
            _ => Err(BundleError::Key {
                path: path.to_owned(),
                reason: format!("not an Ed25519 public key; {how}"),
            }),
        }
    }

    /// The key in hex, as bundles state it.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Checks `signature` of `digest`; gives the signer's key (hex).
fn check_signature(signature: &Signature, digest: &str) -> Result<String, String> {
    if signature.algorithm != "ed25519" {
        return Err(format!("signed with {}, not ed25519", signature.algorithm));
    }
    let key = hex::decode(&signature.public_key).map_err(|_| "its public key is not hex".to_string())?;
    let sig = hex::decode(&signature.signature).map_err(|_| "its signature is not hex".to_string())?;
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &key)
        .verify(digest.as_bytes(), &sig)
        .map_err(|_| "its signature does not verify: the bundle was altered after it was signed".to_string())?;
    Ok(signature.public_key.clone())
}

/// Why a bundle could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Manifest(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a valid weft bundle: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BundleError {
    let what = what.into();
    move |source| BundleError::Io { what, source }
}

/// Writes the pipeline of the manifest at `manifest_path` to `out`: its
/// manifest, its built components and, with `with_data`, its external
/// input files, signed with `sign` if given. The components must be built
/// (`weft build`).
pub fn write(
    manifest_path: &Path,
    out: &Path,
    with_data: bool,
    sign: Option<&SigningKey>,
) -> Result<Bundle, BundleError> {
    let text = std::fs::read_to_string(manifest_path).map_err(io(format!("reading {}", manifest_path.display())))?;
    let manifest = Manifest::load(manifest_path).map_err(|e| BundleError::Manifest(e.to_string()))?;
    manifest
        .check_files()
        .map_err(|e| BundleError::Manifest(e.to_string()))?;
    // Blob digest → the file it is read from; digest → size.
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut blobs = BTreeMap::new();
    let mut pins = Pins::default();
    for step in &manifest.steps {
        let bytes = weft_runtime::read_component(&step.component).map_err(|e| BundleError::Manifest(e.to_string()))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        blobs.insert(digest.clone(), bytes.len() as u64);
        files.entry(digest.clone()).or_insert_with(|| step.component.clone());
        pins.components.insert(step.name.clone(), digest);
    }
    for model in &manifest.models {
        let Some(path) = &model.served_by else { continue };
        let bytes = weft_runtime::read_component(path).map_err(|e| BundleError::Manifest(e.to_string()))?;
        let digest = blake3::hash(&bytes).to_hex().to_string();
        blobs.insert(digest.clone(), bytes.len() as u64);
        files.entry(digest.clone()).or_insert_with(|| path.clone());
        pins.servers.insert(model.name.clone(), digest);
    }
    if with_data {
        for input in &manifest.inputs {
            if !input.path.is_file() {
                return Err(BundleError::Manifest(format!(
                    "inputs.{} ({}) is a directory: only file inputs can be bundled so far; \
                     bundle without --with-data and give the directory beside the bundle",
                    input.name,
                    input.path.display()
                )));
            }
            // Data can be large: hashed as it streams, never held whole.
            let (digest, size) = hash_file(&input.path)?;
            blobs.insert(digest.clone(), size);
            files.entry(digest.clone()).or_insert_with(|| input.path.clone());
            let file_name = input
                .path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| is_plain_name(n))
                .unwrap_or(&input.name)
                .to_string();
            pins.inputs.insert(
                input.name.clone(),
                PinnedInput {
                    digest,
                    kind: "file".into(),
                    file_name,
                },
            );
        }
    }
    let header = Header {
        format: FORMAT,
        weft: env!("CARGO_PKG_VERSION").to_string(),
        pipeline: manifest.name.clone(),
        manifest: text,
        pins,
        blobs,
    };
    let header_bytes = serde_json::to_vec_pretty(&header).map_err(|e| BundleError::Manifest(e.to_string()))?;
    let digest = blake3::hash(&header_bytes).to_hex().to_string();

    // Written aside, then renamed: `out` is a whole bundle or untouched.
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let aside = tempfile::NamedTempFile::new_in(&dir).map_err(io(format!("creating a file in {}", dir.display())))?;
    {
        let mut tar = tar::Builder::new(BufWriter::new(aside.as_file()));
        tar.mode(tar::HeaderMode::Deterministic);
        let mut append = |name: &str, size: u64, data: &mut dyn Read| {
            let mut entry = tar::Header::new_ustar();
            entry.set_size(size);
            entry.set_mode(0o644);
            entry.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut entry, name, data)
                .map_err(io(format!("writing {}", out.display())))
        };
        append(HEADER, header_bytes.len() as u64, &mut header_bytes.as_slice())?;
        for (blob, path) in &files {
            let file = File::open(path).map_err(io(format!("reading {}", path.display())))?;
            let mut reader = HashingReader {
                inner: file.take(header.blobs[blob]),
                hasher: blake3::Hasher::new(),
            };
            append(&format!("{BLOBS}{blob}"), header.blobs[blob], &mut reader)?;
            if reader.hasher.finalize().to_hex().as_str() != blob {
                return Err(BundleError::Manifest(format!(
                    "{} changed while it was being bundled; try again",
                    path.display()
                )));
            }
        }
        append(DIGEST, digest.len() as u64, &mut digest.as_bytes())?;
        if let Some(key) = sign {
            let signature = Signature {
                algorithm: "ed25519".into(),
                public_key: key.public_hex(),
                signature: hex::encode(key.0.sign(digest.as_bytes()).as_ref()),
            };
            let bytes = serde_json::to_vec_pretty(&signature).map_err(|e| BundleError::Manifest(e.to_string()))?;
            append(SIGNATURE, bytes.len() as u64, &mut bytes.as_slice())?;
        }
        let mut writer = tar.into_inner().map_err(io(format!("writing {}", out.display())))?;
        writer.flush().map_err(io(format!("writing {}", out.display())))?;
    }
    // Readable by others like any file written here (not a temp file's 0600).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::Permissions::from_mode(0o644);
        aside
            .as_file()
            .set_permissions(mode)
            .map_err(io(format!("writing {}", out.display())))?;
    }
    aside
        .as_file()
        .sync_all()
        .map_err(io(format!("writing {}", out.display())))?;
    aside.persist(out).map_err(|e| BundleError::Io {
        what: format!("writing {}", out.display()),
        source: e.error,
    })?;
    Ok(Bundle {
        digest,
        header,
        signed_by: sign.map(SigningKey::public_hex),
    })
}

/// Reads and checks the bundle at `path`, placing its blobs under `dir`
/// (created; it should be empty), and returns its manifest pointing at
/// them. Relative paths in the manifest (the external inputs that are not
/// bundled) are resolved against `root`. With `require`, the bundle must
/// be signed by that key; a signature is checked in any case.
pub fn open(
    path: &Path,
    dir: &Path,
    root: &Path,
    require: Option<&PublicKey>,
) -> Result<(Bundle, Manifest), BundleError> {
    let invalid = |reason: String| BundleError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let file = File::open(path).map_err(io(format!("opening {}", path.display())))?;
    let blobs_dir = dir.join("blobs");
    std::fs::create_dir_all(&blobs_dir).map_err(io(format!("creating {}", blobs_dir.display())))?;

    let mut archive = tar::Archive::new(BufReader::new(file));
    let entries = archive
        .entries()
        .map_err(|e| invalid(format!("not a tar archive ({e})")))?;
    let mut header: Option<(Header, String)> = None;
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut stated_digest: Option<String> = None;
    let mut signature: Option<Signature> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| invalid(format!("cut short or damaged ({e})")))?;
        let name = entry
            .path()
            .ok()
            .and_then(|p| p.to_str().map(str::to_string))
            .ok_or_else(|| invalid("an entry's name is not UTF-8".into()))?;
        if entry.header().entry_type() != tar::EntryType::Regular {
            return Err(invalid(format!("entry {name} is not a regular file")));
        }
        if signature.is_some() || (stated_digest.is_some() && name != SIGNATURE) {
            return Err(invalid(format!("entry {name} after {DIGEST}")));
        }
        let size = entry.size();
        if stated_digest.is_some() {
            // `bundle.sig`, the last entry.
            let mut bytes = Vec::new();
            entry
                .take(4096)
                .read_to_end(&mut bytes)
                .map_err(|e| invalid(format!("{SIGNATURE} is damaged ({e})")))?;
            let parsed: Signature =
                serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{SIGNATURE} does not parse: {e}")))?;
            signature = Some(parsed);
            continue;
        }
        match (&header, name.as_str()) {
            (None, HEADER) => {
                if size > MAX_HEADER_BYTES {
                    return Err(invalid(format!("{HEADER} is larger than {MAX_HEADER_BYTES} bytes")));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| invalid(format!("cut short or damaged ({e})")))?;
                let digest = blake3::hash(&bytes).to_hex().to_string();
                // The format first: a newer one may have fields this weft
                // does not know.
                let loose: serde_json::Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{HEADER} does not parse: {e}")))?;
                if loose["format"] != FORMAT {
                    return Err(invalid(format!(
                        "format {} (this weft reads format {FORMAT}; the bundle was written by weft {})",
                        loose["format"], loose["weft"]
                    )));
                }
                let parsed: Header =
                    serde_json::from_value(loose).map_err(|e| invalid(format!("{HEADER} does not parse: {e}")))?;
                if let Some(bad) = parsed.blobs.keys().find(|b| !is_digest(b)) {
                    return Err(invalid(format!("{HEADER} lists a blob named {bad:?}, not a digest")));
                }
                header = Some((parsed, digest));
            }
            (None, _) => return Err(invalid(format!("the first entry is {name}, not {HEADER}"))),
            (Some((h, _)), _) if name.starts_with(BLOBS) => {
                let blob = &name[BLOBS.len()..];
                let Some(&expected) = h.blobs.get(blob) else {
                    return Err(invalid(format!("entry {name} is not listed in {HEADER}")));
                };
                if !seen.insert(blob.to_string()) {
                    return Err(invalid(format!("entry {name} appears twice")));
                }
                if size != expected {
                    return Err(invalid(format!("{name} holds {size} bytes, not the {expected} listed")));
                }
                let target = blobs_dir.join(blob);
                let mut out = File::create(&target).map_err(io(format!("creating {}", target.display())))?;
                let mut hasher = blake3::Hasher::new();
                let mut buf = vec![0u8; 256 << 10];
                let mut read = 0u64;
                loop {
                    let n = entry
                        .read(&mut buf)
                        .map_err(|e| invalid(format!("cut short or damaged ({e})")))?;
                    if n == 0 {
                        break;
                    }
                    read += n as u64;
                    hasher.update(&buf[..n]);
                    out.write_all(&buf[..n])
                        .map_err(io(format!("writing {}", target.display())))?;
                }
                if read != expected {
                    return Err(invalid(format!("{name} is cut short")));
                }
                if hasher.finalize().to_hex().as_str() != blob {
                    return Err(invalid(format!("the bytes of {name} do not match their digest")));
                }
            }
            (Some(_), DIGEST) => {
                let mut text = String::new();
                entry
                    .take(128)
                    .read_to_string(&mut text)
                    .map_err(|e| invalid(format!("{DIGEST} is damaged ({e})")))?;
                stated_digest = Some(text.trim().to_string());
            }
            (Some(_), _) => return Err(invalid(format!("unexpected entry {name}"))),
        }
    }
    let Some((header, digest)) = header else {
        return Err(invalid(format!("it is empty (no {HEADER})")));
    };
    match stated_digest {
        None => return Err(invalid(format!("cut short: no {DIGEST} at its end"))),
        Some(stated) if stated != digest => {
            return Err(invalid(format!(
                "{HEADER} does not match the digest the bundle states ({stated}): it was altered"
            )))
        }
        Some(_) => {}
    }
    if let Some(missing) = header.blobs.keys().find(|b| !seen.contains(*b)) {
        return Err(invalid(format!("blob {missing} listed in {HEADER} is missing")));
    }
    let signed_by = match &signature {
        Some(signature) => Some(check_signature(signature, &digest).map_err(invalid)?),
        None => None,
    };
    if let Some(required) = require {
        match &signed_by {
            None => {
                return Err(invalid(format!(
                    "it is not signed, and a signature by {} is required",
                    required.hex()
                )))
            }
            Some(key) if *key != required.hex() => {
                return Err(invalid(format!(
                    "it is signed by {key}, not by the required key {}",
                    required.hex()
                )))
            }
            Some(_) => {}
        }
    }

    let broken = |what: String| invalid(format!("{HEADER}: {what}"));
    let mut manifest = Manifest::parse(&header.manifest, root).map_err(|e| broken(e.to_string()))?;
    let blob_path = |digest: &str| -> Result<PathBuf, BundleError> {
        if !header.blobs.contains_key(digest) {
            return Err(broken(format!("{digest} is pinned but not listed")));
        }
        Ok(blobs_dir.join(digest))
    };
    for step in &mut manifest.steps {
        let digest = header
            .pins
            .components
            .get(&step.name)
            .ok_or_else(|| broken(format!("step '{}' has no component", step.name)))?;
        step.component = blob_path(digest)?;
        step.build = None;
    }
    for model in &mut manifest.models {
        if model.served_by.is_none() {
            continue;
        }
        let digest = header
            .pins
            .servers
            .get(&model.name)
            .ok_or_else(|| broken(format!("model '{}' has no server", model.name)))?;
        model.served_by = Some(blob_path(digest)?);
    }
    for input in &mut manifest.inputs {
        let Some(pin) = header.pins.inputs.get(&input.name) else {
            continue; // not bundled: read beside the bundle, from `root`
        };
        if pin.kind != "file" || !is_plain_name(&pin.file_name) {
            return Err(broken(format!("input '{}' is pinned as {:?}", input.name, pin)));
        }
        let parent = dir.join("inputs").join(&input.name);
        std::fs::create_dir_all(&parent).map_err(io(format!("creating {}", parent.display())))?;
        let target = parent.join(&pin.file_name);
        let source = blob_path(&pin.digest)?;
        if std::fs::hard_link(&source, &target).is_err() {
            std::fs::copy(&source, &target).map_err(io(format!("creating {}", target.display())))?;
        }
        input.path = target;
    }
    Ok((
        Bundle {
            digest,
            header,
            signed_by,
        },
        manifest,
    ))
}

/// Hashes what it reads.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// The digest and size of a file, read in pieces.
fn hash_file(path: &Path) -> Result<(String, u64), BundleError> {
    let file = File::open(path).map_err(io(format!("reading {}", path.display())))?;
    let mut hasher = blake3::Hasher::new();
    hasher
        .update_reader(BufReader::new(file))
        .map_err(io(format!("reading {}", path.display())))?;
    Ok((hasher.finalize().to_hex().to_string(), hasher.count()))
}

/// A BLAKE3 digest as weft writes it: 64 lowercase hex digits.
fn is_digest(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar of `entries` (name, bytes), as a hostile bundle would be made.
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            tar.append_data(&mut header, name, *bytes).unwrap();
        }
        tar.into_inner().unwrap()
    }

    fn header_with_blob(name: &str, size: u64) -> Vec<u8> {
        let header = serde_json::json!({
            "format": FORMAT,
            "weft": "0",
            "pipeline": "p",
            "manifest": "[pipeline]\nname = \"p\"\n",
            "pins": {"components": {}, "inputs": {}},
            "blobs": {name: size},
        });
        serde_json::to_vec(&header).unwrap()
    }

    fn open_bytes(bytes: &[u8]) -> (tempfile::TempDir, Result<(Bundle, Manifest), BundleError>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("b.weft");
        std::fs::write(&file, bytes).unwrap();
        let out = dir.path().join("out");
        let opened = open(&file, &out, dir.path(), None);
        (dir, opened)
    }

    #[test]
    fn a_blob_named_like_a_path_is_refused_before_anything_is_written() {
        let header = header_with_blob("../../escaped", 3);
        let digest = blake3::hash(&header).to_hex().to_string();
        let bytes = tar_of(&[
            (HEADER, &header),
            // (tar itself will not write `..` in an entry's name; the
            // header's list is what names the files)
            ("blobs/escaped", b"abc"),
            (DIGEST, digest.as_bytes()),
        ]);
        let (dir, opened) = open_bytes(&bytes);
        let error = opened.expect_err("refused").to_string();
        assert!(error.contains("not a digest"), "{error}");
        assert!(!dir.path().join("escaped").exists());
        assert!(!dir.path().parent().unwrap().join("escaped").exists());
    }

    #[test]
    fn a_newer_format_is_named_and_entries_out_of_place_are_refused() {
        let mut header: serde_json::Value = serde_json::from_slice(&header_with_blob(&"a".repeat(64), 1)).unwrap();
        header["format"] = (FORMAT + 1).into();
        header["new_field"] = true.into();
        let header = serde_json::to_vec(&header).unwrap();
        let (_dir, opened) = open_bytes(&tar_of(&[(HEADER, &header)]));
        let error = opened.expect_err("refused").to_string();
        assert!(error.contains(&format!("format {}", FORMAT + 1)), "{error}");

        let (_dir, opened) = open_bytes(&tar_of(&[("blobs/x", b"x"), (HEADER, b"{}")]));
        let error = opened.expect_err("refused").to_string();
        assert!(error.contains("the first entry is blobs/x"), "{error}");

        let header = header_with_blob(&"a".repeat(64), 1);
        let digest = blake3::hash(&header).to_hex().to_string();
        let (_dir, opened) = open_bytes(&tar_of(&[
            (HEADER, &header),
            (DIGEST, digest.as_bytes()),
            ("extra", b"x"),
        ]));
        let error = opened.expect_err("refused").to_string();
        assert!(error.contains("entry extra after bundle.digest"), "{error}");
    }
}
