//! What the `ml/*` steps share: the table they pass each other, the model
//! file they write, and the metrics they report.
//!
//! **The table** is CSV (RFC 4180, comma-separated, UTF-8) whose first line
//! names the columns; every other line is one row of numbers. The label
//! column is named by the steps' `target` param (`target` unless given).
//! Any language reads and writes it (`csv` in Python's standard library,
//! a split on commas in JavaScript), and the dashboard previews it as CSV.

use std::collections::BTreeMap;

mod encode;
pub use encode::{detect_header, encode, Encoded, Header, TargetColumn};

use serde::{Deserialize, Serialize};
use smartcore::linalg::basic::matrix::DenseMatrix;

/// What went wrong, for the step (or model server) to report.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    message: String,
    invalid_params: bool,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn msg(message: impl std::fmt::Display) -> Self {
        Error {
            message: message.to_string(),
            invalid_params: false,
        }
    }

    /// A param is wrong: the step fails as `invalid-params`, not retried.
    pub fn invalid_params(message: impl std::fmt::Display) -> Self {
        Error {
            message: message.to_string(),
            invalid_params: true,
        }
    }

    pub fn context(self, context: impl std::fmt::Display) -> Self {
        Error {
            message: format!("{context}: {}", self.message),
            ..self
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

#[cfg(feature = "step")]
impl From<Error> for weft_sdk::Error {
    fn from(e: Error) -> Self {
        if e.invalid_params {
            weft_sdk::Error::invalid_params(e.message)
        } else {
            weft_sdk::Error::msg(e.message)
        }
    }
}

#[cfg(feature = "step")]
fn sdk(e: weft_sdk::Error) -> Error {
    Error::msg(e.message())
}

/// The label column's name unless a step's `target` param names another.
pub const DEFAULT_TARGET: &str = "target";

/// A table of numbers with named columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl Table {
    /// Reads input `name` as a table.
    #[cfg(feature = "step")]
    pub fn read(name: &str) -> Result<Table> {
        let file = weft_sdk::open_input(name).map_err(sdk)?;
        Table::from_reader(file).map_err(|e| e.context(format!("input '{name}'")))
    }

    /// Parses a table from CSV text with a header line.
    pub fn from_reader(reader: impl std::io::Read) -> Result<Table> {
        let mut csv = csv::ReaderBuilder::new().has_headers(true).from_reader(reader);
        let columns: Vec<String> = csv
            .headers()
            .map_err(|e| Error::msg(format!("cannot read the header line: {e}")))?
            .iter()
            .map(|c| c.trim().to_string())
            .collect();
        check_columns(&columns)?;
        let mut rows = Vec::new();
        for (i, record) in csv.records().enumerate() {
            let record = record.map_err(|e| Error::msg(format!("row {}: {e}", i + 1)))?;
            rows.push(parse_row(&record, i + 1, &columns)?);
        }
        Ok(Table { columns, rows })
    }

    /// Writes the table as output `name`.
    #[cfg(feature = "step")]
    pub fn write(&self, name: &str) -> Result<()> {
        let mut csv = csv::Writer::from_writer(weft_sdk::create_output(name).map_err(sdk)?);
        let failed = |e: csv::Error| Error::msg(format!("cannot write output '{name}': {e}"));
        csv.write_record(&self.columns).map_err(failed)?;
        for row in &self.rows {
            csv.write_record(row.iter().map(|v| v.to_string())).map_err(failed)?;
        }
        csv.flush()
            .map_err(|e| Error::msg(format!("cannot write output '{name}': {e}")))
    }

    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::invalid_params(format!(
                "no column '{name}' in the table (its columns: {})",
                self.columns.join(", ")
            ))
        })
    }

    /// The features: every column but `target` (all of them when the
    /// table has no such column), in order, and their rows.
    pub fn features(&self, target: &str) -> Result<Features> {
        let t = self.columns.iter().position(|c| c == target);
        let keep = |j: usize| Some(j) != t;
        let names: Vec<String> = (0..self.columns.len())
            .filter(|&j| keep(j))
            .map(|j| self.columns[j].clone())
            .collect();
        if names.is_empty() {
            return Err(Error::msg("the table has no feature column besides its target"));
        }
        let x = self
            .rows
            .iter()
            .map(|row| (0..row.len()).filter(|&j| keep(j)).map(|j| row[j]).collect())
            .collect();
        Ok(Features { names, x })
    }

    /// The values of column `target`, one per row.
    pub fn values(&self, target: &str) -> Result<Vec<f64>> {
        let t = self.column(target)?;
        Ok(self.rows.iter().map(|row| row[t]).collect())
    }

    /// The features (every column but `target`, in order) and the labels.
    pub fn features_and_labels(&self, target: &str) -> Result<Labelled> {
        let y = labels(&self.values(target)?, target)?;
        let Features { names, x } = self.features(target)?;
        Ok(Labelled { features: names, x, y })
    }
}

