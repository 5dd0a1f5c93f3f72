//! Bundles: `weft bundle` writes the iris pipeline into one file, and
//! `weft run FILE.weft` runs it in an empty directory with no toolchain on
//! `PATH` and no network, with the bytes of the run from the sources; a
//! bundle altered or cut short is refused before anything runs; a bundle
//! of library steps (`uses = "ml/…"`) runs where the step library was
//! never written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use weft_store::Store;

use crate::harness::*;
use crate::slurm::iris_project;
use crate::workers::outcome;

/// `weft ARGS` in `dir` with nothing of this machine's environment: `PATH`
/// is an empty directory (no cargo, python or node), `HOME` is `dir`, and
/// under `unshare -n` the process has no network but a loopback that is
/// down. `None` (and a skip) where network namespaces are not allowed.
fn isolated(dir: &Path, args: &[&str]) -> Option<Output> {
    isolated_with(&weft_bin(), dir, args)
}

/// [`isolated`], with the `weft` executable `bin`.
pub(crate) fn isolated_with(bin: &Path, dir: &Path, args: &[&str]) -> Option<Output> {
    let probe = Command::new("unshare").args(["-n", "true"]).output();
    if !probe.map(|o| o.status.success()).unwrap_or(false) {
        skip("`unshare -n` is not permitted here (needs root or user namespaces)");
        return None;
    }
    // Found on this process's PATH: the child's has nothing on it.
    let unshare = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("unshare"))
        .find(|p| p.is_file())
        .expect("unshare ran above");
    let empty_path = dir.join(".no-tools");
    std::fs::create_dir_all(&empty_path).unwrap();
    let out = Command::new(unshare)
        .arg("-n")
        .arg(bin)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("HOME", dir)
        .env("PATH", &empty_path)
        .output()
        .unwrap();
    Some(out)
}

pub(crate) async fn open(dir: &Path) -> Store {
    Store::open(&format!("sqlite://{}", dir.join(".weft/weft.db").display()))
        .await
        .unwrap()
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut changed = bytes.to_vec();
    changed[at] ^= 0x20;
    changed
}

