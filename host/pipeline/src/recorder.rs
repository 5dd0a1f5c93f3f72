//! The output recorder: what a step left in its sandbox becomes artifacts
//! (or, for a verification, digests), checked against its limits; what it
//! logged becomes the step run's record.

use std::path::Path;

use weft_artifacts::{ArtifactError, ArtifactKind, ArtifactStore, Stored};
use weft_runtime::{SandboxDirs, StepFailure, TrackerEvent};
use weft_store::{NewArtifact, StepRunRecord};

use crate::cache_key::{SpecLimits, SpecOutput};

/// Undeclared outputs named one by one in a step's logs; the rest are
/// counted.
const MAX_NOTES: usize = 20;

/// `text` with the sandbox's host directories written as the step sees
/// them (`/inputs`, `/outputs`, `/tmp`): an error names the problem, not
/// where weft keeps its sandboxes.
pub(crate) fn sandbox_view(text: &str, dirs: &SandboxDirs) -> String {
    let mut text = text.to_string();
    for (host, guest) in [
        (&dirs.inputs, "/inputs"),
        (&dirs.outputs, "/outputs"),
        (&dirs.tmp, "/tmp"),
    ] {
        text = text.replace(&host.display().to_string(), guest);
    }
    text
}

/// What to do with the outputs found in a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// Move them into the artifact store.
    Store,
    /// Hash them only (a verification compares digests).
    Hash,
}

/// One declared output, as found.
#[derive(Debug, Clone)]
pub(crate) struct Output {
    pub name: String,
    pub stored: Stored,
    pub media_type: String,
}

/// Checks `/tmp` and collects the declared outputs from a sandbox the step
/// has returned from. Notes about undeclared files are appended to `logs`.
pub(crate) async fn collect_outputs(
    artifacts: &ArtifactStore,
    dirs: &SandboxDirs,
    step: &str,
    outputs: &[SpecOutput],
    limits: &SpecLimits,
    keep: Keep,
    logs: &mut String,
) -> Result<Vec<Output>, StepFailure> {
    let failed = |message: String| Err(StepFailure::Failed(message));
    // /tmp is measured as it is emptied: every file counts, however deep.
    let scratch = match crate::sandbox::drain(&dirs.tmp) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Err(StepFailure::Host(format!(
                "weft could not measure and empty /tmp: {}",
                sandbox_view(&e.to_string(), dirs)
            )))
        }
    };
    if scratch > limits.max_tmp_bytes {
        return failed(format!(
            "the step wrote over its /tmp limit of {} bytes (limits.max_tmp)",
            limits.max_tmp_bytes
        ));
    }
    let mut found = Vec::with_capacity(outputs.len());
    let mut remaining = limits.max_output_bytes;
    for spec in outputs {
        let path = dirs.outputs.join(&spec.name);
        match std::fs::symlink_metadata(&path) {
            Err(_) => {
                return failed(format!(
                    "the step did not write its declared output '{0}' (expected /outputs/{0})",
                    spec.name
                ))
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                return failed(format!(
                    "output '{}' is a symbolic link; outputs must be regular files or directories",
                    spec.name
                ))
            }
            Ok(_) => {}
        }
        // The sandbox is ours and goes next: its files move into the store.
        let stored = match keep {
            Keep::Store => artifacts.adopt(&path, remaining).await,
            Keep::Hash => artifacts.digest_of(&path, remaining).await,
        };
        match stored {
            Ok(stored) => {
                remaining = remaining.saturating_sub(stored.size);
                let media_type = spec
                    .media_type
                    .clone()
                    .unwrap_or_else(|| default_media_type(stored.kind, &path));
                found.push(Output {
                    name: spec.name.clone(),
                    stored,
                    media_type,
                });
            }
            Err(ArtifactError::TooLarge { limit, .. }) => {
                return failed(format!(
                    "outputs exceed the limit of {limit} bytes (steps.{step}.limits.max_output)"
                ))
            }
            // The disk or the network: weft's failure, not the step's.
            Err(e @ (ArtifactError::Io { .. } | ArtifactError::Store(_))) => {
                let e = sandbox_view(&e.to_string(), dirs);
                return Err(StepFailure::Host(format!(
                    "output '{}' cannot be stored: {e}",
                    spec.name
                )));
            }
            Err(e) => {
                let e = sandbox_view(&e.to_string(), dirs);
                return failed(format!("output '{}' cannot be stored: {e}", spec.name));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(&dirs.outputs) {
        let mut ignored: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| !outputs.iter().any(|o| &o.name == name))
            .collect();
        ignored.sort();
        // A handful by name: a step may leave any number of files behind.
        for name in ignored.iter().take(MAX_NOTES) {
            logs.push_str(&format!(
                "[weft: ignored /outputs/{}: not a declared output]\n",
                name.escape_debug()
            ));
        }
        if ignored.len() > MAX_NOTES {
            logs.push_str(&format!(
                "[weft: ignored {} more undeclared entries in /outputs]\n",
                ignored.len() - MAX_NOTES
            ));
        }
    }
    Ok(found)
}

impl Output {
    /// The artifact row for this output of `step` in `pipeline`.
    pub(crate) fn artifact(&self, pipeline: &str, step: &str) -> NewArtifact {
        NewArtifact {
            name: format!("{pipeline}/{step}.{}", self.name),
            digest: self.stored.digest.clone(),
            kind: self.stored.kind.as_str().into(),
            media_type: self.media_type.clone(),
            size: self.stored.size as i64,
            source_uri: None,
        }
    }
}

/// Adds what a step logged through the tracker to its record.
pub(crate) fn add_events(record: &mut StepRunRecord, events: Vec<TrackerEvent>) {
    for event in events {
        match event {
            TrackerEvent::Metric {
                key,
                value,
                step,
                timestamp_ms,
            } => record.metrics.push((key, value, step.map(|s| s as i64), timestamp_ms)),
            TrackerEvent::Param { key, value } => record.params.push((key, value)),
            TrackerEvent::Tag { key, value } => record.tags.push((key, value)),
            TrackerEvent::Metadata { key, json } => record.metadata.push((key, json)),
        }
    }
}

/// The media type of an artifact nobody named one for.
pub(crate) fn default_media_type(kind: ArtifactKind, path: &Path) -> String {
    if kind == ArtifactKind::Dir {
        return "inode/directory".into();
    }
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "csv" => "text/csv",
        "json" => "application/json",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "html" => "text/html",
        "png" => "image/png",
        "parquet" => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    }
    .into()
}
