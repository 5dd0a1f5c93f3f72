//! ml/random-forest: fits smartcore's random forest on `train`: a
//! classifier, or with `task = "regression"` a regressor of a numeric
//! target (bootstrap samples, a random subset of the features at each
//! split, seeded: the same seed gives the same forest); writes `model`
//! (weft's ML model file, JSON) and logs the training accuracy (or R²).
//! Params: `task` (`classification`, the default, or `regression`),
//! `n_trees` (default 100), `max_depth` (default none), `min_samples_leaf`
//! (default 1), `min_samples_split` (default 2), `max_features` (features
//! tried per split, default √features for a classifier and a third of
//! them for a regressor), `seed` (default 0), `target`.

use ml_common::{Forest, ForestRegressor, ModelFile, Table, DEFAULT_TARGET};
use serde::Deserialize;
use smartcore::ensemble::random_forest_classifier::RandomForestClassifierParameters;
use smartcore::ensemble::random_forest_regressor::RandomForestRegressorParameters;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    task: Task,
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

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Task {
    #[default]
    Classification,
    Regression,
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
    let table = Table::read("train")?;
    let features = table.features(&params.target)?;
    let d = features.names.len();
    let m = match params.max_features {
        Some(m) if m == 0 || m > d => {
            return Err(Error::invalid_params(format!("max_features is 1..={d}, not {m}")));
        }
        Some(m) => m,
        None if params.task == Task::Regression => (d / 3).max(1),
        None => ((d as f64).sqrt().floor() as usize).max(1),
    };
    let failed = |e: smartcore::error::Failed| Error::msg(format!("training failed: {e}"));
    let what = format!("random forest of {} trees", params.n_trees);
    if params.task == Task::Regression {
        let y = table.values(&params.target)?;
        let mut settings = RandomForestRegressorParameters::default()
            .with_n_trees(params.n_trees as usize)
            .with_min_samples_leaf(params.min_samples_leaf)
            .with_min_samples_split(params.min_samples_split)
            .with_m(m)
            .with_seed(params.seed);
        if let Some(depth) = params.max_depth {
            settings = settings.with_max_depth(depth);
        }
        let model = ForestRegressor::fit(&ml_common::matrix(&features.x)?, &y, settings).map_err(failed)?;
        let file = ModelFile::trained(
            "random-forest-regression",
            &features.names,
            Vec::new(),
            &params.target,
            None,
            &model,
        )?;
        return Ok(file.write_trained(&features.x, Some(&y), &what)?);
    }
    let data = table.features_and_labels(&params.target)?;
    data.training_rows(false)?;
    let mut settings = RandomForestClassifierParameters::default()
        .with_n_trees(params.n_trees)
        .with_min_samples_leaf(params.min_samples_leaf)
        .with_min_samples_split(params.min_samples_split)
        .with_m(m)
        .with_seed(params.seed);
    if let Some(depth) = params.max_depth {
        settings = settings.with_max_depth(depth);
    }
    let model = Forest::fit(&data.matrix()?, &data.y, settings).map_err(failed)?;
    Ok(data.write_classifier("random-forest", &params.target, None, &data.x, &model, &what)?)
}

weft_sdk::export_step!(train);
