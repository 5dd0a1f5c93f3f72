//! ml/k-nearest-neighbours: smartcore's k-nearest-neighbours classifier
//! (Euclidean distance, linear search) on `train`; writes `model` (weft's
//! ML model file, JSON: it holds the training rows) and logs the training
//! accuracy. Params: `k` (default 5), `standardize` (default true: scale
//! matters to distances), `target` (default `target`).

use ml_common::{Knn, Table, DEFAULT_TARGET};
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
    let (scaling, rows) = data.training_rows(params.standardize)?;
    let settings = KNNClassifierParameters::default()
        .with_k(params.k)
        .with_algorithm(KNNAlgorithmName::LinearSearch);
    let model = Knn::fit(&ml_common::matrix(&rows)?, &data.y, settings)
        .map_err(|e| Error::msg(format!("training failed: {e}")))?;
    Ok(data.write_classifier(
        "k-nearest-neighbours",
        &params.target,
        scaling,
        &rows,
        &model,
        &format!("{}-nearest neighbours", params.k),
    )?)
}

weft_sdk::export_step!(train);
