//! load: parses the raw iris CSV (scikit-learn's layout: a first line
//! `n_samples,n_features,class names...`, then rows of features and a class
//! index) into the dataset format the other steps use.

use iris_common::Dataset;
use weft_sdk::{bail, Error, NoParams};

const FEATURES: [&str; 4] = ["sepal_length", "sepal_width", "petal_length", "petal_width"];

fn load(_: NoParams) -> weft_sdk::Result<()> {
    let text = weft_sdk::read_input_string("raw")?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| Error::msg("the input is empty"))?;
    let fields: Vec<&str> = header.split(',').map(str::trim).collect();
    if fields.len() < 3 {
        bail!("header '{header}' is not 'n_samples,n_features,class...'");
    }
    let n_samples: usize = fields[0]
        .parse()
        .map_err(|e| Error::msg(format!("header n_samples '{}': {e}", fields[0])))?;
    let n_features: usize = fields[1]
        .parse()
        .map_err(|e| Error::msg(format!("header n_features '{}': {e}", fields[1])))?;
    let classes: Vec<String> = fields[2..].iter().map(|s| s.to_string()).collect();
    let features: Vec<String> = if n_features == FEATURES.len() {
        FEATURES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..n_features).map(|i| format!("x{i}")).collect()
    };
    let mut rows = Vec::with_capacity(n_samples);
    let mut labels = Vec::with_capacity(n_samples);
    for (i, line) in lines.enumerate() {
        let values: Vec<&str> = line.split(',').map(str::trim).collect();
        if values.len() != n_features + 1 {
            bail!(
                "line {} has {} fields, expected {}",
                i + 2,
                values.len(),
                n_features + 1
            );
        }
        let row = values[..n_features]
            .iter()
            .map(|v| {
                v.parse::<f64>()
                    .map_err(|e| Error::msg(format!("line {}: '{v}': {e}", i + 2)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let label: usize = values[n_features]
            .parse()
            .map_err(|e| Error::msg(format!("line {} label: {e}", i + 2)))?;
        rows.push(row);
        labels.push(label);
    }
    if rows.len() != n_samples {
        bail!("the header announces {n_samples} rows but there are {}", rows.len());
    }
    let dataset = Dataset {
        features,
        classes,
        rows,
        labels,
    };
    dataset.validate()?;
    weft_sdk::log_metric("rows", dataset.len() as f64);
    weft_sdk::log_metric("features", n_features as f64);
    for (c, name) in dataset.classes.iter().enumerate() {
        let count = dataset.labels.iter().filter(|l| **l == c).count();
        weft_sdk::log_metric(&format!("class_count.{name}"), count as f64);
    }
    println!(
        "loaded {} rows, {} features, {} classes",
        dataset.len(),
        n_features,
        dataset.classes.len()
    );
    dataset.write("dataset")
}

weft_sdk::export_step!(load);
