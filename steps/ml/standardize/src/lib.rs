//! ml/standardize: scales every feature to mean 0 and deviation 1, fitted
//! on `train` alone and applied to `train` and `test` (outputs of the same
//! names); the label column (`target` param, default `target`) is kept as
//! it is. Output `scaling` holds the means and deviations (JSON).

use ml_common::{Scaling, Table, DEFAULT_TARGET};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default = "target")]
    target: String,
}

fn target() -> String {
    DEFAULT_TARGET.into()
}

fn standardize(params: Params) -> weft_sdk::Result<()> {
    let train = Table::read("train")?;
    let test = Table::read("test")?;
    if test.columns != train.columns {
        return Err(weft_sdk::Error::msg("train and test do not have the same columns"));
    }
    let t = train.column(&params.target)?;
    let features = |row: &[f64]| {
        row.iter()
            .enumerate()
            .filter(|(j, _)| *j != t)
            .map(|(_, v)| *v)
            .collect::<Vec<_>>()
    };
    let rows: Vec<Vec<f64>> = train.rows.iter().map(|r| features(r)).collect();
    let scaling = Scaling::fit(&rows, train.columns.len() - 1);
    let scaled = |table: &Table| Table {
        columns: table.columns.clone(),
        rows: table
            .rows
            .iter()
            .map(|r| {
                let mut out = scaling.apply(&features(r));
                out.insert(t, r[t]);
                out
            })
            .collect(),
    };
    scaled(&train).write("train")?;
    scaled(&test).write("test")?;
    weft_sdk::write_output_json("scaling", &scaling)
}

weft_sdk::export_step!(standardize);
