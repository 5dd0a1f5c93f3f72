//! Writes everything the sandbox could let vary between executions into
//! its output `out`, one `name: value` line each: the wall clock, the
//! monotonic clock before and after a long sleep, 64 bytes of each WASI
//! random source, the iteration order of a std `HashMap` (seeded from WASI
//! randomness), the timestamps, link count and inode of its input, and the
//! order a directory it fills lists in. The tests run it again and again and
//! compare the bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    /// Seconds to sleep between the two monotonic readings.
    #[serde(default)]
    sleep_seconds: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn probe(params: Params) -> weft_sdk::Result<()> {
    let mut out = String::new();
    let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    writeln!(out, "wall-clock-ns: {}", wall.as_nanos())?;
    let before = wasi::clocks::monotonic_clock::now();
    std::thread::sleep(Duration::from_secs(params.sleep_seconds));
    let after = wasi::clocks::monotonic_clock::now();
    writeln!(out, "monotonic-ns: {before} then {after} after sleeping {}s", params.sleep_seconds)?;
    writeln!(out, "random: {}", hex(&wasi::random::random::get_random_bytes(64)))?;
    writeln!(out, "insecure-random: {}", hex(&wasi::random::insecure::get_insecure_random_bytes(64)))?;
    let (a, b) = wasi::random::insecure_seed::insecure_seed();
    writeln!(out, "insecure-seed: {a:016x}{b:016x}")?;
    let map: HashMap<u32, ()> = (0..32).map(|i| (i, ())).collect();
    let order: Vec<String> = map.keys().map(|k| k.to_string()).collect();
    writeln!(out, "hashmap-order: {}", order.join(","))?;
    if weft_sdk::input_path("in").exists() {
        let modified = std::fs::metadata(weft_sdk::input_path("in"))?.modified()?;
        let modified = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        // Link count and inode (metadata hash) through WASI itself.
        let inputs = wasi::filesystem::preopens::get_directories()
            .into_iter()
            .find(|(_, path)| path == "/inputs")
            .map(|(dir, _)| dir)
            .ok_or_else(|| weft_sdk::Error::msg("no /inputs preopen"))?;
        let flags = wasi::filesystem::types::PathFlags::empty();
        let stat = inputs
            .stat_at(flags, "in")
            .map_err(|e| weft_sdk::Error::msg(format!("stat /inputs/in: {e:?}")))?;
        let hash = inputs
            .metadata_hash_at(flags, "in")
            .map_err(|e| weft_sdk::Error::msg(format!("metadata hash of /inputs/in: {e:?}")))?;
        writeln!(
            out,
            "input: modified {}s, links {}, metadata hash {:x}{:x}",
            modified.as_secs(),
            stat.link_count,
            hash.upper,
            hash.lower
        )?;
    }
    std::fs::create_dir_all("/tmp/listing")?;
    for name in ["zeta", "alpha", "mu", "beta", "omega", "kappa"] {
        std::fs::write(format!("/tmp/listing/{name}"), name)?;
    }
    let mut listed = Vec::new();
    for entry in std::fs::read_dir("/tmp/listing")? {
        listed.push(entry?.file_name().to_string_lossy().into_owned());
    }
    writeln!(out, "listing: {}", listed.join(","))?;
    let created = std::fs::metadata("/tmp/listing/zeta")?.modified()?;
    writeln!(
        out,
        "created-file-modified-ns: {}",
        created.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
    )?;
    weft_sdk::write_output("out", out)
}

weft_sdk::export_step!(probe);
