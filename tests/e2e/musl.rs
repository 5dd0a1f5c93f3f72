//! The static musl build of `weft` (the README's "One static binary"):
//! `tests/run.sh` builds it (`--profile musl-check --target
//! x86_64-unknown-linux-musl`) and runs this test with `--ignored`, naming
//! the executable in `WEFT_MUSL_BIN`. It has no ELF interpreter (it needs
//! no C library on the machine), and it runs the iris bundle in an empty
//! directory with no toolchain and no network, with the bytes of the run
//! that the usual build made from the sources.

use std::path::Path;

use crate::bundle::{iris_bundle, isolated_with, runs_as_from_the_sources};
use crate::harness::*;

/// Whether the ELF executable at `path` names a program interpreter
/// (`PT_INTERP`): a dynamically linked one does.
fn has_interpreter(path: &Path) -> bool {
    let elf = std::fs::read(path).unwrap();
    assert_eq!(&elf[..4], b"\x7fELF", "{} is not an ELF file", path.display());
    assert_eq!(elf[4], 2, "a 64-bit ELF file");
    let u16_at = |at: usize| u16::from_le_bytes([elf[at], elf[at + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).any(|i| {
        let at = phoff + i * size;
        u32::from_le_bytes(elf[at..at + 4].try_into().unwrap()) == 3
    })
}

#[tokio::test]
#[ignore = "needs the static musl build: tests/run.sh builds it and runs this with --ignored"]
async fn the_static_musl_binary_runs_the_iris_bundle_with_the_bytes_of_the_usual_build() {
    let Some(musl) = std::env::var_os("WEFT_MUSL_BIN") else {
        skip("WEFT_MUSL_BIN is not set (tests/run.sh builds the musl binary and sets it)");
        return;
    };
    let musl = Path::new(&musl);
    assert!(!has_interpreter(musl), "{} is statically linked", musl.display());
    assert!(has_interpreter(&weft_bin()), "the check tells the two apart");

    let (source, _bundles, file) = iris_bundle();
    let empty = tempfile::tempdir().unwrap();
    if runs_as_from_the_sources(musl, &source, &file, empty.path())
        .await
        .is_none()
    {
        return;
    }
    let verified = isolated_with(musl, empty.path(), &["verify", "latest"]).unwrap();
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    assert!(
        stderr(&verified).contains("4 matched, 0 mismatched"),
        "{}",
        stderr(&verified)
    );
}
