//! A trivial step: writes `prefix` followed by its optional input `in` to
//! output `out`, and logs the length. Used to measure per-step overhead and
//! to exercise caching.

use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    prefix: String,
}

fn echo(params: Params) -> weft_sdk::Result<()> {
    let mut out = params.prefix.into_bytes();
    if weft_sdk::input_path("in").exists() {
        out.extend(weft_sdk::read_input("in")?);
    }
    weft_sdk::log_metric("bytes", out.len() as f64);
    weft_sdk::write_output("out", out)
}

weft_sdk::export_step!(echo);
