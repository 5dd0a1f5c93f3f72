//! What the `ml/*` steps share: the table they pass each other, the model
//! file they write, and the metrics they report.
//!
//! **The table** is CSV (RFC 4180, comma-separated, UTF-8) whose first line
//! names the columns; every other line is one row of numbers. The label
//! column is named by the steps' `target` param (`target` unless given).
//! Any language reads and writes it (`csv` in Python's standard library,
//! a split on commas in JavaScript), and the dashboard previews it as CSV.

use std::collections::BTreeMap;

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

    /// The features (every column but `target`, in order) and the labels.
    pub fn features_and_labels(&self, target: &str) -> Result<Labelled> {
        let t = self.column(target)?;
        let features = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != t)
            .map(|(_, c)| c.clone())
            .collect::<Vec<_>>();
        if features.is_empty() {
            return Err(Error::msg("the table has no feature column besides its target"));
        }
        let mut x = Vec::with_capacity(self.rows.len());
        let mut y = Vec::with_capacity(self.rows.len());
        for (i, row) in self.rows.iter().enumerate() {
            let label = row[t];
            if label < 0.0 || label.fract() != 0.0 || label > u32::MAX as f64 {
                return Err(Error::msg(format!(
                    "row {}: the target '{target}' is {label}; classes are whole numbers 0, 1, 2, …",
                    i + 1
                )));
            }
            y.push(label as u32);
            x.push(
                row.iter()
                    .enumerate()
                    .filter(|(j, _)| *j != t)
                    .map(|(_, v)| *v)
                    .collect(),
            );
        }
        Ok(Labelled { features, x, y })
    }
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
        if !standardize {
            return Ok((None, self.x.clone()));
        }
        let scaling = Scaling::fit(&self.x, self.features.len());
        let rows = self.x.iter().map(|r| scaling.apply(r)).collect();
        Ok((Some(scaling), rows))
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
    /// `logistic-regression` or `random-forest`.
    pub algorithm: String,
    pub features: Vec<String>,
    pub target: String,
    pub classes: Vec<u32>,
    /// Standardization fitted on the training rows and applied before the
    /// model, if the step was asked to (per feature: mean, standard deviation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    pub fitted: serde_json::Value,
}

pub const MODEL_FORMAT: &str = "weft-ml-model";

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
        if model.classes.is_empty()
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

    /// A row in the model's feature order, scaled as the model was trained.
    pub fn scale(&self, row: Vec<f64>) -> Vec<f64> {
        match &self.scaling {
            Some(s) => s.apply(&row),
            None => row,
        }
    }

    /// The model file of `fitted`, trained on `data` (scaled by `scaling`
    /// if given).
    pub fn trained(
        algorithm: &str,
        data: &Labelled,
        target: &str,
        scaling: Option<Scaling>,
        fitted: &impl Serialize,
    ) -> Result<ModelFile> {
        Ok(ModelFile {
            format: MODEL_FORMAT.into(),
            algorithm: algorithm.into(),
            features: data.features.clone(),
            target: target.into(),
            classes: data.classes(),
            scaling,
            fitted: serde_json::to_value(fitted).map_err(|e| Error::msg(format!("cannot save the model: {e}")))?,
        })
    }

    /// What every training step does last: logs the accuracy on its own
    /// training rows (`rows`, as the model reads them), says what it
    /// trained, and writes output `model`.
    #[cfg(feature = "step")]
    pub fn write_trained(&self, rows: &[Vec<f64>], labels: &[u32], what: &str) -> Result<()> {
        let (predicted, _) = self.predict(rows)?;
        let accuracy = predicted.iter().zip(labels).filter(|(p, y)| p == y).count() as f64 / labels.len() as f64;
        weft_sdk::log_metric("train_accuracy", accuracy);
        println!("{what} on {} rows: training accuracy {accuracy:.4}", labels.len());
        weft_sdk::write_output_json("model", self).map_err(sdk)
    }

    #[cfg(feature = "step")]
    pub fn read(name: &str) -> Result<ModelFile> {
        let model: ModelFile = weft_sdk::read_input_json(name).map_err(sdk)?;
        if model.format != MODEL_FORMAT {
            return Err(Error::msg(format!(
                "input '{name}' is not a model written by an ml/* step (format '{}')",
                model.format
            )));
        }
        Ok(model)
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

    /// [`ModelFile::rows`] and the rows' labels.
    pub fn inputs(&self, table: &Table) -> Result<(Vec<Vec<f64>>, Vec<u32>)> {
        let labels = table.features_and_labels(&self.target)?.y;
        Ok((self.rows(table)?, labels))
    }

    /// A table of each row's predicted class (`predicted`) and its
    /// probability of each class (`p_<class>`).
    pub fn predictions(&self, labels: &[u32], scores: &[Vec<f64>]) -> Table {
        let mut columns = vec!["predicted".to_string()];
        columns.extend(self.classes.iter().map(|c| format!("p_{c}")));
        Table {
            columns,
            rows: labels
                .iter()
                .zip(scores)
                .map(|(p, s)| std::iter::once(*p as f64).chain(s.iter().copied()).collect())
                .collect(),
        }
    }
}

/// smartcore's fitted logistic regression, as weft's steps use it.
pub type Logistic = smartcore::linear::logistic_regression::LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>>;
/// smartcore's fitted random forest, as weft's steps use it.
pub type Forest =
    smartcore::ensemble::random_forest_classifier::RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
/// smartcore's fitted k-nearest-neighbours classifier, as weft's steps use it.
pub type Knn = smartcore::neighbors::knn_classifier::KNNClassifier<
    f64,
    u32,
    DenseMatrix<f64>,
    Vec<u32>,
    smartcore::metrics::distance::euclidian::Euclidian<f64>,
>;
type Tree = smartcore::tree::decision_tree_classifier::DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;

impl ModelFile {
    /// The predicted class of each row and its probability of each of
    /// `classes` (rows already in the model's feature order and scale).
    pub fn predict(&self, rows: &[Vec<f64>]) -> Result<(Vec<u32>, Vec<Vec<f64>>)> {
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
            other => return Err(Error::msg(format!("unknown algorithm '{other}'"))),
        };
        let labels = scores
            .iter()
            .map(|s| {
                let best = (0..k).fold(0, |b, c| if s[c] > s[b] { c } else { b });
                self.classes[best]
            })
            .collect();
        Ok((labels, scores))
    }
}

/// Classification metrics of predictions against labels.
#[derive(Debug, Serialize, PartialEq)]
pub struct Report {
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

/// Scores `predicted` against `truth`; `scores[r][c]` is row r's
/// probability of `classes[c]`.
pub fn report(classes: &[u32], truth: &[u32], predicted: &[u32], scores: &[Vec<f64>]) -> Report {
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
    Report {
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
        let r = report(
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
}
