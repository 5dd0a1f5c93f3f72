//! ml/one-hot: replaces each column named in `columns` (categories coded
//! as numbers) by one indicator column per distinct value, `name=value`
//! (1 or 0). Input `table`, output `table`. Encode before the split, so
//! that training and test rows have the same columns. (ml/read-csv
//! one-hot encodes columns of text by itself.)

use ml_common::Table;
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    columns: Vec<String>,
}

fn one_hot(params: Params) -> weft_sdk::Result<()> {
    if params.columns.is_empty() {
        return Err(Error::invalid_params("columns names at least one column to encode"));
    }
    let mut table = Table::read("table")?;
    let before = table.columns.len();
    for column in &params.columns {
        table = table.one_hot(column)?;
    }
    weft_sdk::log_metric("columns", table.columns.len() as f64);
    println!(
        "one-hot encoded {}: {before} columns became {}",
        params.columns.join(", "),
        table.columns.len()
    );
    Ok(table.write("table")?)
}

weft_sdk::export_step!(one_hot);
