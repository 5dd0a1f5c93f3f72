//! Directory artifacts: a canonical listing of files and their digests.

use serde::{Deserialize, Serialize};

/// One file of a directory artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Path relative to the directory, `/`-separated, no `.` or `..`.
    pub path: String,
    /// blake3 of the file's bytes.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
}

/// A directory artifact: its files sorted by path (empty directories are
/// not kept).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// The canonical bytes of the tree, whose blake3 names it.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut entries = self.entries.clone();
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        let mut out = b"weft-tree-v1\n".to_vec();
        out.extend(serde_json::to_vec(&Tree { entries }).unwrap_or_default());
        out
    }

    /// Parses canonical bytes back, checking every path is safe to recreate.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let body = bytes.strip_prefix(b"weft-tree-v1\n").ok_or("missing header")?;
        let tree: Tree = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        for entry in &tree.entries {
            if !is_safe_relative(&entry.path) {
                return Err(format!("unsafe path '{}'", entry.path));
            }
            crate::validate_digest(&entry.digest).map_err(|e| e.to_string())?;
        }
        Ok(tree)
    }

    /// Total size of the files.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// A relative `/`-separated path with no empty, `.` or `..` component.
pub(crate) fn is_safe_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escaping_paths() {
        for bad in ["../x", "a/../../b", "/etc/passwd", "a//b", "./a"] {
            assert!(!is_safe_relative(bad), "{bad}");
        }
        assert!(is_safe_relative("a/b.csv"));
        let evil = Tree {
            entries: vec![TreeEntry {
                path: "../evil".into(),
                digest: "0".repeat(64),
                size: 1,
            }],
        };
        assert!(Tree::parse(&evil.canonical_bytes()).unwrap_err().contains("unsafe"));
    }

    #[test]
    fn order_does_not_change_the_bytes() {
        let a = TreeEntry {
            path: "a".into(),
            digest: "1".repeat(64),
            size: 1,
        };
        let b = TreeEntry {
            path: "b".into(),
            digest: "2".repeat(64),
            size: 2,
        };
        let t1 = Tree {
            entries: vec![a.clone(), b.clone()],
        };
        let t2 = Tree { entries: vec![b, a] };
        assert_eq!(t1.canonical_bytes(), t2.canonical_bytes());
    }
}
