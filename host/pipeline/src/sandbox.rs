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

    /// Empties a slot and makes it available again. A slot that cannot be
    /// emptied is never reused, so no step ever sees another's files: it is
    /// reported, and removed when its run ends or, failing that, when weft
    /// next starts.
    pub(crate) fn give(&self, dirs: SandboxDirs) {
        let emptied = [&dirs.inputs, &dirs.outputs, &dirs.tmp]
            .into_iter()
            .try_for_each(|d| drain(d).map(|_| ()));
        match emptied {
            Ok(()) => self.free.lock().unwrap_or_else(|p| p.into_inner()).push(dirs),
            Err(e) => tracing::warn!(
                "could not empty the sandbox {} ({e}); it is not reused, and is removed when weft next starts",
                dirs.inputs.parent().unwrap_or(&dirs.inputs).display()
            ),
        }
    }

    /// Deletes every slot, and the process's folder above them once no
    /// other run of the process uses it.
    pub(crate) fn remove_all(&self) {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if let Err(e) = remove_tree(&self.root) {
            tracing::warn!(
                "could not remove the sandboxes in {} ({e}); they are removed when weft next starts",
                self.root.display()
            );
        }
        if let Some(process) = self.root.parent() {
            let _ = std::fs::remove_dir(process);
        }
    }
}

/// Empties `dir` (and keeps it), whatever a step left in it, and returns the
/// bytes of the regular files it removed. No recursion and no long paths:
/// each subdirectory is first moved up to `dir` itself under a fresh name,
/// so every entry is handled one or two levels down, and a tree tens of
/// thousands of levels deep empties like a flat one. Symlinks are removed,
/// never followed. Anything that cannot be removed is an error, not skipped.
pub(crate) fn drain(dir: &Path) -> io::Result<u64> {
    let mut bytes = 0u64;
    let mut fresh = 0u64;
    // Directories to empty, each directly under `dir` (or `dir` itself).
    let mut queue = vec![dir.to_owned()];
    while let Some(current) = queue.pop() {
        for entry in std::fs::read_dir(&current)? {
            let entry = entry?;
            let path = entry.path();
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if current == dir {
                    queue.push(path);
                } else {
                    let flat = loop {
                        fresh += 1;
                        let candidate = dir.join(format!(".weft-drain-{fresh}"));
                        if std::fs::symlink_metadata(&candidate).is_err() {
                            break candidate;
                        }
                    };
                    std::fs::rename(&path, &flat)?;
                    queue.push(flat);
                }
            } else {
                if kind.is_file() {
                    bytes = bytes.saturating_add(entry.metadata()?.len());
                }
                std::fs::remove_file(&path)?;
            }
        }
        if current != dir {
            std::fs::remove_dir(&current)?;
        }
    }
    Ok(bytes)
}

/// Removes `dir` and everything under it (see [`drain`]); a `dir` that is
/// not there is fine.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    match drain(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other?,
    };
    std::fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_far_deeper_than_any_path_empties_without_recursion() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("tmp");
        std::fs::create_dir(&dir).unwrap();
        // 20,000 levels (paths of 40 KB, ten times PATH_MAX), built with
        // relative steps as a guest would, a small file every 1,000.
        let mut current = cap_std::fs::Dir::open_ambient_dir(&dir, cap_std::ambient_authority()).unwrap();
        for i in 0..20_000 {
            current.create_dir("d").unwrap();
            if i % 1000 == 0 {
                current.write("file", b"12345").unwrap();
            }
            current = current.open_dir("d").unwrap();
        }
        current.write("deepest", b"123").unwrap();
        drop(current);
        assert_eq!(drain(&dir).unwrap(), 20 * 5 + 3, "every byte counted");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        remove_tree(&dir).unwrap();
        assert!(!dir.exists());
        remove_tree(&dir).unwrap();
    }

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
