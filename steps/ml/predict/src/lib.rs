//! ml/predict: applies `model` (from an ml/* training step) to `table`,
//! whose columns the model's features are found in by name (a label
//! column, if any, is ignored); writes `predictions` (a table: each row's
//! class and its probability of each class, its value for a regressor, or
//! its cluster and distance to the cluster's centre) and logs how many rows.

use ml_common::{ModelFile, Table};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

fn predict(_: Params) -> weft_sdk::Result<()> {
    let model = ModelFile::read("model")?;
    let table = Table::read("table")?;
    let predicted = model.predict(&model.rows(&table)?)?;
    weft_sdk::log_metric("rows", predicted.len() as f64);
    println!("{} predicted {} rows", model.algorithm, predicted.len());
    Ok(model.predictions(&predicted).write("predictions")?)
}

weft_sdk::export_step!(predict);
