//! weft's content-addressed artifact store.
//!
//! Every artifact is immutable bytes addressed by their blake3 digest. A
//! file is one blob (`blobs/<aa>/<digest>`); a directory is a tree object
//! (`trees/<aa>/<digest>`), a sorted JSON list of its files with their blob
//! digests, whose own digest names the directory. Storing the same content
//! twice stores it once.
//!
//! Storage goes through [`object_store`]. On the local filesystem (the
//! default, under `.weft/artifacts`) a file is hashed while it is copied
//! into a staging file, which is then renamed into place: one pass over the
//! data, and a reader never sees a partial blob, even if the process is
//! killed mid-write.

mod store;
mod tree;

pub use store::{ArtifactKind, ArtifactStore, Location, Stored};
pub use tree::{Tree, TreeEntry};

/// Errors of the artifact store.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// Reading or writing a local file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store failed.
    #[error("artifact store: {0}")]
    Store(#[from] object_store::Error),
    /// A digest is not 64 lowercase hex characters.
    #[error("'{0}' is not a blake3 digest (64 lowercase hex characters)")]
    BadDigest(String),
    /// The artifact is not in the store.
    #[error("artifact {0} is not in the store (its bytes were deleted?)")]
    Missing(String),
    /// A directory to ingest holds something that is not a regular file or
    /// directory.
    #[error("{path} is {what}; only regular files and directories can be stored")]
    Unsupported {
        path: std::path::PathBuf,
        what: &'static str,
    },
    /// Ingesting would exceed the size limit.
    #[error("{path} holds more than the limit of {limit} bytes")]
    TooLarge { path: std::path::PathBuf, limit: u64 },
    /// A tree object is corrupt.
    #[error("tree {digest} is corrupt: {message}")]
    CorruptTree { digest: String, message: String },
    /// The store URL is not understood.
    #[error("unsupported artifact store URL '{0}': use file:///path, a plain path, or s3://bucket/prefix")]
    BadUrl(String),
}

/// Checks that `digest` looks like a blake3 hex digest, so it is safe to use
/// in an object path.
pub fn validate_digest(digest: &str) -> Result<(), ArtifactError> {
    if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(ArtifactError::BadDigest(digest.to_string()))
    }
}
