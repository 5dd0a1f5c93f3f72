//! weft's library of ready-made steps.
//!
//! The steps are Rust crates in `steps/` (on smartcore, a pure-Rust ML
//! crate), built for wasm32-wasip2 by this crate's build script and
//! embedded in the `weft` binary: a user with nothing but `weft` writes
//!
//! ```toml
//! [steps.forest]
//! uses = "ml/random-forest"
//! inputs = { train = "split.train" }
//! params = { n_trees = 100, seed = 1 }
//! ```
//!
//! and gets a component pinned by digest like any other (the digest changes
//! only when the step's code does). To run, a step's bytes are written once
//! to the library directory ([`default_dir`]) under their digest.

use std::path::{Path, PathBuf};

/// One component of the library.
#[derive(Debug)]
pub struct LibraryStep {
    /// What `uses` (or `served_by`) names, e.g. `ml/random-forest`.
    pub name: &'static str,
    /// A pipeline step, or a model server (the `weft:inference` world).
    pub kind: Kind,
    /// One line on what it does.
    pub summary: &'static str,
    /// The inputs it reads.
    pub inputs: &'static [&'static str],
    /// The outputs it writes, with their media types.
    pub outputs: &'static [(&'static str, &'static str)],
    /// Its params, for `weft library`: `name=default: meaning`.
    pub params: &'static [&'static str],
    bytes: &'static [u8],
    digest: std::sync::OnceLock<String>,
}

/// What a library component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A step (`uses = "ml/split"`).
    Step,
    /// A model server (`served_by = "ml/model-server"`).
    ModelServer,
}

const CSV: &str = "text/csv";
const JSON: &str = "application/json";

macro_rules! component {
    ($stem:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $stem, ".wasm"))
    };
}