/// `values` as class labels: whole numbers 0, 1, 2, … .
pub fn labels(values: &[f64], target: &str) -> Result<Vec<u32>> {
    values
        .iter()
        .enumerate()
        .map(|(i, &label)| {
            if label < 0.0 || label.fract() != 0.0 || label > u32::MAX as f64 {
                Err(Error::msg(format!(
                    "row {}: the target '{target}' is {label}; classes are whole numbers 0, 1, 2, …",
                    i + 1
                )))
            } else {
                Ok(label as u32)
            }
        })
        .collect()
}

/// A table's feature columns and rows.
#[derive(Debug, Clone)]
pub struct Features {
    pub names: Vec<String>,
    pub x: Vec<Vec<f64>>,
}

/// `rows` standardized if asked, and the scaling (for the model to keep).
pub fn standardized(rows: &[Vec<f64>], width: usize, standardize: bool) -> (Option<Scaling>, Vec<Vec<f64>>) {
    if !standardize {
        return (None, rows.to_vec());
    }
    let scaling = Scaling::fit(rows, width);
    let scaled = rows.iter().map(|r| scaling.apply(r)).collect();
    (Some(scaling), scaled)
}

/// A table read for training or evaluation.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub features: Vec<String>,
    pub x: Vec<Vec<f64>>,
    pub y: Vec<u32>,
}

impl Labelled {
    /// The features as smartcore's matrix.
    pub fn matrix(&self) -> Result<DenseMatrix<f64>> {
        matrix(&self.x)
    }

    /// The rows a classifier trains on: checked to hold two classes or
    /// more, and standardized (the scaling returned, for the model to keep)
    /// if asked.
    pub fn training_rows(&self, standardize: bool) -> Result<(Option<Scaling>, Vec<Vec<f64>>)> {
        if self.classes().len() < 2 {
            return Err(Error::msg(
                "the training rows hold a single class: there is nothing to learn",
            ));
        }
        Ok(standardized(&self.x, self.features.len(), standardize))
    }

    /// The labels as the target column's values.
    pub fn truth(&self) -> Vec<f64> {
        self.y.iter().map(|&y| y as f64).collect()
    }

    /// What every classifier step does last: the model file of `fitted`,
    /// trained on these rows (as `rows`, scaled by `scaling` if given),
    /// scored on them and written ([`ModelFile::write_trained`]).
    #[cfg(feature = "step")]
    pub fn write_classifier(
        &self,
        algorithm: &str,
        target: &str,
        scaling: Option<Scaling>,
        rows: &[Vec<f64>],
        fitted: &impl Serialize,
        what: &str,
    ) -> Result<()> {
        let file = ModelFile::trained(algorithm, &self.features, self.classes(), target, scaling, fitted)?;
        file.write_trained(rows, Some(&self.truth()), what)
    }

    /// The distinct classes, in order.
    pub fn classes(&self) -> Vec<u32> {
        let mut classes = self.y.clone();
        classes.sort_unstable();
        classes.dedup();
        classes
    }
}

/// Rows as smartcore's matrix.
pub fn matrix(rows: &[Vec<f64>]) -> Result<DenseMatrix<f64>> {
    if rows.is_empty() {
        return Err(Error::msg("the table has no rows"));
    }
    DenseMatrix::from_2d_vec(&rows.to_vec()).map_err(|e| Error::msg(format!("cannot make a matrix: {e}")))
}

fn check_columns(columns: &[String]) -> Result<()> {
    if columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
        return Err(Error::msg("the header line must name every column"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in columns {
        if !seen.insert(c) {
            return Err(Error::msg(format!("two columns are named '{c}'")));
        }
    }
    Ok(())
}

fn parse_row(record: &csv::StringRecord, line: usize, columns: &[String]) -> Result<Vec<f64>> {
    if record.len() != columns.len() {
        return Err(Error::msg(format!(
            "row {line} has {} fields, the header {}",
            record.len(),
            columns.len()
        )));
    }
    record
        .iter()
        .zip(columns)
        .map(|(cell, column)| {
            let cell = cell.trim();
            match cell.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(Error::msg(format!(
                    "row {line}, column '{column}': '{cell}' is not a finite number"
                ))),
            }
        })
        .collect()
}

/// The model file every `ml/*` training step writes (JSON): which
/// algorithm, the features it reads in order, the classes it predicts,
/// and the fitted model as smartcore serializes it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always "weft-ml-model".
    pub format: String,
    /// `logistic-regression`, `random-forest`, `k-nearest-neighbours`
    /// (classifiers), `random-forest-regression` or `k-means`.
    pub algorithm: String,
    pub features: Vec<String>,
    /// The column it predicts (a regressor, a classifier), or the label
    /// column a clustering left out of its features.
    pub target: String,
    /// A classifier's classes, or a clustering's clusters (0, 1, …);
    /// none for a regressor.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<u32>,
    /// Standardization fitted on the training rows and applied before the
    /// model, if the step was asked to (per feature: mean, standard deviation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    pub fitted: serde_json::Value,
}

