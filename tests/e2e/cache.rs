//! Cache soundness: hits need every output's bytes; opting out works; a
//! tampered compiled component is never loaded.

use crate::harness::*;

fn chain() -> String {
    format!(
        "[pipeline]\nname = \"c\"\n[inputs]\nraw = {{ path = \"raw.txt\" }}\n\
         [steps.a]\ncomponent = {e}\ninputs = {{ in = \"inputs.raw\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"a\" }}\n\
         [steps.b]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\nparams = {{ prefix = \"b\" }}\n\
         [steps.nocache]\ncomponent = {e}\ninputs = {{ in = \"a.out\" }}\noutputs = [\"out\"]\ncache = false\n",
        e = toml_path(&guest("echo"))
    )
}

#[test]
fn a_hit_whose_bytes_are_gone_is_a_miss() {
    let project = Project::new(&chain());
    project.write("raw.txt", "x");
    assert_eq!(run_json(&project.weft(&["run", "--json"]), 0)["executed"], 3);
    let s = statuses(&run_json(&project.weft(&["run", "--json"]), 0));
    assert_eq!(
        (s["a"].as_str(), s["b"].as_str(), s["nocache"].as_str()),
        ("cached", "cached", "succeeded")
    );

    // Delete the bytes of b's output: b runs again, a is still a hit.
    let b_out = project.weft(&["artifacts", "show", "c/b.out", "--json"]);
    let b_out: serde_json::Value = serde_json::from_slice(&b_out.stdout).unwrap();
    let digest = b_out["artifact"]["digest"].as_str().unwrap();
    std::fs::remove_file(project.state().join("artifacts/blobs").join(&digest[..2]).join(digest)).unwrap();
    let s = statuses(&run_json(&project.weft(&["run", "--json"]), 0));
    assert_eq!((s["a"].as_str(), s["b"].as_str()), ("cached", "succeeded"));
    assert_eq!(stdout(&project.weft(&["artifacts", "get", "c/b.out"])), "bax");

    // Changing the external data re-executes everything that depends on it.
    project.write("raw.txt", "y");
    assert_eq!(run_json(&project.weft(&["run", "--json"]), 0)["executed"], 3);
    assert_eq!(stdout(&project.weft(&["artifacts", "get", "c/b.out"])), "bay");
}

#[test]
fn a_tampered_compiled_component_is_recompiled_not_loaded() {
    let project = Project::new(&chain());
    project.write("raw.txt", "x");
    run_json(&project.weft(&["run", "--json"]), 0);
    let compiled = project.state().join("cache/compiled");
    let entries: Vec<_> = std::fs::read_dir(&compiled)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "one compiled component for the shared echo.wasm");
    // Flip bytes in the middle of the machine code.
    let mut bytes = std::fs::read(&entries[0]).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 64] {
        *b ^= 0xff;
    }
    std::fs::write(&entries[0], &bytes).unwrap();
    let out = project.weft(&["run", "--json", "--no-cache"]);
    let outcome = run_json(&out, 0);
    assert_eq!(outcome["executed"], 3);
    assert!(
        stderr(&out).contains("compiled its component"),
        "the component was recompiled: {}",
        stderr(&out)
    );
    assert_ne!(
        std::fs::read(&entries[0]).unwrap(),
        bytes,
        "the tampered entry was replaced"
    );
}