static STEPS: [LibraryStep; 13] = [
    LibraryStep {
        kind: Kind::Step,
        name: "ml/read-csv",
        summary: "reads a CSV file into weft's table (numbers, a header line, the label column named target); text features are one-hot encoded",
        inputs: &["raw"],
        outputs: &[("table", CSV)],
        params: &[
            "target=<last column>: the label column's name or 0-based index",
            "header=auto: names, none, sklearn (n_samples,n_features,class names) or auto",
            "columns=<the header's>: names for the file's columns, in order",
        ],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_read_csv"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/read-parquet",
        summary: "reads a Parquet file (uncompressed, Snappy, gzip or LZ4) into weft's table; string features are one-hot encoded",
        inputs: &["raw"],
        outputs: &[("table", CSV)],
        params: &["target=<last column>: the label column's name or 0-based index"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_read_parquet"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/split",
        summary: "a seeded split into train and test, stratified by class",
        inputs: &["table"],
        outputs: &[("train", CSV), ("test", CSV)],
        params: &[
            "test_fraction=0.25",
            "seed=0",
            "target=target",
            "stratify=true: false for a numeric target",
        ],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_split"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/standardize",
        summary: "scales each feature to mean 0, deviation 1, fitted on train, applied to train and test",
        inputs: &["train", "test"],
        outputs: &[("train", CSV), ("test", CSV), ("scaling", JSON)],
        params: &["target=target"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_standardize"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/one-hot",
        summary: "replaces category columns (coded as numbers) by one 0/1 column per value, name=value",
        inputs: &["table"],
        outputs: &[("table", CSV)],
        params: &["columns=<required>: the columns to encode"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_one_hot"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/logistic-regression",
        summary: "logistic regression (binary or multinomial), standardized inside the model by default",
        inputs: &["train"],
        outputs: &[("model", JSON)],
        params: &["alpha=0: L2 penalty", "standardize=true", "target=target"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_logistic_regression"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/random-forest",
        summary: "a seeded random forest: a classifier, or a regressor with task = \"regression\"",
        inputs: &["train"],
        outputs: &[("model", JSON)],
        params: &[
            "task=classification: or regression",
            "n_trees=100",
            "max_depth=<none>",
            "min_samples_leaf=1",
            "min_samples_split=2",
            "max_features=<sqrt of the features; a third for regression>",
            "seed=0",
            "target=target",
        ],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_random_forest"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/k-nearest-neighbours",
        summary: "a k-nearest-neighbours classifier (Euclidean), standardized inside the model by default",
        inputs: &["train"],
        outputs: &[("model", JSON)],
        params: &["k=5", "standardize=true", "target=target"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_k_nearest_neighbours"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/k-means",
        summary: "k-means clustering (k-means++ starts, the best of n_init seeds); the label column, if any, only scores it",
        inputs: &["table"],
        outputs: &[("model", JSON)],
        params: &[
            "k=<required>: the number of clusters",
            "n_init=10",
            "max_iter=300",
            "standardize=false",
            "seed=0",
            "target=target",
        ],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_k_means"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/evaluate",
        summary: "scores a model on test: accuracy, ROC AUC, precision/recall/F1 per class, confusion (a classifier); RMSE, MAE, R² (a regressor); inertia, adjusted Rand index, purity (a clustering)",
        inputs: &["model", "test"],
        outputs: &[("report", JSON), ("predictions", CSV)],
        params: &[],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_evaluate"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/predict",
        summary: "applies a model to a table (features found by name): each row's class and class probabilities, value, or cluster",
        inputs: &["model", "table"],
        outputs: &[("predictions", CSV)],
        params: &[],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_predict"),
    },
    LibraryStep {
        kind: Kind::Step,
        name: "ml/choose",
        summary: "keeps the better of two models by a metric of their ml/evaluate reports",
        inputs: &["model_a", "report_a", "model_b", "report_b"],
        outputs: &[("model", JSON), ("choice", JSON)],
        params: &["metric=accuracy: or roc_auc, r2 (higher is better), rmse, mae (lower is better)"],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_choose"),
    },
    LibraryStep {
        kind: Kind::ModelServer,
        name: "ml/model-server",
        summary: "serves a model of an ml/* training step: each row's class (with {\"probabilities\": true} each class's probability), value or cluster",
        inputs: &[],
        outputs: &[],
        params: &[],
        digest: std::sync::OnceLock::new(),
        bytes: component!("ml_model_server"),
    },
];

/// Every step of the library.
pub fn all() -> &'static [LibraryStep] {
    &STEPS
}

/// The library component `name` names (`ml/random-forest`).
pub fn get(name: &str) -> Option<&'static LibraryStep> {
    STEPS.iter().find(|s| s.name == name)
}

/// The model server `name` names (`ml/model-server`), if it is one.
pub fn model_server(name: &str) -> Option<&'static LibraryStep> {
    get(name).filter(|s| s.kind == Kind::ModelServer)
}

/// Why a library step could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error("cannot write weft's library step {name} to {path}: {source}")]
    Write {
        name: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot tell where to keep weft's library steps: set WEFT_LIBRARY_DIR (or HOME)")]
    NoDirectory,
}

impl LibraryStep {
    /// The component's bytes.
    pub fn bytes(&self) -> &'static [u8] {
        self.bytes
    }

    /// The component's digest (blake3, hex), as a run records it:
    /// computed once per process.
    pub fn digest(&self) -> String {
        self.digest
            .get_or_init(|| blake3::hash(self.bytes).to_hex().to_string())
            .clone()
    }

    /// The component as a file in `dir`, named by its digest, written
    /// (atomically) if it is not there yet.
    pub fn materialize(&self, dir: &Path) -> Result<PathBuf, LibraryError> {
        let digest = self.digest();
        let path = dir.join(format!("{}-{}.wasm", self.name.replace('/', "-"), &digest[..16]));
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == self.bytes.len() as u64) {
            return Ok(path);
        }
        let failed = |source| LibraryError::Write {
            name: self.name,
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(failed)?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(failed)?;
        std::io::Write::write_all(&mut file, self.bytes).map_err(failed)?;
        file.persist(&path).map_err(|e| failed(e.error))?;
        Ok(path)
    }
}

/// Where library steps are written to run: `WEFT_LIBRARY_DIR`, else
/// `$XDG_CACHE_HOME/weft/library`, else `~/.cache/weft/library` (a cache:
/// deleting it costs one write per step at the next run).
pub fn default_dir() -> Result<PathBuf, LibraryError> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("WEFT_LIBRARY_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(cache) = var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(cache).join("weft/library"));
    }
    var("HOME")
        .map(|home| PathBuf::from(home).join(".cache/weft/library"))
        .ok_or(LibraryError::NoDirectory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_is_a_component_and_is_written_once_under_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        for step in all() {
            // The component model's preamble: a component, not a core module.
            assert_eq!(&step.bytes()[..8], b"\0asm\x0d\0\x01\0", "{}", step.name);
            let path = step.materialize(dir.path()).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), step.bytes());
            assert!(path.to_string_lossy().contains(&step.digest()[..16]));
            assert_eq!(step.materialize(dir.path()).unwrap(), path);
        }
        assert!(get("ml/random-forest").is_some());
        assert!(get("ml/nope").is_none());
    }
}
