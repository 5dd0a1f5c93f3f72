//! ml/evaluate: scores `model` (from an ml/* training step) on `test`,
//! whose target column holds the truth. A classifier: accuracy, ROC AUC,
//! and precision, recall and F1 per class (`precision_<class>`, …) and the
//! confusion matrix. A regressor: RMSE, MAE and R². A clustering: inertia,
//! and with a label column its adjusted Rand index and purity. Logs each
//! number as a metric and writes `report` (JSON: all of them) and
//! `predictions` (a table of the model's answer for each row).

use ml_common::{ModelFile, Table};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

fn evaluate(_: Params) -> weft_sdk::Result<()> {
    let model = ModelFile::read("model")?;
    let test = Table::read("test")?;
    let predicted = model.predict(&model.rows(&test)?)?;
    let truth = test.values(&model.target).ok();
    let report = model.report(&predicted, truth.as_deref())?;
    for (name, value) in report.metrics() {
        weft_sdk::log_metric(&name, value);
    }
    println!("{} on {} rows: {}", model.algorithm, predicted.len(), report.summary());
    model.predictions(&predicted).write("predictions")?;
    weft_sdk::write_output_json("report", &report)
}

weft_sdk::export_step!(evaluate);
