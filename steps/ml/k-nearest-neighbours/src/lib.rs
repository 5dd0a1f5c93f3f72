//! ml/k-nearest-neighbours: smartcore's k-nearest-neighbours classifier
//! (Euclidean distance, linear search) on `train`; writes `model` (weft's
//! ML model file, JSON: it holds the training rows) and logs the training
//! accuracy. Params: `k` (default 5), `standardize` (default true: scale
//! matters to distances), `target` (default `target`).

use ml_common::{Knn, ModelFile, Scaling, Table, DEFAULT_TARGET, MODEL_FORMAT};
use serde::Deserialize;
use smartcore::algorithm::neighbour::KNNAlgorithmName;
use smartcore::neighbors::knn_classifier::KNNClassifierParameters;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "five")]
    k: usize,
    #[serde(default = "yes")]
    standardize: bool,
    #[serde(default = "target")]
    target: String,
}

fn five() -> usize {
    5
}
fn yes() -> bool {
    true
}
fn target() -> String {
    DEFAULT_TARGET.into()
}

fn train(params: Params) -> weft_sdk::Result<()> {
    let data = Table::read("train")?.features_and_labels(&params.target)?;
    if params.k == 0 || params.k > data.y.len() {
        return Err(Error::invalid_params(format!(
            "k is 1..={} (the training rows), not {}",
            data.y.len(),
            params.k
        )));
    }
    let classes = data.classes();
    if classes.len() < 2 {
        return Err(Error::msg(
            "the training rows hold a single class: there is nothing to learn",
        ));
    }
    let scaling = params.standardize.then(|| Scaling::fit(&data.x, data.features.len()));
    let rows: Vec<Vec<f64>> = match &scaling {
        Some(s) => data.x.iter().map(|r| s.apply(r)).collect(),
        None => data.x.clone(),
    };
    let settings = KNNClassifierParameters::default()
        .with_k(params.k)
        .with_algorithm(KNNAlgorithmName::LinearSearch);
    let model = Knn::fit(&ml_common::matrix(&rows)?, &data.y, settings)
        .map_err(|e| Error::msg(format!("training failed: {e}")))?;
    let file = ModelFile {
        format: MODEL_FORMAT.into(),
        algorithm: "k-nearest-neighbours".into(),
        features: data.features.clone(),
        target: params.target.clone(),
        classes,
        scaling,
        fitted: serde_json::to_value(&model).map_err(|e| Error::msg(format!("cannot save the model: {e}")))?,
    };
    let (predicted, _) = file.predict(&rows)?;
    let accuracy = predicted.iter().zip(&data.y).filter(|(p, y)| p == y).count() as f64 / data.y.len() as f64;
    weft_sdk::log_metric("train_accuracy", accuracy);
    println!(
        "{}-nearest neighbours over {} rows: training accuracy {accuracy:.4}",
        params.k,
        data.y.len()
    );
    weft_sdk::write_output_json("model", &file)
}

weft_sdk::export_step!(train);
