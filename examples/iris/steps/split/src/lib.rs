//! split: a seeded, stratified train/test split.

use iris_common::{Dataset, Rng};
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    test_fraction: f64,
    seed: u64,
}

fn split(params: Params) -> weft_sdk::Result<()> {
    if !(0.0 < params.test_fraction && params.test_fraction < 1.0) {
        return Err(Error::invalid_params(format!(
            "test_fraction must be between 0 and 1, got {}",
            params.test_fraction
        )));
    }
    let data = Dataset::read("data")?;
    data.validate()?;
    let mut rng = Rng::new(params.seed);
    let (mut train_idx, mut test_idx) = (Vec::new(), Vec::new());
    // Stratified: each class is split in the same proportion.
    for class in 0..data.classes.len() {
        let mut idx: Vec<usize> = (0..data.len()).filter(|i| data.labels[*i] == class).collect();
        rng.shuffle(&mut idx);
        let n_test = ((idx.len() as f64) * params.test_fraction).round() as usize;
        test_idx.extend_from_slice(&idx[..n_test]);
        train_idx.extend_from_slice(&idx[n_test..]);
    }
    rng.shuffle(&mut train_idx);
    rng.shuffle(&mut test_idx);
    let subset = |idx: &[usize]| Dataset {
        features: data.features.clone(),
        classes: data.classes.clone(),
        rows: idx.iter().map(|i| data.rows[*i].clone()).collect(),
        labels: idx.iter().map(|i| data.labels[*i]).collect(),
    };
    let (train, test) = (subset(&train_idx), subset(&test_idx));
    weft_sdk::log_metric("train_rows", train.len() as f64);
    weft_sdk::log_metric("test_rows", test.len() as f64);
    train.write("train")?;
    test.write("test")
}

weft_sdk::export_step!(split);