pub const MODEL_FORMAT: &str = "weft-ml-model";

/// What a model does with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A class and each class's probability.
    Classification,
    /// A number.
    Regression,
    /// The nearest cluster.
    Clustering,
}

/// Per-feature mean and standard deviation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Scaling {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Scaling {
    /// Fitted on `rows` (a constant feature keeps a deviation of 1).
    pub fn fit(rows: &[Vec<f64>], width: usize) -> Scaling {
        let n = rows.len().max(1) as f64;
        let mean: Vec<f64> = (0..width).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let std = (0..width)
            .map(|j| {
                let var = rows.iter().map(|r| (r[j] - mean[j]).powi(2)).sum::<f64>() / n;
                if var > 0.0 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        Scaling { mean, std }
    }

    pub fn apply(&self, row: &[f64]) -> Vec<f64> {
        row.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }
}

/// A model's answer for each row.
#[derive(Debug, Clone, PartialEq)]
pub enum Predicted {
    /// Each row's class and its probability of each of the model's classes.
    Classes { labels: Vec<u32>, scores: Vec<Vec<f64>> },
    /// Each row's value.
    Values(Vec<f64>),
    /// Each row's cluster and its squared distance to that cluster's centre.
    Clusters { clusters: Vec<u32>, distances: Vec<f64> },
}

impl Predicted {
    /// How many rows.
    pub fn len(&self) -> usize {
        match self {
            Predicted::Classes { labels, .. } => labels.len(),
            Predicted::Values(v) => v.len(),
            Predicted::Clusters { clusters, .. } => clusters.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ModelFile {
    /// Parses a model file's bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<ModelFile> {
        let model: ModelFile =
            serde_json::from_slice(bytes).map_err(|e| Error::msg(format!("not a model of an ml/* step: {e}")))?;
        if model.format != MODEL_FORMAT {
            return Err(Error::msg(format!(
                "not a model of an ml/* step (format '{}')",
                model.format
            )));
        }
        let needs_classes = model.task()? != Task::Regression;
        if model.classes.is_empty() == needs_classes
            || model.features.is_empty()
            || model
                .scaling
                .as_ref()
                .is_some_and(|s| s.mean.len() != model.features.len() || s.std.len() != model.features.len())
        {
            return Err(Error::msg("the model's features, classes and scaling do not agree"));
        }
        Ok(model)
    }

    /// What the model does, by its algorithm.
    pub fn task(&self) -> Result<Task> {
        match self.algorithm.as_str() {
            "logistic-regression" | "random-forest" | "k-nearest-neighbours" => Ok(Task::Classification),
            "random-forest-regression" => Ok(Task::Regression),
            "k-means" => Ok(Task::Clustering),
            other => Err(Error::msg(format!("unknown algorithm '{other}'"))),
        }
    }

    /// A row in the model's feature order, scaled as the model was trained.
    pub fn scale(&self, row: Vec<f64>) -> Vec<f64> {
        match &self.scaling {
            Some(s) => s.apply(&row),
            None => row,
        }
    }

    /// The model file of `fitted`, trained on `features` (scaled by
    /// `scaling` if given); `classes` as [`ModelFile::classes`] says.
    pub fn trained(
        algorithm: &str,
        features: &[String],
        classes: Vec<u32>,
        target: &str,
        scaling: Option<Scaling>,
        fitted: &impl Serialize,
    ) -> Result<ModelFile> {
        Ok(ModelFile {
            format: MODEL_FORMAT.into(),
            algorithm: algorithm.into(),
            features: features.to_vec(),
            target: target.into(),
            classes,
            scaling,
            fitted: serde_json::to_value(fitted).map_err(|e| Error::msg(format!("cannot save the model: {e}")))?,
        })
    }

    /// What every training step does last: scores the model on its own
    /// training rows (`rows`, as the model reads them, and their `truth`
    /// if any) and logs the headline as `train_<metric>`, says what it
    /// trained, and writes output `model`.
    #[cfg(feature = "step")]
    pub fn write_trained(&self, rows: &[Vec<f64>], truth: Option<&[f64]>, what: &str) -> Result<()> {
        let report = self.report(&self.predict(rows)?, truth)?;
        let (metric, value) = report.headline();
        weft_sdk::log_metric(&format!("train_{metric}"), value);
        println!("{what} on {} rows: training {metric} {value:.4}", rows.len());
        weft_sdk::write_output_json("model", self).map_err(sdk)
    }

    #[cfg(feature = "step")]
    pub fn read(name: &str) -> Result<ModelFile> {
        let bytes = weft_sdk::read_input(name).map_err(sdk)?;
        ModelFile::from_slice(&bytes).map_err(|e| e.context(format!("input '{name}'")))
    }

    /// The rows of `table` in this model's feature order, found by name
    /// (other columns, the label's too, are ignored), scaled if the model
    /// was trained on scaled rows.
    pub fn rows(&self, table: &Table) -> Result<Vec<Vec<f64>>> {
        let order =
            self.features
                .iter()
                .map(|feature| {
                    table.columns.iter().position(|c| c == feature).ok_or_else(|| {
                        Error::msg(format!("the table has no column '{feature}', which the model reads"))
                    })
                })
                .collect::<Result<Vec<usize>>>()?;
        Ok(table
            .rows
            .iter()
            .map(|row| self.scale(order.iter().map(|&j| row[j]).collect()))
            .collect())
    }

    /// A table of the predictions: `predicted` and each class's
    /// probability `p_<class>` (a classifier), `predicted` (a regressor),
    /// or `cluster` and `distance` (a clustering).
    pub fn predictions(&self, predicted: &Predicted) -> Table {
        let (columns, rows): (Vec<String>, Vec<Vec<f64>>) = match predicted {
            Predicted::Classes { labels, scores } => (
                std::iter::once("predicted".to_string())
                    .chain(self.classes.iter().map(|c| format!("p_{c}")))
                    .collect(),
                labels
                    .iter()
                    .zip(scores)
                    .map(|(p, s)| std::iter::once(*p as f64).chain(s.iter().copied()).collect())
                    .collect(),
            ),
            Predicted::Values(values) => (vec!["predicted".into()], values.iter().map(|v| vec![*v]).collect()),
            Predicted::Clusters { clusters, distances } => (
                vec!["cluster".into(), "distance".into()],
                clusters
                    .iter()
                    .zip(distances)
                    .map(|(c, d)| vec![*c as f64, *d])
                    .collect(),
            ),
        };
        Table { columns, rows }
    }

    /// Scores `predicted` against `truth` (the target column's values):
    /// needed for a classifier or regressor; for a clustering, labels to
    /// compare the clusters with, if any.
    pub fn report(&self, predicted: &Predicted, truth: Option<&[f64]>) -> Result<Report> {
        let needs = || {
            truth.ok_or_else(|| {
                Error::msg(format!(
                    "the table has no column '{}' to score the model against",
                    self.target
                ))
            })
        };
        Ok(match predicted {
            Predicted::Classes { labels, scores } => {
                let truth = crate::labels(needs()?, &self.target)?;
                Report::Classification(class_report(&self.classes, &truth, labels, scores))
            }
            Predicted::Values(values) => Report::Regression(regression_report(needs()?, values)),
            Predicted::Clusters { clusters, distances } => {
                let truth = truth.map(|t| crate::labels(t, &self.target)).transpose()?;
                Report::Clustering(cluster_report(
                    self.classes.len(),
                    clusters,
                    distances,
                    truth.as_deref(),
                ))
            }
        })
    }
}

/// smartcore's fitted logistic regression, as weft's steps use it.
pub type Logistic = smartcore::linear::logistic_regression::LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>>;
/// smartcore's fitted random forest, as weft's steps use it.
pub type Forest =
    smartcore::ensemble::random_forest_classifier::RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
/// smartcore's fitted random forest regressor, as weft's steps use it.
pub type ForestRegressor =
    smartcore::ensemble::random_forest_regressor::RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;
/// smartcore's fitted k-nearest-neighbours classifier, as weft's steps use it.
pub type Knn = smartcore::neighbors::knn_classifier::KNNClassifier<
    f64,
    u32,
    DenseMatrix<f64>,
    Vec<u32>,
    smartcore::metrics::distance::euclidian::Euclidian<f64>,
>;
/// smartcore's fitted k-means, as weft's steps use it.
pub type KMeans = smartcore::cluster::kmeans::KMeans<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Tree = smartcore::tree::decision_tree_classifier::DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

/// The centres of a fitted k-means. smartcore keeps them private; its
/// serialized form holds them.
pub fn centroids(fitted: &serde_json::Value) -> Result<Vec<Vec<f64>>> {
    serde_json::from_value(fitted["centroids"].clone())
        .map_err(|e| Error::msg(format!("the model file does not hold a k-means: {e}")))
}

/// Each row's nearest centre and its squared distance to it.
pub fn nearest(rows: &[Vec<f64>], centroids: &[Vec<f64>]) -> (Vec<u32>, Vec<f64>) {
    rows.iter()
        .map(|row| {
            centroids
                .iter()
                .enumerate()
                .map(|(c, centre)| {
                    (
                        c as u32,
                        row.iter().zip(centre).map(|(a, b)| (a - b).powi(2)).sum::<f64>(),
                    )
                })
                .fold(
                    (0, f64::INFINITY),
                    |best, this| if this.1 < best.1 { this } else { best },
                )
        })
        .unzip()
}

impl ModelFile {
    /// The model's answer for each row (rows already in the model's
    /// feature order and scale).
    pub fn predict(&self, rows: &[Vec<f64>]) -> Result<Predicted> {
        use smartcore::linalg::basic::arrays::Array;
        let x = matrix(rows)?;
        let bad = |e: serde_json::Error| Error::msg(format!("the model file does not hold a {}: {e}", self.algorithm));
        let failed = |e: smartcore::error::Failed| Error::msg(format!("prediction failed: {e}"));
        let k = self.classes.len();
        let scores: Vec<Vec<f64>> = match self.algorithm.as_str() {
            "logistic-regression" => {
                let model: Logistic = serde_json::from_value(self.fitted.clone()).map_err(bad)?;
                let (w, b) = (model.coefficients(), model.intercept());
                rows.iter()
                    .map(|row| {
                        let logit = |c: usize| {
                            row.iter().enumerate().map(|(j, v)| v * w.get((c, j))).sum::<f64>() + b.get((c, 0))
                        };
                        if k == 2 {
                            let p = 1.0 / (1.0 + (-logit(0)).exp());
                            vec![1.0 - p, p]
                        } else {
                            let z: Vec<f64> = (0..k).map(logit).collect();
                            let top = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                            let e: Vec<f64> = z.iter().map(|v| (v - top).exp()).collect();
                            let sum: f64 = e.iter().sum();
                            e.iter().map(|v| v / sum).collect()
                        }
                    })
                    .collect()
            }
            "random-forest" => {
                // The forest's trees are private in smartcore; its serialized
                // form holds them. A row's probability of a class is the
                // share of the trees that vote for it.
                let trees: Vec<Tree> = serde_json::from_value(self.fitted["trees"].clone()).map_err(bad)?;
                if trees.is_empty() {
                    return Err(Error::msg("the forest has no trees"));
                }
                let mut sum = vec![vec![0.0; k]; rows.len()];
                for tree in &trees {
                    // Each tree votes (its leaf's class, as a one-hot row)
                    // over the forest's classes, in the same sorted order.
                    let p = tree.predict_proba(&x).map_err(failed)?;
                    if p.shape().1 != k {
                        return Err(Error::msg("a tree of the forest knows other classes than the model"));
                    }
                    for (r, row) in sum.iter_mut().enumerate() {
                        for (c, v) in row.iter_mut().enumerate() {
                            *v += p.get((r, c));
                        }
                    }
                }
                sum.into_iter()
                    .map(|row| row.into_iter().map(|v| v / trees.len() as f64).collect())
                    .collect()
            }
            "k-nearest-neighbours" => {
                // Its classes are the training labels, sorted: the model's.
                let model: Knn = serde_json::from_value(self.fitted.clone()).map_err(bad)?;
                let p = model.predict_proba(&x).map_err(failed)?;
                if p.iter().any(|row| row.len() != k) {
                    return Err(Error::msg("the neighbours know other classes than the model"));
                }
                p
            }
            "random-forest-regression" => {
                let model: ForestRegressor = serde_json::from_value(self.fitted.clone()).map_err(bad)?;
                return Ok(Predicted::Values(model.predict(&x).map_err(failed)?));
            }
            "k-means" => {
                let centroids = centroids(&self.fitted)?;
                if centroids.len() != k || centroids.iter().any(|c| c.len() != self.features.len()) {
                    return Err(Error::msg("the clustering's centres do not agree with its features"));
                }
                let (clusters, distances) = nearest(rows, &centroids);
                return Ok(Predicted::Clusters { clusters, distances });
            }
            other => return Err(Error::msg(format!("unknown algorithm '{other}'"))),
        };
        let labels = scores
            .iter()
            .map(|s| {
                let best = (0..k).fold(0, |b, c| if s[c] > s[b] { c } else { b });
                self.classes[best]
            })
            .collect();
        Ok(Predicted::Classes { labels, scores })
    }
}

/// A model's scores on a table, as ml/evaluate writes them (JSON).
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Report {
    Classification(ClassReport),
    Regression(RegressionReport),
    Clustering(ClusterReport),
}

impl Report {
    /// The metric a step names first: accuracy, R² or inertia.
    pub fn headline(&self) -> (&'static str, f64) {
        match self {
            Report::Classification(r) => ("accuracy", r.accuracy),
            Report::Regression(r) => ("r2", r.r2),
            Report::Clustering(r) => ("inertia", r.inertia),
        }
    }

    /// Every number to log as a metric, by name.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut m = Vec::new();
        match self {
            Report::Classification(r) => {
                m.push(("accuracy".to_string(), r.accuracy));
                m.extend(r.roc_auc.map(|a| ("roc_auc".to_string(), a)));
                for (class, s) in &r.per_class {
                    m.push((format!("precision_{class}"), s.precision));
                    m.push((format!("recall_{class}"), s.recall));
                    m.push((format!("f1_{class}"), s.f1));
                }
            }
            Report::Regression(r) => {
                m.extend([
                    ("rmse".to_string(), r.rmse),
                    ("mae".to_string(), r.mae),
                    ("r2".to_string(), r.r2),
                ]);
            }
            Report::Clustering(r) => {
                m.push(("inertia".to_string(), r.inertia));
                m.extend(r.adjusted_rand.map(|a| ("adjusted_rand".to_string(), a)));
                m.extend(r.purity.map(|p| ("purity".to_string(), p)));
            }
        }
        m
    }

    /// One line for the step's log.
    pub fn summary(&self) -> String {
        match self {
            Report::Classification(r) => format!(
                "accuracy {:.4}{}",
                r.accuracy,
                r.roc_auc.map(|a| format!(", ROC AUC {a:.4}")).unwrap_or_default()
            ),
            Report::Regression(r) => format!("RMSE {:.4}, MAE {:.4}, R² {:.4}", r.rmse, r.mae, r.r2),
            Report::Clustering(r) => format!(
                "inertia {:.4}, cluster sizes {:?}{}",
                r.inertia,
                r.sizes,
                r.adjusted_rand
                    .map(|a| format!(", adjusted Rand index {a:.4}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// Classification metrics of predictions against labels.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClassReport {
    pub rows: usize,
    pub accuracy: f64,
    /// Per class: precision, recall, F1 and how many rows have it.
    pub per_class: BTreeMap<u32, ClassScores>,
    /// ROC AUC: of the positive class with two classes, else the mean of
    /// each class against the rest (macro one-vs-rest).
    pub roc_auc: Option<f64>,
    /// `confusion[i][j]`: rows of class `classes[i]` predicted `classes[j]`.
    pub classes: Vec<u32>,
    pub confusion: Vec<Vec<u64>>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// Regression metrics of predicted values against the true ones.
#[derive(Debug, Serialize, PartialEq)]
pub struct RegressionReport {
    pub rows: usize,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// The coefficient of determination: 1 - residual / total sum of
    /// squares (1 for a perfect fit, 0 for the mean's, negative below).
    pub r2: f64,
}

/// How rows fall into clusters, and how the clusters agree with labels.
#[derive(Debug, Serialize, PartialEq)]
pub struct ClusterReport {
    pub rows: usize,
    /// The sum of each row's squared distance to its cluster's centre.
    pub inertia: f64,
    /// Rows per cluster.
    pub sizes: Vec<u64>,
    /// With labels: the adjusted Rand index of clusters against them (1
    /// when they agree up to naming, about 0 for a random assignment).
    pub adjusted_rand: Option<f64>,
    /// With labels: the share of rows whose cluster's most common label
    /// is their own.
    pub purity: Option<f64>,
}

/// Scores `predicted` against `truth`; `scores[r][c]` is row r's
/// probability of `classes[c]`.
pub fn class_report(classes: &[u32], truth: &[u32], predicted: &[u32], scores: &[Vec<f64>]) -> ClassReport {
    let k = classes.len();
    let index = |c: u32| classes.iter().position(|&x| x == c);
    let mut confusion = vec![vec![0u64; k]; k];
    for (&t, &p) in truth.iter().zip(predicted) {
        if let (Some(i), Some(j)) = (index(t), index(p)) {
            confusion[i][j] += 1;
        }
    }
    let correct = truth.iter().zip(predicted).filter(|(t, p)| t == p).count();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let per_class = classes
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let tp = confusion[i][i];
            let predicted_c: u64 = confusion.iter().map(|row| row[i]).sum();
            let actual_c: u64 = confusion[i].iter().sum();
            let (precision, recall) = (ratio(tp, predicted_c), ratio(tp, actual_c));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            (
                c,
                ClassScores {
                    precision,
                    recall,
                    f1,
                    support: actual_c,
                },
            )
        })
        .collect();
    let roc_auc = match k {
        0 | 1 => None,
        2 => roc_auc(truth, classes[1], &scores.iter().map(|s| s[1]).collect::<Vec<_>>()),
        _ => {
            let each: Option<Vec<f64>> = (0..k)
                .map(|c| roc_auc(truth, classes[c], &scores.iter().map(|s| s[c]).collect::<Vec<_>>()))
                .collect();
            each.map(|v| v.iter().sum::<f64>() / k as f64)
        }
    };
    ClassReport {
        rows: truth.len(),
        accuracy: ratio(correct as u64, truth.len() as u64),
        per_class,
        roc_auc,
        classes: classes.to_vec(),
        confusion,
    }
}

/// The area under the ROC curve of `score` for `positive` against every
/// other label (the Mann-Whitney statistic; tied scores count one half).
/// `None` when the labels hold only one side.
pub fn roc_auc(truth: &[u32], positive: u32, score: &[f64]) -> Option<f64> {
    let mut order: Vec<usize> = (0..truth.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank = vec![0.0; truth.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &r in &order[i..=j] {
            rank[r] = average;
        }
        i = j + 1;
    }
    let positives = truth.iter().filter(|&&t| t == positive).count() as f64;
    let negatives = truth.len() as f64 - positives;
    if positives == 0.0 || negatives == 0.0 {
        return None;
    }
    let rank_sum: f64 = truth
        .iter()
        .zip(&rank)
        .filter(|(&t, _)| t == positive)
        .map(|(_, r)| r)
        .sum();
    Some((rank_sum - positives * (positives + 1.0) / 2.0) / (positives * negatives))
}

/// RMSE, MAE and R² of `predicted` against `truth`.
pub fn regression_report(truth: &[f64], predicted: &[f64]) -> RegressionReport {
    let n = truth.len().max(1) as f64;
    let residual: f64 = truth.iter().zip(predicted).map(|(t, p)| (t - p).powi(2)).sum();
    let mean = truth.iter().sum::<f64>() / n;
    let total: f64 = truth.iter().map(|t| (t - mean).powi(2)).sum();
    RegressionReport {
        rows: truth.len(),
        rmse: (residual / n).sqrt(),
        mae: truth.iter().zip(predicted).map(|(t, p)| (t - p).abs()).sum::<f64>() / n,
        // A constant truth: a perfect fit scores 1, any other 0 (as
        // scikit-learn does), never a division by zero.
        r2: if total > 0.0 {
            1.0 - residual / total
        } else if residual == 0.0 {
            1.0
        } else {
            0.0
        },
    }
}

/// How `clusters` (0..k) group the rows, against `truth` labels if given.
pub fn cluster_report(k: usize, clusters: &[u32], distances: &[f64], truth: Option<&[u32]>) -> ClusterReport {
    let mut sizes = vec![0u64; k];
    for &c in clusters {
        if let Some(s) = sizes.get_mut(c as usize) {
            *s += 1;
        }
    }
    let (adjusted_rand, purity) = match truth {
        Some(truth) => {
            // The contingency table: rows per (label, cluster).
            let mut table: BTreeMap<(u32, u32), u64> = BTreeMap::new();
            for (&t, &c) in truth.iter().zip(clusters) {
                *table.entry((t, c)).or_default() += 1;
            }
            let mut by_label: BTreeMap<u32, u64> = BTreeMap::new();
            let mut by_cluster: BTreeMap<u32, u64> = BTreeMap::new();
            let mut top: BTreeMap<u32, u64> = BTreeMap::new();
            for (&(t, c), &n) in &table {
                *by_label.entry(t).or_default() += n;
                *by_cluster.entry(c).or_default() += n;
                let best = top.entry(c).or_default();
                *best = (*best).max(n);
            }
            let pairs = |n: u64| (n * n.saturating_sub(1)) as f64 / 2.0;
            let index: f64 = table.values().map(|&n| pairs(n)).sum();
            let a: f64 = by_label.values().map(|&n| pairs(n)).sum();
            let b: f64 = by_cluster.values().map(|&n| pairs(n)).sum();
            let all = pairs(truth.len() as u64);
            let expected = if all > 0.0 { a * b / all } else { 0.0 };
            let max = (a + b) / 2.0;
            let ari = if max == expected {
                1.0
            } else {
                (index - expected) / (max - expected)
            };
            let purity = top.values().sum::<u64>() as f64 / truth.len().max(1) as f64;
            (Some(ari), Some(purity))
        }
        None => (None, None),
    };
    ClusterReport {
        rows: clusters.len(),
        inertia: distances.iter().sum(),
        sizes,
        adjusted_rand,
        purity,
    }
}

impl Table {
    /// The table with column `name` replaced by one indicator column per
    /// distinct value (`name=value`, 1 or 0), in the order of the values.
    pub fn one_hot(&self, name: &str) -> Result<Table> {
        let j = self.column(name)?;
        let mut values: Vec<f64> = self.rows.iter().map(|r| r[j]).collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        if values.len() > MAX_CATEGORIES {
            return Err(Error::invalid_params(format!(
                "column '{name}' has {} distinct values, more than the {MAX_CATEGORIES} one-hot encodes: is it a category?",
                values.len()
            )));
        }
        let names: Vec<String> = values.iter().map(|v| format!("{name}={v}")).collect();
        let mut columns = self.columns.clone();
        columns.splice(j..=j, names);
        check_columns(&columns)?;
        let rows = self
            .rows
            .iter()
            .map(|r| {
                let mut row = r.clone();
                let v = r[j];
                row.splice(j..=j, values.iter().map(|u| if *u == v { 1.0 } else { 0.0 }));
                row
            })
            .collect();
        Ok(Table { columns, rows })
    }
}

/// The most distinct values a column one-hot encodes (a guard against
/// encoding a numeric column by mistake into a table of thousands of columns).
pub const MAX_CATEGORIES: usize = 1000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_parse_and_refuse_what_is_not_a_table() {
        let t = Table::from_reader("a,b,target\n1,2.5,0\n3,4,1\n".as_bytes()).unwrap();
        assert_eq!(t.columns, ["a", "b", "target"]);
        assert_eq!(t.rows, [vec![1.0, 2.5, 0.0], vec![3.0, 4.0, 1.0]]);
        let l = t.features_and_labels("target").unwrap();
        assert_eq!((l.features, l.y), (vec!["a".to_string(), "b".to_string()], vec![0, 1]));
        for bad in ["a,a\n1,2\n", "a,b\n1\n", "a,b\n1,x\n", "a,\n1,2\n", "a,b\n1,NaN\n"] {
            assert!(Table::from_reader(bad.as_bytes()).is_err(), "{bad:?}");
        }
        let t = Table::from_reader("a,target\n1,0.5\n".as_bytes()).unwrap();
        assert!(t.features_and_labels("target").is_err());
        assert!(t.features_and_labels("label").is_err());
    }

    #[test]
    fn roc_auc_matches_its_definition() {
        assert_eq!(roc_auc(&[0, 0, 1, 1], 1, &[0.1, 0.4, 0.35, 0.8]), Some(0.75));
        assert_eq!(roc_auc(&[0, 1], 1, &[0.5, 0.5]), Some(0.5));
        assert_eq!(roc_auc(&[1, 1], 1, &[0.1, 0.2]), None);
    }

    #[test]
    fn the_report_counts_per_class() {
        let r = class_report(
            &[0, 1],
            &[0, 0, 1, 1],
            &[0, 1, 1, 1],
            &[vec![0.9, 0.1], vec![0.4, 0.6], vec![0.2, 0.8], vec![0.1, 0.9]],
        );
        assert_eq!(r.accuracy, 0.75);
        assert_eq!(r.confusion, [vec![1, 1], vec![0, 2]]);
        assert_eq!(r.per_class[&1].precision, 2.0 / 3.0);
        assert_eq!(r.per_class[&0].recall, 0.5);
        assert_eq!(r.roc_auc, Some(1.0));
    }

    #[test]
    fn regression_and_clustering_scores_match_scikit_learn() {
        // sklearn.metrics.r2_score([3, -0.5, 2, 7], [2.5, 0.0, 2, 8])
        let r = regression_report(&[3.0, -0.5, 2.0, 7.0], &[2.5, 0.0, 2.0, 8.0]);
        assert!((r.r2 - 0.9486081370449679).abs() < 1e-12, "{r:?}");
        assert_eq!((r.mae, r.rmse), (0.5, 0.375f64.sqrt()));
        assert_eq!(regression_report(&[1.0, 1.0], &[1.0, 1.0]).r2, 1.0);
        // sklearn.metrics.adjusted_rand_score(truth, clusters)
        let ari = |t: &[u32], c: &[u32]| {
            cluster_report(3, c, &vec![1.0; c.len()], Some(t))
                .adjusted_rand
                .unwrap()
        };
        assert!((ari(&[0, 0, 1, 1], &[0, 0, 1, 2]) - 0.5714285714285714).abs() < 1e-12);
        assert!((ari(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]) - 0.24242424242424243).abs() < 1e-12);
        assert_eq!(ari(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        let r = cluster_report(3, &[0, 0, 1, 2], &[0.5, 0.5, 1.0, 2.0], Some(&[0, 1, 1, 1]));
        assert_eq!((r.inertia, r.sizes.clone(), r.purity), (4.0, vec![2, 1, 1], Some(0.75)));
    }

    #[test]
    fn one_hot_replaces_a_column_by_its_values() {
        let t = Table::from_reader("a,kind,target\n1,2,0\n3,0,1\n5,2,1\n".as_bytes()).unwrap();
        let t = t.one_hot("kind").unwrap();
        assert_eq!(t.columns, ["a", "kind=0", "kind=2", "target"]);
        assert_eq!(
            t.rows,
            [
                vec![1.0, 0.0, 1.0, 0.0],
                vec![3.0, 1.0, 0.0, 1.0],
                vec![5.0, 0.0, 1.0, 1.0]
            ]
        );
        assert!(t.one_hot("nope").is_err());
        let many = Table {
            columns: vec!["x".into()],
            rows: (0..=MAX_CATEGORIES).map(|i| vec![i as f64]).collect(),
        };
        assert!(many.one_hot("x").is_err());
    }

    #[test]
    fn a_model_file_says_its_task_and_is_checked() {
        let f = |algorithm: &str, classes: &str| {
            ModelFile::from_slice(
                format!(
                    r#"{{"format":"weft-ml-model","algorithm":"{algorithm}","features":["a"],"target":"t",{classes}"fitted":{{}}}}"#
                )
                .as_bytes(),
            )
        };
        assert_eq!(
            f("random-forest", r#""classes":[0,1],"#).unwrap().task(),
            Ok(Task::Classification)
        );
        assert_eq!(f("random-forest-regression", "").unwrap().task(), Ok(Task::Regression));
        assert_eq!(
            f("k-means", r#""classes":[0,1,2],"#).unwrap().task(),
            Ok(Task::Clustering)
        );
        assert!(f("random-forest", "").is_err());
        assert!(f("random-forest-regression", r#""classes":[0,1],"#).is_err());
        assert!(f("boosting", r#""classes":[0,1],"#).is_err());
    }
}
