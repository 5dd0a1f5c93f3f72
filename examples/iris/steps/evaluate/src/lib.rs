//! evaluate: held-out accuracy and per-class precision, recall and F1.

use iris_common::{Dataset, SoftmaxModel};
use serde::Serialize;
use weft_sdk::{bail, NoParams};

#[derive(Serialize)]
struct ClassReport {
    class: String,
    precision: f64,
    recall: f64,
    f1: f64,
    support: usize,
}

#[derive(Serialize)]
struct Report {
    accuracy: f64,
    rows: usize,
    classes: Vec<ClassReport>,
    confusion: Vec<Vec<usize>>,
    /// The predicted class of each test row, in order.
    predictions: Vec<String>,
}

fn evaluate(_: NoParams) -> weft_sdk::Result<()> {
    let model: SoftmaxModel = weft_sdk::read_input_json("model")?;
    let test = Dataset::read("test")?;
    test.validate()?;
    if test.features != model.features || test.classes != model.classes {
        bail!("the test set's features or classes differ from the model's");
    }
    if test.is_empty() {
        bail!("the test set is empty");
    }
    let k = model.classes.len();
    let mut confusion = vec![vec![0usize; k]; k];
    let mut predictions = Vec::with_capacity(test.len());
    for (row, &y) in test.rows.iter().zip(&test.labels) {
        let predicted = model.predict(row);
        confusion[y][predicted] += 1;
        predictions.push(model.classes[predicted].clone());
    }
    let correct: usize = (0..k).map(|c| confusion[c][c]).sum();
    let accuracy = correct as f64 / test.len() as f64;
    weft_sdk::log_metric("accuracy", accuracy);
    let mut classes = Vec::new();
    for c in 0..k {
        let tp = confusion[c][c] as f64;
        let predicted: usize = (0..k).map(|r| confusion[r][c]).sum();
        let support: usize = confusion[c].iter().sum();
        let precision = if predicted > 0 { tp / predicted as f64 } else { 0.0 };
        let recall = if support > 0 { tp / support as f64 } else { 0.0 };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        let name = &model.classes[c];
        weft_sdk::log_metric(&format!("precision.{name}"), precision);
        weft_sdk::log_metric(&format!("recall.{name}"), recall);
        weft_sdk::log_metric(&format!("f1.{name}"), f1);
        classes.push(ClassReport {
            class: name.clone(),
            precision,
            recall,
            f1,
            support,
        });
    }
    println!("held-out accuracy {accuracy:.3} on {} rows", test.len());
    let report = Report {
        accuracy,
        rows: test.len(),
        classes,
        confusion,
        predictions,
    };
    weft_sdk::log_metadata("report", &report)?;
    weft_sdk::write_output_json("report", &report)
}

weft_sdk::export_step!(evaluate);
