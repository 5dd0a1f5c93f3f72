//! A step that attacks its sandbox, one attack per run (param `attack`).
//!
//! When an attack is stopped, the step returns the error it got, so the
//! tests can check both that it failed and why. When an attack gets
//! through, the step *succeeds* and writes what it obtained to `out`: a test
//! that sees success has found a hole.

use std::io::Write;

use serde::Deserialize;
use weft_sdk::{bail, Error};

#[derive(Deserialize)]
struct Params {
    attack: String,
    #[serde(default)]
    steps: u64,
}

fn hostile(params: Params) -> weft_sdk::Result<()> {
    match params.attack.as_str() {
        "none" => {
            weft_sdk::log_metric("ok", 1.0);
            weft_sdk::write_output("out", "harmless")
        }
        "read-host-file" => stolen(std::fs::read_to_string("/etc/passwd"), "read /etc/passwd"),
        "dotdot" => stolen(
            std::fs::read_to_string("/inputs/../../../../etc/passwd"),
            "read /inputs/../../../../etc/passwd",
        ),
        "dotdot-relative" => stolen(
            std::fs::read_dir("/outputs/..").map(|d| format!("{} entries", d.count())),
            "list /outputs/..",
        ),
        "symlink" => {
            // Plant a symlink that points out of the sandbox, then follow it.
            let link = "/outputs/escape";
            plant_symlink("../../../../../../etc/passwd", "escape")?;
            stolen(std::fs::read_to_string(link), "read through the planted symlink")
        }
        "symlink-output" => {
            // Make the declared output a symlink (to a file in /outputs, the
            // only target the sandbox lets it create).
            weft_sdk::write_output("real", "x")?;
            plant_symlink("real", "out")
        }
        "socket" => stolen(
            std::net::TcpStream::connect("127.0.0.1:80").map(|_| "connected".to_string()),
            "connect to 127.0.0.1:80",
        ),
        "env" => match std::env::var("PATH").or_else(|_| std::env::var("HOME")) {
            Ok(value) => weft_sdk::write_output("out", value),
            Err(e) => bail!("read env var PATH: {e}"),
        },
        // Not an attack: a step granted TOKEN (a secret) prints it, which
        // weft must mask in its logs, and writes it reversed, which shows
        // it arrived without writing it.
        "granted-env" => match std::env::var("TOKEN") {
            Ok(token) => {
                println!("the token is {token}");
                eprintln!("token={token}");
                let reversed: String = token.chars().rev().collect();
                weft_sdk::write_output("out", format!("{reversed} {}", token.len()))
            }
            Err(e) => bail!("read env var TOKEN: {e}"),
        },
        "list-env" => {
            let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
            if vars.is_empty() {
                bail!("the environment is empty");
            }
            weft_sdk::write_output("out", vars.join(","))
        }
        "write-input" => stolen(
            std::fs::write("/inputs/in", "overwritten").map(|_| "wrote".to_string()),
            "write /inputs/in",
        ),
        "create-in-inputs" => stolen(
            std::fs::write("/inputs/new-file", "planted").map(|_| "wrote".to_string()),
            "create /inputs/new-file",
        ),
        "loop" => {
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "sleep" => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            weft_sdk::write_output("out", "woke up")
        }
        // Under virtual time one sleep passes at once; sleeping forever
        // must still meet the timeout.
        "sleep-forever" => loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        },
        "nap" => {
            // Not an attack: sleeps `steps` milliseconds, then succeeds.
            std::thread::sleep(std::time::Duration::from_millis(params.steps));
            weft_sdk::write_output("out", "rested")
        }
        "spin" => {
            // Not an attack: `steps` iterations of busy work, then
            // succeeds; real time passes where virtual time would not.
            let mut x: u64 = 0;
            for i in 0..params.steps {
                x = std::hint::black_box(x.wrapping_add(i));
            }
            weft_sdk::write_output("out", format!("spun {} times", params.steps))
        }
        "membomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 16 * 1024 * 1024]);
                std::hint::black_box(&hoard);
            }
        }
        "panic" => panic!("the model exploded at row {}", 42),
        "fail" => Err(Error::msg("bad data: column 'x' is empty")),
        "invalid-params" => Err(Error::invalid_params("learning_rate must be positive")),
        "recursion" => {
            #[allow(unconditional_recursion)]
            fn down(n: u64) -> u64 {
                std::hint::black_box(down(std::hint::black_box(n + 1)) + 1)
            }
            weft_sdk::write_output("out", down(0).to_string())
        }
        "flood-stdout" => {
            let mut out = std::io::stdout();
            let line = [b'x'; 1023];
            for _ in 0..(params.steps.max(1)) {
                out.write_all(&line)?;
                out.write_all(b"\n")?;
            }
            weft_sdk::write_output("out", "flooded")
        }
        "no-output" => Ok(()),
        // A second name for an input under /outputs: a way to write into
        // the content-addressed store, if it worked.
        "hardlink" => {
            std::fs::hard_link("/inputs/in", "/outputs/out").map_err(|e| Error::msg(format!("hard link /inputs/in -> /outputs/out: {e}")))?;
            let mut f = std::fs::OpenOptions::new().append(true).open("/outputs/out")?;
            f.write_all(b" poisoned")?;
            Ok(())
        }
        // An output over the step's max_output.
        "big-output" => weft_sdk::write_output("out", vec![b'x'; params.steps.max(1) as usize]),
        // More files than an output directory may hold.
        "many-outputs" => {
            std::fs::create_dir("/outputs/out")?;
            for i in 0..params.steps {
                std::fs::write(format!("/outputs/out/{i}"), b"")?;
            }
            Ok(())
        }
        // Open files until the host says no.
        "resource-table" => {
            let mut held = Vec::new();
            for i in 0..1_000_000u64 {
                match std::fs::File::open("/inputs/in") {
                    Ok(f) => held.push(f),
                    Err(e) => bail!("opened {i} files, then: {e}"),
                }
            }
            weft_sdk::write_output("out", format!("held {} files", held.len()))
        }
        // Fill /tmp with `steps` MiB.
        "fill-tmp" => {
            let chunk = vec![b'x'; 1 << 20];
            let mut f = std::fs::File::create("/tmp/fill")?;
            for i in 0..params.steps {
                f.write_all(&chunk).map_err(|e| Error::msg(format!("wrote {i} MiB to /tmp, then: {e}")))?;
            }
            weft_sdk::write_output("out", format!("wrote {} MiB to /tmp", params.steps))
        }
        "exit" => std::process::exit(3),
        // Class: what the host keeps for the step. Tags of 6,000 bytes
        // until the host says no (the tracker's total, or the memory limit
        // the host charges them to).
        "tracker-bytes" => {
            let value = "t".repeat(6000);
            for i in 0..1_000_000u64 {
                weft_sdk::set_tag(&format!("tag.{i}"), &value);
            }
            weft_sdk::write_output("out", "all kept")
        }
        // Many small metrics with the longest keys allowed.
        "tracker-calls" => {
            let key = "k".repeat(240);
            for i in 0..10_000_000u64 {
                weft_sdk::log_metric(&format!("{key}{i}"), i as f64);
            }
            weft_sdk::write_output("out", "all kept")
        }
        // An error message of `steps` MiB, with terminal escapes.
        "error-flood" => {
            let mut message = String::from("\u{1b}[2J\u{1b}[31mboom ");
            message.push_str(&"x".repeat((params.steps.max(1) << 20) as usize));
            Err(Error::msg(message))
        }
        // Class: trees deeper than any path. `steps` levels of
        // directories in /tmp (a file at every 1,000th), then the output.
        "deep-tmp" => {
            deep_tree("/tmp", params.steps)?;
            weft_sdk::write_output("out", format!("{} levels in /tmp", params.steps))
        }
        // The same tree as the declared output directory.
        "deep-output" => deep_tree("/outputs/out", params.steps),
        // A tracker key that would rewrite the terminal showing its error.
        "odd-key" => {
            weft_sdk::log_metric("loss\n\u{1b}[2Jhidden", 1.0);
            weft_sdk::write_output("out", "kept")
        }
        // Undeclared files in /outputs, `steps` of them.
        "undeclared-flood" => {
            for i in 0..params.steps {
                std::fs::write(format!("/outputs/stray-{i}"), b"")?;
            }
            weft_sdk::write_output("out", "and one declared")
        }
        other => Err(Error::invalid_params(format!("unknown attack '{other}'"))),
    }
}

