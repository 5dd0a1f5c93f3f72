//! Derives the host-semantics version from the `wit/step` sources: a blake3
//! digest of every file there (names and contents, in name order). It is
//! part of every step cache key, so any change to the step contract makes
//! earlier results cache misses, with no version string to remember to bump.

use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit/step");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    collect(&dir, &dir, &mut files);
    files.sort();
    let mut hasher = blake3::Hasher::new();
    for (name, path) in &files {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        for field in [name.as_bytes(), &bytes] {
            hasher.update(&(field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
    }
    println!("cargo:rustc-env=WEFT_STEP_WIT_DIGEST={}", hasher.finalize().to_hex());
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, std::path::PathBuf)>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(root, &path, out);
        } else {
            let name = path
                .strip_prefix(root)
                .expect("under root")
                .to_string_lossy()
                .replace('\\', "/");
            out.push((name, path));
        }
    }
}
