//! ml/k-means: smartcore's k-means (k-means++ starts, seeded) on the
//! feature columns of `table` (a label column `target`, if the table has
//! one, is left out and only used to score the clusters); it fits from
//! `n_init` seeds and keeps the clustering of least inertia. Writes `model`
//! (weft's ML model file: the centres) and logs the inertia. Params: `k`
//! (the number of clusters, required), `n_init` (default 10), `max_iter`
//! (default 300), `standardize` (default false), `seed` (default 0),
//! `target`.

use ml_common::{KMeans, ModelFile, Table, DEFAULT_TARGET};
use serde::Deserialize;
use smartcore::cluster::kmeans::KMeansParameters;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    k: usize,
    #[serde(default = "ten")]
    n_init: u32,
    #[serde(default = "three_hundred")]
    max_iter: usize,
    #[serde(default)]
    standardize: bool,
    #[serde(default)]
    seed: u64,
    #[serde(default = "target")]
    target: String,
}

fn ten() -> u32 {
    10
}
fn three_hundred() -> usize {
    300
}
fn target() -> String {
    DEFAULT_TARGET.into()
}

fn train(params: Params) -> weft_sdk::Result<()> {
    let table = Table::read("table")?;
    let features = table.features(&params.target)?;
    let n = features.x.len();
    if params.k < 2 || params.k > n {
        return Err(Error::invalid_params(format!(
            "k is 2..={n} (the rows), not {}",
            params.k
        )));
    }
    if params.n_init == 0 || params.n_init > 1000 || params.max_iter == 0 || params.max_iter > 100_000 {
        return Err(Error::invalid_params("n_init is 1..=1000 and max_iter 1..=100000"));
    }
    let (scaling, rows) = ml_common::standardized(&features.x, features.names.len(), params.standardize);
    let x = ml_common::matrix(&rows)?;
    let mut best: Option<(f64, KMeans)> = None;
    for i in 0..params.n_init {
        let mut settings = KMeansParameters::default()
            .with_k(params.k)
            .with_max_iter(params.max_iter);
        settings.seed = Some(params.seed.wrapping_add(i as u64));
        let model = KMeans::fit(&x, settings).map_err(|e| Error::msg(format!("training failed: {e}")))?;
        let fitted = serde_json::to_value(&model).map_err(|e| Error::msg(format!("cannot save the model: {e}")))?;
        let (_, distances) = ml_common::nearest(&rows, &ml_common::centroids(&fitted)?);
        let inertia: f64 = distances.iter().sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, model));
        }
    }
    let Some((_, model)) = best else {
        return Err(Error::msg("no clustering was fitted"));
    };
    let clusters: Vec<u32> = (0..params.k as u32).collect();
    let file = ModelFile::trained("k-means", &features.names, clusters, &params.target, scaling, &model)?;
    let labels = table.values(&params.target).ok();
    Ok(file.write_trained(&rows, labels.as_deref(), &format!("k-means of {} clusters", params.k))?)
}

weft_sdk::export_step!(train);
