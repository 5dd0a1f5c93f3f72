//! ml/logistic-regression: fits smartcore's logistic regression (binary
//! or multinomial, L-BFGS) on `train`; writes `model` (weft's ML model
//! file, JSON) and logs the training accuracy. Params: `alpha` (L2
//! penalty, default 0), `standardize` (fit a per-feature scaling first and
//! keep it in the model; default true), `target` (default `target`).

use ml_common::{Logistic, ModelFile, Scaling, Table, DEFAULT_TARGET, MODEL_FORMAT};
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
    let model = Logistic::fit(
        &ml_common::matrix(&rows)?,
        &data.y,
        LogisticRegressionParameters::default().with_alpha(params.alpha),
    )
    .map_err(|e| Error::msg(format!("training failed: {e}")))?;
    let file = ModelFile {
        format: MODEL_FORMAT.into(),
        algorithm: "logistic-regression".into(),
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
        "logistic regression on {} rows: training accuracy {accuracy:.4}",
        data.y.len()
    );
    weft_sdk::write_output_json("model", &file)
}

weft_sdk::export_step!(train);
