//! The iris softmax-regression model: trained by the `train` step, read by
//! `evaluate` and by the model server in `serve/`. No weft SDK here, so a
//! step and a model server can both depend on it.

use serde::{Deserialize, Serialize};

/// Multinomial logistic (softmax) regression on standardized features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoftmaxModel {
    pub features: Vec<String>,
    pub classes: Vec<String>,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
    /// weights[class][feature]
    pub weights: Vec<Vec<f64>>,
    pub bias: Vec<f64>,
}

impl SoftmaxModel {
    /// Class probabilities for one row.
    pub fn probabilities(&self, row: &[f64]) -> Vec<f64> {
        let x: Vec<f64> = row
            .iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((v, m), s)| (v - m) / s)
            .collect();
        let logits: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.bias)
            .map(|(w, b)| w.iter().zip(&x).map(|(w, x)| w * x).sum::<f64>() + b)
            .collect();
        softmax(&logits)
    }

    /// The most probable class.
    pub fn predict(&self, row: &[f64]) -> usize {
        let p = self.probabilities(row);
        (0..p.len()).max_by(|a, b| p[*a].total_cmp(&p[*b])).unwrap_or(0)
    }
}

pub fn softmax(logits: &[f64]) -> Vec<f64> {
    let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}