/// Builds `levels` nested directories under `root` by relative steps (a
/// path would pass PATH_MAX long before), a 1-byte file every 1,000 levels.
fn deep_tree(root: &str, levels: u64) -> weft_sdk::Result<()> {
    std::fs::create_dir_all(root)?;
    let preopen = if root.starts_with("/tmp") { "/tmp" } else { "/outputs" };
    let mut dir = wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == preopen)
        .map(|(dir, _)| dir)
        .ok_or_else(|| Error::msg(format!("no {preopen} preopen")))?;
    let relative = root.strip_prefix(preopen).unwrap_or("").trim_start_matches('/');
    use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let open = |dir: &wasi::filesystem::types::Descriptor, name: &str| {
        dir.open_at(PathFlags::empty(), name, OpenFlags::DIRECTORY, DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY)
            .map_err(|e| Error::msg(format!("open {name}: {e:?}")))
    };
    if !relative.is_empty() {
        dir = open(&dir, relative)?;
    }
    for i in 0..levels {
        dir.create_directory_at("d").map_err(|e| Error::msg(format!("level {i}: {e:?}")))?;
        if i % 1000 == 0 {
            let file = dir
                .open_at(PathFlags::empty(), "f", OpenFlags::CREATE, DescriptorFlags::WRITE)
                .map_err(|e| Error::msg(format!("file at level {i}: {e:?}")))?;
            file.write(b"x", 0).map_err(|e| Error::msg(format!("write at level {i}: {e:?}")))?;
        }
        dir = open(&dir, "d")?;
    }
    Ok(())
}

/// Success of an attack is a breach: report what leaked; failure is the
/// sandbox working: report the error.
fn stolen(result: std::io::Result<String>, what: &str) -> weft_sdk::Result<()> {
    match result {
        Ok(loot) => weft_sdk::write_output("out", loot),
        Err(e) => bail!("{what}: {e}"),
    }
}

weft_sdk::export_step!(hostile);

/// Creates a symlink in `/outputs` through the raw WASI call (std has no
/// stable API for it on WASI).
fn plant_symlink(target: &str, name: &str) -> weft_sdk::Result<()> {
    let outputs = wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find(|(_, path)| path == "/outputs")
        .map(|(dir, _)| dir)
        .ok_or_else(|| Error::msg("no /outputs preopen"))?;
    outputs
        .symlink_at(target, name)
        .map_err(|e| Error::msg(format!("create symlink {name} -> {target}: {e:?}")))
}
