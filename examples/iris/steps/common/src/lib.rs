//! Shared by the iris steps: the tabular dataset format passed between
//! steps, and (from `iris-model`) the softmax-regression model.

use serde::{Deserialize, Serialize};
pub use iris_model::{softmax, SoftmaxModel};
use weft_sdk::{bail, Result};

/// A labelled numeric dataset. On disk: CSV with a header
/// `feature1,...,featureN,label` and the class names in `classes` (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dataset {
    pub features: Vec<String>,
    pub classes: Vec<String>,
    pub rows: Vec<Vec<f64>>,
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Reads a dataset written by [`Dataset::write`].
    pub fn read(input: &str) -> Result<Self> {
        weft_sdk::read_input_json(input)
    }

    /// Writes the dataset as JSON.
    pub fn write(&self, output: &str) -> Result<()> {
        weft_sdk::write_output_json(output, self)
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Checks shapes and values.
    pub fn validate(&self) -> Result<()> {
        if self.rows.len() != self.labels.len() {
            bail!("{} rows but {} labels", self.rows.len(), self.labels.len());
        }
        for (i, row) in self.rows.iter().enumerate() {
            if row.len() != self.features.len() {
                bail!("row {i} has {} values, expected {}", row.len(), self.features.len());
            }
            if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                bail!("row {i} has a non-finite value {v}");
            }
            if self.labels[i] >= self.classes.len() {
                bail!(
                    "row {i} has label {} but there are {} classes",
                    self.labels[i],
                    self.classes.len()
                );
            }
        }
        Ok(())
    }
}

/// A deterministic pseudo-random generator (SplitMix64): the same seed gives
/// the same split on every machine, which keeps the cache meaningful.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            items.swap(i, j);
        }
    }
}
