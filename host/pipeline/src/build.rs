//! `weft build`: runs the build command of each step that has one.

use std::path::PathBuf;
use std::process::Command;

use crate::Manifest;

/// A step's build command failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("steps.{step}.build: cannot start `{command}`: {source}")]
    Spawn {
        step: String,
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("steps.{step}.build: `{command}` failed ({status})")]
    Failed {
        step: String,
        command: String,
        status: String,
    },
    #[error("steps.{step}.build: `{command}` succeeded but did not produce {}", path.display())]
    NoComponent {
        step: String,
        command: String,
        path: PathBuf,
    },
}

/// Runs the build commands of `steps` (all steps when empty), in the
/// manifest's directory, through `sh -c`; a command shared by several steps
/// runs once. Output goes to this process's stdout/stderr. Returns the
/// names of the steps built.
pub fn build_steps(manifest: &Manifest, steps: &[String]) -> Result<Vec<String>, BuildError> {
    let mut done: Vec<String> = Vec::new();
    let mut built = Vec::new();
    for step in &manifest.steps {
        if !steps.is_empty() && !steps.contains(&step.name) {
            continue;
        }
        let Some(command) = &step.build else { continue };
        if !done.contains(command) {
            eprintln!("building {}: {command}", step.name);
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&manifest.root)
                .status()
                .map_err(|source| BuildError::Spawn {
                    step: step.name.clone(),
                    command: command.clone(),
                    source,
                })?;
            if !status.success() {
                return Err(BuildError::Failed {
                    step: step.name.clone(),
                    command: command.clone(),
                    status: status.to_string(),
                });
            }
            done.push(command.clone());
        }
        if !step.component.is_file() {
            return Err(BuildError::NoComponent {
                step: step.name.clone(),
                command: command.clone(),
                path: step.component.clone(),
            });
        }
        built.push(step.name.clone());
    }
    Ok(built)
}
