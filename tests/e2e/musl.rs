//! The static musl build of `weft` (the README's "One static binary"):
//! `tests/run.sh` builds it (`--profile musl-check --target
//! x86_64-unknown-linux-musl`) and runs this test with `--ignored`, naming
//! the executable in `WEFT_MUSL_BIN`. It has no ELF interpreter (it needs
//! no C library on the machine), and it runs the iris bundle in an empty
//! directory with no toolchain and no network, with the bytes of the run
//! that the usual build made from the sources.

use std::path::Path;

use crate::bundle::{isolated_with, open};
use crate::harness::*;
use crate::slurm::iris_project;
use crate::workers::outcome;

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

    let source = iris_project();
    assert_eq!(run_json(&source.weft(&["run", "--json"]), 0)["executed"], 4);
    let bundles = tempfile::tempdir().unwrap();
    let file = bundles.path().join("iris.weft");
    let file_arg = file.to_str().unwrap();
    let out = source.weft(&["bundle", "-o", file_arg, "--with-data"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let empty = tempfile::tempdir().unwrap();
    let Some(first) = isolated_with(musl, empty.path(), &["run", file_arg, "--json"]) else {
        return;
    };
    let first = run_json(&first, 0);
    assert_eq!(
        (first["executed"].as_u64(), first["cached"].as_u64()),
        (Some(4), Some(0))
    );
    let expected = outcome(&open(source.path()).await).await;
    assert!(expected.values().all(|(s, o)| s == "succeeded" && !o.is_empty()));
    assert_eq!(outcome(&open(empty.path()).await).await, expected);

    let again = isolated_with(musl, empty.path(), &["run", file_arg, "--json"]).unwrap();
    let again = run_json(&again, 0);
    assert_eq!(
        (again["executed"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );
    let verified = isolated_with(musl, empty.path(), &["verify", "latest"]).unwrap();
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    assert!(
        stderr(&verified).contains("4 matched, 0 mismatched"),
        "{}",
        stderr(&verified)
    );
}
