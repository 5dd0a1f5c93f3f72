//! train: softmax regression by full-batch gradient descent with L2
//! regularisation, on standardized features.

use iris_common::{softmax, Dataset, SoftmaxModel};
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    learning_rate: f64,
    epochs: u32,
    #[serde(default)]
    l2: f64,
}

fn train(params: Params) -> weft_sdk::Result<()> {
    if !(params.learning_rate > 0.0 && params.learning_rate.is_finite()) {
        return Err(Error::invalid_params(format!(
            "learning_rate must be positive, got {}",
            params.learning_rate
        )));
    }
    if params.epochs == 0 || params.epochs > 1_000_000 {
        return Err(Error::invalid_params(format!(
            "epochs must be 1..=1000000, got {}",
            params.epochs
        )));
    }
    if !(params.l2 >= 0.0) {
        return Err(Error::invalid_params(format!("l2 must be >= 0, got {}", params.l2)));
    }
    let data = Dataset::read("train")?;
    data.validate()?;
    if data.is_empty() {
        return Err(Error::msg("the training set is empty"));
    }
    let (n, d, k) = (data.len(), data.features.len(), data.classes.len());

    let mean: Vec<f64> = (0..d)
        .map(|j| data.rows.iter().map(|r| r[j]).sum::<f64>() / n as f64)
        .collect();
    let std: Vec<f64> = (0..d)
        .map(|j| {
            let var = data.rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n as f64;
            if var > 0.0 {
                var.sqrt()
            } else {
                1.0
            }
        })
        .collect();
    let x: Vec<Vec<f64>> = data
        .rows
        .iter()
        .map(|r| (0..d).map(|j| (r[j] - mean[j]) / std[j]).collect())
        .collect();

    let mut w = vec![vec![0.0; d]; k];
    let mut b = vec![0.0; k];
    for epoch in 0..params.epochs {
        let mut gw = vec![vec![0.0; d]; k];
        let mut gb = vec![0.0; k];
        let mut loss = 0.0;
        for (xi, &yi) in x.iter().zip(&data.labels) {
            let logits: Vec<f64> = (0..k)
                .map(|c| w[c].iter().zip(xi).map(|(a, b)| a * b).sum::<f64>() + b[c])
                .collect();
            let p = softmax(&logits);
            loss -= p[yi].max(1e-12).ln();
            for c in 0..k {
                let g = p[c] - if c == yi { 1.0 } else { 0.0 };
                gb[c] += g;
                for j in 0..d {
                    gw[c][j] += g * xi[j];
                }
            }
        }
        let l2_term: f64 = w.iter().flatten().map(|v| v * v).sum::<f64>() * params.l2 / 2.0;
        loss = loss / n as f64 + l2_term;
        for c in 0..k {
            b[c] -= params.learning_rate * gb[c] / n as f64;
            for j in 0..d {
                w[c][j] -= params.learning_rate * (gw[c][j] / n as f64 + params.l2 * w[c][j]);
            }
        }
        if epoch % 10 == 0 || epoch + 1 == params.epochs {
            weft_sdk::log_metric_at("loss", loss, epoch as u64);
        }
    }

    let model = SoftmaxModel {
        features: data.features.clone(),
        classes: data.classes.clone(),
        mean,
        std,
        weights: w,
        bias: b,
    };
    let correct = data
        .rows
        .iter()
        .zip(&data.labels)
        .filter(|(r, y)| model.predict(r) == **y)
        .count();
    let accuracy = correct as f64 / n as f64;
    weft_sdk::log_metric("train_accuracy", accuracy);
    println!("trained on {n} rows: train accuracy {accuracy:.3}");
    weft_sdk::write_output_json("model", &model)
}

weft_sdk::export_step!(train);
