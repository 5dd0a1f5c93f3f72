//! ml/random-forest: fits smartcore's random forest classifier on `train`
//! (bootstrap samples, a random subset of the features at each split,
//! seeded: the same seed gives the same forest); writes `model` (weft's ML
//! model file, JSON) and logs the training accuracy. Params: `n_trees`
//! (default 100), `max_depth` (default none), `min_samples_leaf`
//! (default 1), `min_samples_split` (default 2), `max_features` (features
//! tried per split, default √features), `seed` (default 0), `target`.

use ml_common::{Forest, ModelFile, Table, DEFAULT_TARGET};
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
    data.training_rows(false)?;
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
    let file = ModelFile::trained("random-forest", &data, &params.target, None, &model)?;
    Ok(file.write_trained(&data.x, &data.y, &format!("random forest of {} trees", params.n_trees))?)
}

weft_sdk::export_step!(train);