/// The iris project, run from its sources, and its bundle with the data
/// (`<dir>/iris.weft`, the directory kept alive by the returned guard).
pub(crate) fn iris_bundle() -> (Project, tempfile::TempDir, PathBuf) {
    let source = iris_project();
    assert_eq!(run_json(&source.weft(&["run", "--json"]), 0)["executed"], 4);
    let bundles = tempfile::tempdir().unwrap();
    let file = bundles.path().join("iris.weft");
    let out = source.weft(&["bundle", "-o", file.to_str().unwrap(), "--with-data", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["pipeline"], "iris");
    assert_eq!(written["components"].as_object().unwrap().len(), 4, "{written}");
    assert_eq!(written["inputs"].as_object().unwrap().len(), 1, "{written}");
    (source, bundles, file)
}

/// `bin run FILE` twice in `empty`, [isolated](isolated_with): first the
/// bytes of the run from the sources, then all cache hits. `None` (a
/// skip) where the isolation is not allowed.
pub(crate) async fn runs_as_from_the_sources(bin: &Path, source: &Project, file: &Path, empty: &Path) -> Option<()> {
    let file_arg = file.to_str().unwrap();
    let first = isolated_with(bin, empty, &["run", file_arg, "--json"])?;
    let first = run_json(&first, 0);
    assert_eq!(
        (first["executed"].as_u64(), first["cached"].as_u64()),
        (Some(4), Some(0))
    );
    let expected = outcome(&open(source.path()).await).await;
    assert!(expected.values().all(|(s, o)| s == "succeeded" && !o.is_empty()));
    assert_eq!(outcome(&open(empty).await).await, expected);
    let again = run_json(&isolated_with(bin, empty, &["run", file_arg, "--json"]).unwrap(), 0);
    assert_eq!(
        (again["executed"].as_u64(), again["cached"].as_u64()),
        (Some(0), Some(4))
    );
    Some(())
}

#[tokio::test]
async fn a_bundle_runs_in_an_empty_directory_without_toolchains_or_network_and_tampering_is_refused() {
    let (source, bundles, file) = iris_bundle();
    let file_arg = file.to_str().unwrap();

    // An empty directory, no toolchain, no network: the same bytes; again,
    // all cache hits.
    let empty = tempfile::tempdir().unwrap();
    if runs_as_from_the_sources(&weft_bin(), &source, &file, empty.path())
        .await
        .is_none()
    {
        return;
    }
    let opened = std::fs::read_dir(empty.path().join(".weft/bundles")).unwrap().count();
    assert_eq!(opened, 0, "a bundle's files go when its run ends");

    // A param changed as usual runs what it changes.
    let changed = isolated(empty.path(), &["run", file_arg, "--json", "-p", "train.epochs=20"]).unwrap();
    let changed = run_json(&changed, 0);
    assert_eq!(
        statuses(&changed).into_iter().filter(|(_, s)| s == "succeeded").count(),
        2,
        "train and evaluate run again: {changed}"
    );
    assert_eq!(changed["cached"], 2, "{changed}");

    // Its runs verify there too, from what the runs archived.
    let verified = isolated(empty.path(), &["verify", "latest"]).unwrap();
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    assert!(
        stderr(&verified).contains("4 matched, 0 mismatched"),
        "{}",
        stderr(&verified)
    );

    // Altered or cut short: refused, and nothing is recorded.
    let bytes = std::fs::read(&file).unwrap();
    let component = std::fs::read(source.path().join("target/wasm32-wasip2/release/train.wasm")).unwrap();
    let in_blob = find(&bytes, &component[..64]).expect("the component is in the bundle") + 4096;
    let in_header = find(&bytes, b"\"pipeline\": \"iris\"").expect("the header names the pipeline") + 14;
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "a byte of a component",
            flip(&bytes, in_blob),
            "do not match their digest",
        ),
        ("a byte of the header", flip(&bytes, in_header), "it was altered"),
        ("cut in half", bytes[..bytes.len() / 2].to_vec(), "cut short"),
        ("not a bundle", b"weft".repeat(300), "not a valid weft bundle"),
    ];
    for (what, content, says) in cases {
        let bad = bundles.path().join("bad.weft");
        std::fs::write(&bad, content).unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let out = isolated(fresh.path(), &["run", bad.to_str().unwrap()]).unwrap();
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not a valid weft bundle"),
            "{what}: {}",
            stderr(&out)
        );
        assert!(stderr(&out).contains(says), "{what}: {}", stderr(&out));
        assert!(
            !fresh.path().join(".weft/weft.db").exists(),
            "{what}: nothing is recorded"
        );
    }
}

#[test]
fn a_bundle_without_its_data_reads_the_inputs_beside_it_and_says_when_they_are_missing() {
    let source = iris_project();
    let out = source.weft(&["bundle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file: PathBuf = source.path().join("iris.weft");
    assert!(file.is_file(), "the default name is the pipeline's: {}", stderr(&out));
    let file_arg = file.to_str().unwrap();

    let empty = tempfile::tempdir().unwrap();
    let Some(missing) = isolated(empty.path(), &["run", file_arg]) else {
        return;
    };
    assert_eq!(missing.status.code(), Some(2), "{}", stderr(&missing));
    assert!(stderr(&missing).contains("inputs.iris"), "{}", stderr(&missing));

    std::fs::create_dir(empty.path().join("data")).unwrap();
    std::fs::copy(source.path().join("data/iris.csv"), empty.path().join("data/iris.csv")).unwrap();
    let ran = run_json(&isolated(empty.path(), &["run", file_arg, "--json"]).unwrap(), 0);
    assert_eq!(ran["executed"], 4, "{ran}");

    // A bundle is not a manifest: both at once is a mistake.
    let both = source.weft(&["--manifest", "weft.toml", "run", file_arg]);
    assert_eq!(both.status.code(), Some(2), "{}", stderr(&both));
    assert!(stderr(&both).contains("not both"), "{}", stderr(&both));
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `openssl genpkey` and `openssl pkey -pubout`: a key pair in `dir`.
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let made = Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&key)
        .status()
        .expect("openssl (tests/run.sh installs it)");
    assert!(made.success());
    let made = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&key)
        .arg("-out")
        .arg(&public)
        .status()
        .unwrap();
    assert!(made.success());
    (key, public)
}

