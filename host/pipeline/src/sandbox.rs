//! Sandbox directories, reused across the step runs of a run.
//!
//! Each step run needs an `inputs`, an `outputs` and a `tmp` directory.
//! Creating and deleting three directories per step costs more than many
//! steps take to run, so a run keeps a pool of slots and empties a slot's
//! directories when a step run is done with it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use weft_runtime::SandboxDirs;

pub(crate) struct SandboxPool {
    root: PathBuf,
    free: Mutex<Vec<SandboxDirs>>,
    created: Mutex<usize>,
}

impl SandboxPool {
    pub(crate) fn new(root: PathBuf) -> Self {
        Self {
            root,
            free: Mutex::new(Vec::new()),
            created: Mutex::new(0),
        }
    }

    /// An empty slot.
    pub(crate) fn take(&self) -> io::Result<SandboxDirs> {
        if let Some(dirs) = self.free.lock().unwrap_or_else(|p| p.into_inner()).pop() {
            return Ok(dirs);
        }
        let n = {
            let mut created = self.created.lock().unwrap_or_else(|p| p.into_inner());
            *created += 1;
            *created
        };
        let slot = self.root.join(format!("slot-{n}"));
        let dirs = SandboxDirs {
            inputs: slot.join("inputs"),
            outputs: slot.join("outputs"),
            tmp: slot.join("tmp"),
        };
        for dir in [&dirs.inputs, &dirs.outputs, &dirs.tmp] {
            std::fs::create_dir_all(dir)?;
        }
        Ok(dirs)
    }

    /// Empties a slot and makes it available again; a slot that cannot be
    /// emptied is deleted instead, so no step ever sees another's files.
    pub(crate) fn give(&self, dirs: SandboxDirs) {
        let emptied = [&dirs.inputs, &dirs.outputs, &dirs.tmp]
            .into_iter()
            .all(|d| empty_dir(d).is_ok());
        if emptied {
            self.free.lock().unwrap_or_else(|p| p.into_inner()).push(dirs);
        } else if let Some(slot) = dirs.inputs.parent() {
            let _ = std::fs::remove_dir_all(slot);
        }
    }

    /// Deletes every slot.
    pub(crate) fn remove_all(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Removes everything inside `dir`, without following symlinks.
fn empty_dir(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if std::fs::symlink_metadata(&path)?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_empty() {
        let root = tempfile::tempdir().unwrap();
        let pool = SandboxPool::new(root.path().join("run"));
        let dirs = pool.take().unwrap();
        std::fs::write(dirs.outputs.join("out"), "x").unwrap();
        std::fs::create_dir_all(dirs.tmp.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", dirs.outputs.join("link")).unwrap();
        let outputs = dirs.outputs.clone();
        pool.give(dirs);
        let again = pool.take().unwrap();
        assert_eq!(again.outputs, outputs, "the slot is reused");
        for d in [&again.inputs, &again.outputs, &again.tmp] {
            assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
        }
        assert!(
            std::path::Path::new("/etc").exists(),
            "a symlink is removed, not followed"
        );
        pool.remove_all();
        assert!(!root.path().join("run").exists());
    }
}
