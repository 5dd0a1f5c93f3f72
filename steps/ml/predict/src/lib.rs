//! ml/predict: applies `model` (from an ml/* training step) to `table`,
//! whose columns the model's features are found in by name (a label
//! column, if any, is ignored); writes `predictions` (a table: each row's
//! class and its probability of each class) and logs how many rows.

use ml_common::{ModelFile, Table};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

fn predict(_: Params) -> weft_sdk::Result<()> {
    let model = ModelFile::read("model")?;
    let table = Table::read("table")?;
    let (labels, scores) = model.predict(&model.rows(&table)?)?;
    weft_sdk::log_metric("rows", labels.len() as f64);
    println!("{} predicted {} rows", model.algorithm, labels.len());
    Ok(model.predictions(&labels, &scores).write("predictions")?)
}

weft_sdk::export_step!(predict);
