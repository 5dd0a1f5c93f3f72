//! ml/split: a stratified, seeded split of a table into `train` and
//! `test`: each class keeps its share in both. Input `table`. Params:
//! `test_fraction` (default 0.25), `seed` (default 0), `target` (the label
//! column, default `target`), `stratify` (default true; false for a
//! numeric target or none: the rows are shuffled as one group).

use ml_common::{Table, DEFAULT_TARGET};
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "quarter")]
    test_fraction: f64,
    #[serde(default)]
    seed: u64,
    #[serde(default = "target")]
    target: String,
    #[serde(default = "yes")]
    stratify: bool,
}

fn yes() -> bool {
    true
}

fn quarter() -> f64 {
    0.25
}

fn target() -> String {
    DEFAULT_TARGET.into()
}

/// SplitMix64: a small, well-mixed generator; the split depends on the
/// seed alone.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn split(params: Params) -> weft_sdk::Result<()> {
    if !(params.test_fraction > 0.0 && params.test_fraction < 1.0) {
        return Err(Error::invalid_params(format!(
            "test_fraction is between 0 and 1, not {}",
            params.test_fraction
        )));
    }
    let table = Table::read("table")?;
    let labels = if params.stratify {
        table.features_and_labels(&params.target)?.y
    } else {
        vec![0; table.rows.len()]
    };
    let mut classes = labels.clone();
    classes.sort_unstable();
    classes.dedup();
    let mut rng = SplitMix(params.seed);
    let mut test = vec![false; labels.len()];
    for class in classes {
        let mut rows: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        // Fisher-Yates, then the first share goes to test.
        for i in (1..rows.len()).rev() {
            rows.swap(i, rng.below(i + 1));
        }
        let n = ((rows.len() as f64) * params.test_fraction).round() as usize;
        for &r in &rows[..n.min(rows.len())] {
            test[r] = true;
        }
    }
    let part = |side: bool| Table {
        columns: table.columns.clone(),
        rows: table
            .rows
            .iter()
            .zip(&test)
            .filter(|(_, &t)| t == side)
            .map(|(r, _)| r.clone())
            .collect(),
    };
    let (train, held) = (part(false), part(true));
    if train.rows.is_empty() || held.rows.is_empty() {
        return Err(Error::msg(format!(
            "{} rows cannot be split with test_fraction {}: one side would be empty",
            table.rows.len(),
            params.test_fraction
        )));
    }
    weft_sdk::log_metric("train_rows", train.rows.len() as f64);
    weft_sdk::log_metric("test_rows", held.rows.len() as f64);
    println!(
        "{} rows for training, {} for testing",
        train.rows.len(),
        held.rows.len()
    );
    train.write("train")?;
    Ok(held.write("test")?)
}

weft_sdk::export_step!(split);
