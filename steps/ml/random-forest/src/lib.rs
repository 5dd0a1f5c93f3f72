//! ml/random-forest: fits smartcore's random forest classifier on `train`
//! (bootstrap samples, a random subset of the features at each split,
//! seeded: the same seed gives the same forest); writes `model` (weft's ML
//! model file, JSON) and logs the training accuracy. Params: `n_trees`
//! (default 100), `max_depth` (default none), `min_samples_leaf`
//! (default 1), `min_samples_split` (default 2), `max_features` (features
//! tried per split, default √features), `seed` (default 0), `target`.

use ml_common::{Forest, ModelFile, Table, DEFAULT_TARGET, MODEL_FORMAT};
use serde::Deserialize;
use smartcore::ensemble::random_forest_classifier::RandomForestClassifierParameters;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "hundred")]
    n_trees: u16,
    #[serde(default)]
    max_depth: Option<u16>,
    #[serde(default = "one")]
    min_samples_leaf: usize,
    #[serde(default = "two")]
    min_samples_split: usize,
    #[serde(default)]
    max_features: Option<usize>,
    #[serde(default)]
    seed: u64,
    #[serde(default = "target")]
    target: String,
}

fn hundred() -> u16 {
    100
}
fn one() -> usize {
    1
}
fn two() -> usize {
    2
}
fn target() -> String {
    DEFAULT_TARGET.into()
}

fn train(params: Params) -> weft_sdk::Result<()> {
    if params.n_trees == 0 || params.n_trees > 10_000 {
        return Err(Error::invalid_params(format!(
            "n_trees is 1..=10000, not {}",
            params.n_trees
        )));
    }
    if params.min_samples_leaf == 0 || params.min_samples_split < 2 {
        return Err(Error::invalid_params(
            "min_samples_leaf is at least 1 and min_samples_split at least 2",
        ));
    }
    let data = Table::read("train")?.features_and_labels(&params.target)?;
    let classes = data.classes();
    if classes.len() < 2 {
        return Err(Error::msg(
            "the training rows hold a single class: there is nothing to learn",
        ));
    }
    let d = data.features.len();
    let m = match params.max_features {
        Some(m) if m == 0 || m > d => {
            return Err(Error::invalid_params(format!("max_features is 1..={d}, not {m}")));
        }
        Some(m) => m,
        None => ((d as f64).sqrt().floor() as usize).max(1),
    };
    let mut settings = RandomForestClassifierParameters::default()
        .with_n_trees(params.n_trees)
        .with_min_samples_leaf(params.min_samples_leaf)
        .with_min_samples_split(params.min_samples_split)
        .with_m(m)
        .with_seed(params.seed);
    if let Some(depth) = params.max_depth {
        settings = settings.with_max_depth(depth);
    }
    let model =
        Forest::fit(&data.matrix()?, &data.y, settings).map_err(|e| Error::msg(format!("training failed: {e}")))?;
    let file = ModelFile {
        format: MODEL_FORMAT.into(),
        algorithm: "random-forest".into(),
        features: data.features.clone(),
        target: params.target.clone(),
        classes,
        scaling: None,
        fitted: serde_json::to_value(&model).map_err(|e| Error::msg(format!("cannot save the model: {e}")))?,
    };
    let (predicted, _) = file.predict(&data.x)?;
    let accuracy = predicted.iter().zip(&data.y).filter(|(p, y)| p == y).count() as f64 / data.y.len() as f64;
    weft_sdk::log_metric("train_accuracy", accuracy);
    println!(
        "random forest of {} trees on {} rows: training accuracy {accuracy:.4}",
        params.n_trees,
        data.y.len()
    );
    weft_sdk::write_output_json("model", &file)
}

weft_sdk::export_step!(train);
