//! A Rust step on weft's CSV tables (the SDK's `csv` feature): reads input
//! `table`, appends column `name` = column `from` + `add`, writes `table`.

use serde::Deserialize;

#[derive(Deserialize)]
struct Params {
    from: String,
    name: String,
    #[serde(default)]
    add: f64,
}

fn add_column(params: Params) -> weft_sdk::Result<()> {
    let mut table = weft_sdk::read_csv("table")?;
    let values = table.numbers(&params.from)?;
    table.push_column(&params.name, values.iter().map(|v| v + params.add))?;
    weft_sdk::write_csv("table", &table)
}

weft_sdk::export_step!(add_column);
