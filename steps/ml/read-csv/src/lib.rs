//! ml/read-csv: reads a CSV file into weft's table (see `ml-common`).
//!
//! Input `raw`; output `table`. Params:
//! - `target`: the label column's name in the file, or its 0-based index
//!   (default: the last column); it is called `target` in the table.
//! - `header`: `"auto"` (default), `"names"` (the first line names the
//!   columns), `"none"` (data from the first line) or `"sklearn"` (a first
//!   line `n_samples,n_features,class names…`, as scikit-learn's bundled
//!   data sets have). Unnamed columns become `f0`, `f1`, … .
//! - `columns`: names for the file's columns, in order (instead of the
//!   header's, or of `f0`, `f1`, …); `target` may then use one of them.
//!
//! A label that is not a number becomes a class number (its rank among the
//! distinct labels); the names are logged as the metadata `classes`. A
//! feature column holding text (in most of its rows) is a category: it
//! is one-hot encoded, one
//! `name=value` column (1 or 0) per distinct value, and the encoded columns
//! are logged as the metadata `one_hot`.

use ml_common::TargetColumn;
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    target: Option<TargetColumn>,
    #[serde(default = "auto")]
    header: String,
    #[serde(default)]
    columns: Option<Vec<String>>,
}

fn auto() -> String {
    "auto".into()
}

fn read_csv(params: Params) -> weft_sdk::Result<()> {
    let text = weft_sdk::read_input_string("raw")?;
    let mut records = Vec::new();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for (i, record) in csv.records().enumerate() {
        let record = record.map_err(|e| Error::msg(format!("line {}: {e}", i + 1)))?;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        records.push(record.iter().map(|c| c.trim().to_string()).collect::<Vec<_>>());
    }
    if records.is_empty() {
        return Err(Error::msg("the file holds no rows"));
    }
    let header = match params.header.as_str() {
        "auto" => ml_common::detect_header(&records).as_str(),
        h @ ("names" | "none" | "sklearn") => h,
        other => {
            return Err(Error::invalid_params(format!(
                "header is \"auto\", \"names\", \"none\" or \"sklearn\", not {other:?}"
            )))
        }
    };
    let (mut names, data, class_names) = match header {
        "names" => (records[0].clone(), &records[1..], None),
        "sklearn" => {
            let first = &records[0];
            (
                Vec::new(),
                &records[1..],
                (first.len() > 2).then(|| first[2..].to_vec()),
            )
        }
        _ => (Vec::new(), &records[..], None),
    };
    let width = data.first().map(|r| r.len()).unwrap_or(names.len());
    if let Some(columns) = params.columns {
        if columns.len() != width {
            return Err(Error::invalid_params(format!(
                "columns names {} columns; the file has {width}",
                columns.len()
            )));
        }
        names = columns;
    }
    if names.is_empty() {
        names = (0..width).map(|j| format!("f{j}")).collect();
    }
    let encoded = ml_common::encode(&names, data, params.target.as_ref())?;
    if encoded.classes.is_empty() && encoded.target == width - 1 {
        if let Some(names) = class_names {
            // scikit-learn's class names name the last column's values.
            weft_sdk::log_metadata("classes", &names)?;
        }
    }
    Ok(encoded.write(&format!("{header} header"))?)
}

weft_sdk::export_step!(read_csv);
