//! ml/logistic-regression: fits smartcore's logistic regression (binary
//! or multinomial, L-BFGS) on `train`; writes `model` (weft's ML model
//! file, JSON) and logs the training accuracy. Params: `alpha` (L2
//! penalty, default 0), `standardize` (fit a per-feature scaling first and
//! keep it in the model; default true), `target` (default `target`).

use ml_common::{Logistic, Table, DEFAULT_TARGET};
use serde::Deserialize;
use smartcore::linear::logistic_regression::LogisticRegressionParameters;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    alpha: f64,
    #[serde(default = "yes")]
    standardize: bool,
    #[serde(default = "target")]
    target: String,
}

fn yes() -> bool {
    true
}

fn target() -> String {
    DEFAULT_TARGET.into()
}

fn train(params: Params) -> weft_sdk::Result<()> {
    if !(params.alpha >= 0.0 && params.alpha.is_finite()) {
        return Err(Error::invalid_params(format!(
            "alpha is a penalty >= 0, not {}",
            params.alpha
        )));
    }
    let data = Table::read("train")?.features_and_labels(&params.target)?;
    let (scaling, rows) = data.training_rows(params.standardize)?;
    let model = Logistic::fit(
        &ml_common::matrix(&rows)?,
        &data.y,
        LogisticRegressionParameters::default().with_alpha(params.alpha),
    )
    .map_err(|e| Error::msg(format!("training failed: {e}")))?;
    Ok(data.write_classifier(
        "logistic-regression",
        &params.target,
        scaling,
        &rows,
        &model,
        "logistic regression",
    )?)
}

weft_sdk::export_step!(train);
