//! ml/choose: keeps the better of two models by a metric of their
//! evaluation reports (from ml/evaluate). Inputs `model_a`, `report_a`,
//! `model_b`, `report_b`; output `model` (the better one's bytes, as they
//! are: a tie keeps `a`) and `choice` (JSON: which, and both scores).
//! Param `metric`: `accuracy` (default), `roc_auc` or `r2` (higher is
//! better), or `rmse` or `mae` (lower is better).

use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "accuracy")]
    metric: String,
}

fn accuracy() -> String {
    "accuracy".into()
}

fn score(report: &str, metric: &str) -> weft_sdk::Result<f64> {
    let value: serde_json::Value = weft_sdk::read_input_json(report)?;
    value[metric].as_f64().ok_or_else(|| {
        Error::msg(format!(
            "input '{report}' has no number '{metric}' (is it a report of ml/evaluate?)"
        ))
    })
}

fn choose(params: Params) -> weft_sdk::Result<()> {
    let lower_is_better = match params.metric.as_str() {
        "accuracy" | "roc_auc" | "r2" => false,
        "rmse" | "mae" => true,
        other => {
            return Err(Error::invalid_params(format!(
                "metric is accuracy, roc_auc, r2, rmse or mae, not {other:?}"
            )))
        }
    };
    let a = score("report_a", &params.metric)?;
    let b = score("report_b", &params.metric)?;
    let b_wins = if lower_is_better { b < a } else { b > a };
    let (chosen, model) = if b_wins { ("b", "model_b") } else { ("a", "model_a") };
    let algorithm = |name: &str| -> weft_sdk::Result<String> {
        let model: serde_json::Value = weft_sdk::read_input_json(name)?;
        Ok(model["algorithm"].as_str().unwrap_or("model").to_string())
    };
    let (name_a, name_b) = (algorithm("model_a")?, algorithm("model_b")?);
    println!("{}: {name_a} {a:.4}, {name_b} {b:.4}: keeping {chosen}", params.metric);
    weft_sdk::log_metric(&params.metric, if b_wins { b } else { a });
    weft_sdk::set_tag("chosen", if chosen == "a" { &name_a } else { &name_b });
    weft_sdk::write_output("model", weft_sdk::read_input(model)?)?;
    weft_sdk::write_output_json(
        "choice",
        &serde_json::json!({
            "metric": params.metric,
            "chosen": chosen,
            "a": { "algorithm": name_a, "score": a },
            "b": { "algorithm": name_b, "score": b },
        }),
    )
}

weft_sdk::export_step!(choose);
