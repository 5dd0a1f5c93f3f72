//! Finding the manifest and opening the stores.

use std::path::{Path, PathBuf};

use weft_artifacts::ArtifactStore;
use weft_store::{Store, StoreError};

use crate::exit;

/// An error with the exit code it maps to.
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn usage(message: impl std::fmt::Display) -> Self {
        Self {
            code: exit::USAGE,
            message: message.to_string(),
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NotFound { .. } | StoreError::Ambiguous { .. } => exit::NOT_FOUND,
            _ => exit::USAGE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<weft_artifacts::ArtifactError> for CliError {
    fn from(e: weft_artifacts::ArtifactError) -> Self {
        let code = match e {
            weft_artifacts::ArtifactError::Missing(_) => exit::NOT_FOUND,
            _ => exit::USAGE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

pub type CliResult<T> = Result<T, CliError>;

/// The manifest named with -f, or weft.toml here or in a parent directory.
pub fn find_manifest(explicit: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(path) = explicit {
        if path.is_dir() {
            return Ok(path.join("weft.toml"));
        }
        return Ok(path.to_owned());
    }
    let cwd =
        std::env::current_dir().map_err(|e| CliError::usage(format!("cannot read the current directory: {e}")))?;
    for dir in cwd.ancestors() {
        let candidate = dir.join("weft.toml");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(CliError::usage(
        "no weft.toml here or in any parent directory; create one with `weft init` or pass -f PATH",
    ))
}

/// The state directory: --state-dir/WEFT_DIR, else `.weft` beside the manifest.
pub fn state_dir(explicit: Option<&Path>, manifest: Option<&Path>) -> CliResult<PathBuf> {
    if let Some(dir) = explicit {
        return Ok(dir.to_owned());
    }
    let manifest = match manifest {
        Some(m) => Some(m.to_owned()),
        None => find_manifest(None).ok(),
    };
    Ok(match manifest {
        Some(m) => m
            .parent()
            .map(|p| p.join(".weft"))
            .unwrap_or_else(|| PathBuf::from(".weft")),
        None => PathBuf::from(".weft"),
    })
}

/// The stores of a state directory, created on first use.
pub struct Stores {
    pub store: Store,
    pub artifacts: ArtifactStore,
}

impl Stores {
    pub async fn open(dir: &Path) -> CliResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::usage(format!("cannot create the state directory {}: {e}", dir.display())))?;
        let db = dir.join("weft.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .map_err(|e| CliError::usage(format!("cannot open the database {}: {e}", db.display())))?;
        let artifacts = ArtifactStore::local(&dir.join("artifacts"))?;
        Ok(Self { store, artifacts })
    }

    /// Opens the stores only if the state directory exists (read-only commands).
    pub async fn open_existing(dir: &Path) -> CliResult<Self> {
        if !dir.join("weft.db").exists() {
            return Err(CliError {
                code: exit::NOT_FOUND,
                message: format!(
                    "nothing recorded yet in {} (run a pipeline with `weft run`)",
                    dir.display()
                ),
            });
        }
        Self::open(dir).await
    }
}