#[test]
fn a_signed_bundle_runs_only_under_the_key_it_requires() {
    let source = iris_project();
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(keys.path(), "team");
    let (_, other) = key_pair(keys.path(), "other");
    let signed = keys.path().join("signed.weft");
    let unsigned = keys.path().join("unsigned.weft");
    let out = source.weft(&[
        "bundle",
        "--with-data",
        "--json",
        "-o",
        signed.to_str().unwrap(),
        "--sign",
        key.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let signer = written["signed_by"].as_str().expect("signed").to_string();
    let out = source.weft(&["bundle", "--with-data", "-o", unsigned.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let Some(ran) = isolated(
        dir.path(),
        &[
            "run",
            signed.to_str().unwrap(),
            "--require-signature",
            public.to_str().unwrap(),
            "--json",
        ],
    ) else {
        return;
    };
    assert_eq!(run_json(&ran, 0)["executed"], 4);
    assert!(
        stderr(&ran).contains(&format!("signed by {signer} (required)")),
        "{}",
        stderr(&ran)
    );

    // Its signature flipped, unsigned, or signed by another key: refused.
    let bytes = std::fs::read(&signed).unwrap();
    let at = find(&bytes, b"\"signature\": \"").unwrap() + 20;
    let forged = keys.path().join("forged.weft");
    let mut changed = bytes.clone();
    changed[at] = if changed[at] == b'a' { b'b' } else { b'a' };
    std::fs::write(&forged, changed).unwrap();
    for (file, public, says) in [
        (&forged, &public, "does not verify"),
        (&forged, &other, "does not verify"),
        (&unsigned, &public, "it is not signed"),
        (&signed, &other, "not by the required key"),
    ] {
        let fresh = tempfile::tempdir().unwrap();
        let out = isolated(
            fresh.path(),
            &[
                "run",
                file.to_str().unwrap(),
                "--require-signature",
                public.to_str().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains(says), "{says}: {}", stderr(&out));
        assert!(!fresh.path().join(".weft/weft.db").exists());
    }
    // A key that is not one says how to make one.
    let out = source.weft(&["bundle", "--sign", public.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("openssl genpkey"), "{}", stderr(&out));
}

#[tokio::test]
async fn a_bundle_of_library_steps_runs_where_the_library_was_never_written() {
    let source = Project::new(
        "[pipeline]\nname = \"library\"\n[inputs]\ndata = { path = \"data.csv\", media_type = \"text/csv\" }\n\
         [steps.read]\nuses = \"ml/read-csv\"\ninputs = { raw = \"inputs.data\" }\n\
         [steps.split]\nuses = \"ml/split\"\ninputs = { table = \"read.table\" }\nparams = { seed = 5 }\n\
         [steps.forest]\nuses = \"ml/random-forest\"\ninputs = { train = \"split.train\" }\nparams = { n_trees = 10, seed = 5 }\n\
         [steps.evaluate]\nuses = \"ml/evaluate\"\ninputs = { model = \"forest.model\", test = \"split.test\" }\n",
    );
    std::fs::copy(
        repo_root().join("examples/breast-cancer/data/breast_cancer.csv"),
        source.path().join("data.csv"),
    )
    .unwrap();
    assert_eq!(run_json(&source.weft(&["run", "--json"]), 0)["executed"], 4);
    let bundles = tempfile::tempdir().unwrap();
    let file = bundles.path().join("library.weft");
    let file_arg = file.to_str().unwrap();
    let out = source.weft(&["bundle", "-o", file_arg, "--with-data", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(written["components"].as_object().unwrap().len(), 4, "{written}");

    // A fresh HOME: no library directory, no toolchain, no network.
    let empty = tempfile::tempdir().unwrap();
    let Some(run) = isolated(empty.path(), &["run", file_arg, "--json"]) else {
        return;
    };
    assert_eq!(run_json(&run, 0)["executed"], 4);
    let expected = outcome(&open(source.path()).await).await;
    assert!(expected.values().all(|(s, o)| s == "succeeded" && !o.is_empty()));
    assert_eq!(outcome(&open(empty.path()).await).await, expected);
}
