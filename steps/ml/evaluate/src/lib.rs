//! ml/evaluate: scores `model` (from an ml/* training step) on `test`;
//! logs accuracy, ROC AUC, and precision, recall and F1 per class
//! (`precision_<class>`, …), and writes `report` (JSON: those and the
//! confusion matrix) and `predictions` (a table: each row's class and its
//! probability of each class).

use ml_common::{ModelFile, Table};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {}

fn evaluate(_: Params) -> weft_sdk::Result<()> {
    let model = ModelFile::read("model")?;
    let test = Table::read("test")?;
    let (rows, truth) = model.inputs(&test)?;
    let (predicted, scores) = model.predict(&rows)?;
    let report = ml_common::report(&model.classes, &truth, &predicted, &scores);
    weft_sdk::log_metric("accuracy", report.accuracy);
    if let Some(auc) = report.roc_auc {
        weft_sdk::log_metric("roc_auc", auc);
    }
    for (class, s) in &report.per_class {
        weft_sdk::log_metric(&format!("precision_{class}"), s.precision);
        weft_sdk::log_metric(&format!("recall_{class}"), s.recall);
        weft_sdk::log_metric(&format!("f1_{class}"), s.f1);
    }
    println!(
        "{} on {} rows: accuracy {:.4}{}",
        model.algorithm,
        report.rows,
        report.accuracy,
        report.roc_auc.map(|a| format!(", ROC AUC {a:.4}")).unwrap_or_default()
    );
    let predictions = model.predictions(&predicted, &scores);
    predictions.write("predictions")?;
    weft_sdk::write_output_json("report", &report)
}

weft_sdk::export_step!(evaluate);
