//! The store itself.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::tree::{is_safe_relative, Tree, TreeEntry};
use crate::{validate_digest, ArtifactError};

/// Files smaller than this are hashed and stored without leaving the
/// calling thread: up to a few milliseconds of hashing cost less than the
/// hand-off to the blocking pool and back.
pub const INLINE_BYTES: u64 = 8 << 20;

/// Most files one directory artifact may hold.
pub const MAX_TREE_FILES: usize = 100_000;
/// Deepest a directory artifact may nest.
pub const MAX_TREE_DEPTH: usize = 128;
/// Longest path of a file within a directory artifact, in bytes.
pub const MAX_TREE_PATH: usize = 4096;

/// Whether an artifact is one file or a directory of files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    File,
    Dir,
}

impl ArtifactKind {
    /// `"file"` or `"dir"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::File => "file",
            ArtifactKind::Dir => "dir",
        }
    }

    /// Parses [`ArtifactKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "file" => Some(ArtifactKind::File),
            "dir" => Some(ArtifactKind::Dir),
            _ => None,
        }
    }
}

/// What storing something produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// blake3 hex digest of the file, or of the canonical tree.
    pub digest: String,
    /// Bytes of content (a directory: the sum of its files).
    pub size: u64,
    /// File or directory.
    pub kind: ArtifactKind,
}

/// Where an artifact store URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Local(PathBuf),
    /// A bucket (and a key prefix) of S3 or an S3-compatible server.
    S3 { bucket: String, prefix: String },
}

/// A content-addressed store of files and directories. Cheap to clone.
#[derive(Clone)]
pub struct ArtifactStore {
    objects: Arc<dyn ObjectStore>,
    /// Root directory when the store is on the local filesystem.
    local_root: Option<PathBuf>,
    url: String,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore").field("url", &self.url).finish()
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> ArtifactError + 'a {
    move |source| ArtifactError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn blob_path(digest: &str) -> ObjectPath {
    ObjectPath::from(format!("blobs/{}/{digest}", &digest[..2]))
}

fn tree_path(digest: &str) -> ObjectPath {
    ObjectPath::from(format!("trees/{}/{digest}", &digest[..2]))
}

impl ArtifactStore {
    /// Opens a store from a URL: `file:///abs/path` (or a plain path), or
    /// `s3://bucket/prefix` for S3 or an S3-compatible server, configured
    /// from the environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_REGION` (default us-east-1), `AWS_ENDPOINT_URL` for a server
    /// other than AWS, and `AWS_ALLOW_HTTP=true` for a plain-HTTP one.
    pub fn open(url: &str) -> Result<Self, ArtifactError> {
        match Self::check_url(url)? {
            Location::Local(path) => Self::local(&path),
            Location::S3 { bucket, prefix } => Self::s3(url, &bucket, &prefix),
        }
    }

    /// Checks an artifact store URL without opening it.
    pub fn check_url(url: &str) -> Result<Location, ArtifactError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let bucket_ok = (3..=63).contains(&bucket.len())
                && bucket
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
            let prefix = prefix.trim_matches('/');
            if !bucket_ok || !(prefix.is_empty() || is_safe_relative(prefix)) {
                return Err(ArtifactError::BadUrl(url.to_string()));
            }
            return Ok(Location::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        match url.strip_prefix("file://") {
            Some(path) => Ok(Location::Local(PathBuf::from(path))),
            None if url.contains("://") => Err(ArtifactError::BadUrl(url.to_string())),
            None => Ok(Location::Local(PathBuf::from(url))),
        }
    }

    fn s3(url: &str, bucket: &str, prefix: &str) -> Result<Self, ArtifactError> {
        let mut builder = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
        if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none() {
            builder = builder.with_region("us-east-1");
        }
        let s3 = builder.build()?;
        let objects: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        };
        Ok(Self {
            objects,
            local_root: None,
            url: url.to_string(),
        })
    }

    /// Opens (creating it if needed) a store in a local directory.
    pub fn local(root: &Path) -> Result<Self, ArtifactError> {
        fs::create_dir_all(root.join(".staging")).map_err(io_err("create", root))?;
        let root = root.canonicalize().map_err(io_err("resolve", root))?;
        let objects = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self {
            objects: Arc::new(objects),
            url: format!("file://{}", root.display()),
            local_root: Some(root),
        })
    }

    /// The store's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stores a file or a directory (recursively) by copying it: the
    /// original is left as it was (a user's data). `limit` caps the total
    /// bytes; symlinks and special files are refused.
    pub async fn ingest(&self, path: &Path, limit: u64) -> Result<Stored, ArtifactError> {
        self.store_path(path, limit, Mode::Copy).await
    }

    /// Stores a file or a directory that weft owns and will delete (a
    /// step's outputs) by moving its files into the store when it is on the
    /// same local filesystem: each file is hashed where it is and renamed,
    /// never copied. A file with other hard links is copied instead, so the
    /// store never shares an inode with anything else. Same checks as
    /// [`ArtifactStore::ingest`].
    pub async fn adopt(&self, path: &Path, limit: u64) -> Result<Stored, ArtifactError> {
        self.store_path(path, limit, Mode::Move).await
    }

    /// The digest, size and kind a file or directory would be stored
    /// under, computed without storing anything. Same checks as
    /// [`ArtifactStore::ingest`].
    pub async fn digest_of(&self, path: &Path, limit: u64) -> Result<Stored, ArtifactError> {
        self.store_path(path, limit, Mode::Hash).await
    }

    /// Whether the stored bytes of an artifact still hash to `digest` (a
    /// directory: its listing and every file it lists). `Ok(false)` when
    /// something was changed or is missing.
    pub async fn check(&self, digest: &str, kind: ArtifactKind) -> Result<bool, ArtifactError> {
        validate_digest(digest)?;
        let file_ok = |digest: String| async move {
            match self.get_bytes(&digest).await {
                Ok(bytes) => Ok(blake3::hash(&bytes).to_hex().as_str() == digest),
                Err(ArtifactError::Missing(_)) => Ok(false),
                Err(e) => Err(e),
            }
        };
        match kind {
            ArtifactKind::File => file_ok(digest.to_string()).await,
            ArtifactKind::Dir => {
                let bytes = match self.objects.get(&tree_path(digest)).await {
                    Ok(result) => result.bytes().await?,
                    Err(object_store::Error::NotFound { .. }) => return Ok(false),
                    Err(e) => return Err(e.into()),
                };
                if blake3::hash(&bytes).to_hex().as_str() != digest {
                    return Ok(false);
                }
                let Ok(tree) = Tree::parse(&bytes) else {
                    return Ok(false);
                };
                for entry in tree.entries {
                    if !file_ok(entry.digest).await? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    async fn store_path(&self, path: &Path, limit: u64, mode: Mode) -> Result<Stored, ArtifactError> {
        let meta = fs::symlink_metadata(path).map_err(io_err("read", path))?;
        if meta.file_type().is_symlink() {
            return Err(ArtifactError::Unsupported {
                path: path.to_owned(),
                what: "a symbolic link",
            });
        }
        if meta.is_file() {
            if meta.len() > limit {
                return Err(ArtifactError::TooLarge {
                    path: path.to_owned(),
                    limit,
                });
            }
            let (digest, size) = self.put_file(path, meta.len() < INLINE_BYTES, mode).await?;
            return Ok(Stored {
                digest,
                size,
                kind: ArtifactKind::File,
            });
        }
        if !meta.is_dir() {
            return Err(ArtifactError::Unsupported {
                path: path.to_owned(),
                what: "neither a regular file nor a directory",
            });
        }
        let files = {
            let path = path.to_owned();
            tokio::task::spawn_blocking(move || walk(&path, limit))
                .await
                .map_err(|e| ArtifactError::Io {
                    action: "walk",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })??
        };
        let mut tree = Tree::default();
        for (relative, file) in files {
            let (digest, size) = self.put_file(&file, false, mode).await?;
            tree.entries.push(TreeEntry {
                path: relative,
                digest,
                size,
            });
        }
        if mode == Mode::Hash {
            let digest = blake3::hash(&tree.canonical_bytes()).to_hex().to_string();
            return Ok(Stored {
                digest,
                size: tree.size(),
                kind: ArtifactKind::Dir,
            });
        }
        self.write_tree(&tree).await
    }

    /// Stores bytes as a file artifact.
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<Stored, ArtifactError> {
        let digest = blake3::hash(&bytes).to_hex().to_string();
        let size = bytes.len() as u64;
        self.put_once(&blob_path(&digest), bytes).await?;
        Ok(Stored {
            digest,
            size,
            kind: ArtifactKind::File,
        })
    }

    /// Writes a content-addressed object unless it is there already.
    async fn put_once(&self, location: &ObjectPath, bytes: Bytes) -> Result<(), ArtifactError> {
        if self.objects.head(location).await.is_err() {
            self.objects.put(location, PutPayload::from(bytes)).await?;
        }
        Ok(())
    }

    /// Stores a directory artifact's listing, once every file it lists is
    /// in the store. Returns the tree's digest and total size.
    pub async fn put_tree(&self, tree: &Tree) -> Result<Stored, ArtifactError> {
        for entry in &tree.entries {
            validate_digest(&entry.digest)?;
            if !self.contains(&entry.digest, ArtifactKind::File).await? {
                return Err(ArtifactError::Missing(entry.digest.clone()));
            }
        }
        self.write_tree(tree).await
    }

    /// Writes a listing under the digest of its canonical bytes.
    async fn write_tree(&self, tree: &Tree) -> Result<Stored, ArtifactError> {
        let bytes = tree.canonical_bytes();
        let digest = blake3::hash(&bytes).to_hex().to_string();
        self.put_once(&tree_path(&digest), bytes.into()).await?;
        Ok(Stored {
            digest,
            size: tree.size(),
            kind: ArtifactKind::Dir,
        })
    }

    /// Stores one file; returns its digest and size.
    /// A `small` file (under [`INLINE_BYTES`]) is stored on the calling thread;
    /// a large one on the blocking pool.
    async fn put_file(&self, path: &Path, small: bool, mode: Mode) -> Result<(String, u64), ArtifactError> {
        if mode == Mode::Hash {
            let path = path.to_owned();
            return tokio::task::spawn_blocking(move || hash_in_place(&path))
                .await
                .map_err(|e| ArtifactError::Io {
                    action: "hash",
                    path: PathBuf::new(),
                    source: std::io::Error::other(e),
                })?;
        }
        match &self.local_root {
            Some(root) if small => put_local_file(root, path, mode),
            Some(root) => {
                let root = root.clone();
                let path = path.to_owned();
                tokio::task::spawn_blocking(move || put_local_file(&root, &path, mode))
                    .await
                    .map_err(|e| ArtifactError::Io {
                        action: "store",
                        path: PathBuf::new(),
                        source: std::io::Error::other(e),
                    })?
            }
            None => {
                let bytes = tokio::fs::read(path).await.map_err(io_err("read", path))?;
                let stored = self.put_bytes(Bytes::from(bytes)).await?;
                Ok((stored.digest, stored.size))
            }
        }
    }

    /// Whether every byte of the artifact is still in the store.
    pub async fn contains(&self, digest: &str, kind: ArtifactKind) -> Result<bool, ArtifactError> {
        validate_digest(digest)?;
        if let (Some(root), ArtifactKind::File) = (&self.local_root, kind) {
            // A stat, without a trip through the blocking pool: this runs
            // for every output of every cache hit.
            return Ok(root.join("blobs").join(&digest[..2]).join(digest).is_file());
        }
        match kind {
            ArtifactKind::File => Ok(self.objects.head(&blob_path(digest)).await.is_ok()),
            ArtifactKind::Dir => {
                let tree = match self.tree(digest).await {
                    Ok(tree) => tree,
                    Err(ArtifactError::Missing(_)) => return Ok(false),
                    Err(e) => return Err(e),
                };
                for entry in &tree.entries {
                    if self.objects.head(&blob_path(&entry.digest)).await.is_err() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
        }
    }

    /// Reads a directory artifact's listing.
    pub async fn tree(&self, digest: &str) -> Result<Tree, ArtifactError> {
        validate_digest(digest)?;
        let bytes = match self.objects.get(&tree_path(digest)).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Err(ArtifactError::Missing(digest.to_string())),
            Err(e) => return Err(e.into()),
        };
        Tree::parse(&bytes).map_err(|message| ArtifactError::CorruptTree {
            digest: digest.to_string(),
            message,
        })
    }

    /// Where a file artifact's bytes are on this machine, when the store is
    /// a local directory and holds them.
    pub fn local_blob_path(&self, digest: &str) -> Option<PathBuf> {
        validate_digest(digest).ok()?;
        let path = self.local_root.as_ref()?.join("blobs").join(&digest[..2]).join(digest);
        path.is_file().then_some(path)
    }

    /// Reads a file artifact's bytes.
    pub async fn get_bytes(&self, digest: &str) -> Result<Bytes, ArtifactError> {
        validate_digest(digest)?;
        match self.objects.get(&blob_path(digest)).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(ArtifactError::Missing(digest.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// A file artifact's size and its bytes as a stream of chunks, for
    /// serving it with memory bounded by a chunk, whatever its size.
    pub async fn get_stream(
        &self,
        digest: &str,
    ) -> Result<(u64, futures::stream::BoxStream<'static, Result<Bytes, ArtifactError>>), ArtifactError> {
        use futures::StreamExt;
        validate_digest(digest)?;
        if let Some(root) = &self.local_root {
            // Read in 1 MiB chunks (object_store's local reads are 8 KiB
            // each, a blocking-pool hop apiece).
            let path = root.join("blobs").join(&digest[..2]).join(digest);
            let file = match tokio::fs::File::open(&path).await {
                Ok(file) => file,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(ArtifactError::Missing(digest.to_string()))
                }
                Err(e) => return Err(io_err("open", &path)(e)),
            };
            let size = file.metadata().await.map_err(io_err("read", &path))?.len();
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                .map(move |chunk| chunk.map_err(io_err("read", &path)));
            return Ok((size, stream.boxed()));
        }
        match self.objects.get(&blob_path(digest)).await {
            Ok(result) => {
                let size = result.meta.size;
                Ok((
                    size,
                    result.into_stream().map(|chunk| chunk.map_err(Into::into)).boxed(),
                ))
            }
            Err(object_store::Error::NotFound { .. }) => Err(ArtifactError::Missing(digest.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// Places an artifact at `dest` (which must not exist) for a sandbox to
    /// read. On the local filesystem files are hard links to the immutable
    /// blobs, so this costs no copy; the sandbox mounts them read-only.
    pub async fn materialize(&self, digest: &str, kind: ArtifactKind, dest: &Path) -> Result<(), ArtifactError> {
        self.place(digest, kind, dest, true).await
    }

    /// Copies an artifact to `dest` (which must not exist) for a user: a
    /// fresh copy, never a link into the store.
    pub async fn export(&self, digest: &str, kind: ArtifactKind, dest: &Path) -> Result<(), ArtifactError> {
        self.place(digest, kind, dest, false).await
    }

    async fn place(&self, digest: &str, kind: ArtifactKind, dest: &Path, link: bool) -> Result<(), ArtifactError> {
        validate_digest(digest)?;
        match kind {
            ArtifactKind::File => self.place_file(digest, dest, link).await,
            ArtifactKind::Dir => {
                let tree = self.tree(digest).await?;
                fs::create_dir_all(dest).map_err(io_err("create", dest))?;
                for entry in &tree.entries {
                    if !is_safe_relative(&entry.path) {
                        return Err(ArtifactError::CorruptTree {
                            digest: digest.to_string(),
                            message: format!("unsafe path '{}'", entry.path),
                        });
                    }
                    let target = dest.join(&entry.path);
                    if let Some(parent) = target.parent() {
                        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
                    }
                    self.place_file(&entry.digest, &target, link).await?;
                }
                Ok(())
            }
        }
    }

    async fn place_file(&self, digest: &str, dest: &Path, link: bool) -> Result<(), ArtifactError> {
        if let Some(root) = &self.local_root {
            let blob = root.join("blobs").join(&digest[..2]).join(digest);
            if !blob.exists() {
                return Err(ArtifactError::Missing(digest.to_string()));
            }
            if link && fs::hard_link(&blob, dest).is_ok() {
                return Ok(());
            }
            // A new file, as open(2) makes it: the user's umask decides who
            // may read it (the blob itself is read-only for everyone).
            let mut input = fs::File::open(&blob).map_err(io_err("open", &blob))?;
            let mut output = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dest)
                .map_err(io_err("create", dest))?;
            std::io::copy(&mut input, &mut output).map_err(io_err("copy to", dest))?;
            return Ok(());
        }
        let bytes = self.get_bytes(digest).await?;
        let mut output = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(io_err("create", dest))?;
        output.write_all(&bytes).map_err(io_err("write", dest))
    }
}

/// Hashes `src` while copying it into the store's staging area, then renames
/// the copy into place (or drops it when the blob already exists).
fn put_local_file(root: &Path, src: &Path, mode: Mode) -> Result<(String, u64), ArtifactError> {
    if mode == Mode::Move {
        if let Some(stored) = move_local_file(root, src)? {
            return Ok(stored);
        }
    }
    let mut input = fs::File::open(src).map_err(io_err("open", src))?;
    let staging_name = format!("{}-{}", std::process::id(), rand_suffix());
    let staging = root.join(".staging").join(staging_name);
    let mut output = fs::File::create(&staging).map_err(io_err("create", &staging))?;
    let result = (|| {
        let (digest, size) = hash_file(&mut input, src, |chunk| {
            output.write_all(chunk).map_err(io_err("write", &staging))
        })?;
        drop(output);
        let dir = root.join("blobs").join(&digest[..2]);
        let blob = dir.join(&digest);
        if blob.exists() {
            let _ = fs::remove_file(&staging);
        } else {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
            let mut perms = fs::metadata(&staging).map_err(io_err("read", &staging))?.permissions();
            perms.set_readonly(true);
            fs::set_permissions(&staging, perms).map_err(io_err("chmod", &staging))?;
            fs::rename(&staging, &blob).map_err(io_err("rename into", &blob))?;
        }
        Ok((digest, size))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&staging);
    }
    result
}

/// Reads `input` to the end in chunks of up to 1 MiB, hashing each and
/// handing it to `each`; its digest and size.
fn hash_file(
    input: &mut fs::File,
    path: &Path,
    mut each: impl FnMut(&[u8]) -> Result<(), ArtifactError>,
) -> Result<(String, u64), ArtifactError> {
    thread_local! {
        /// One read buffer per thread, reused: allocating and zeroing one
        /// per file costs as much as hashing a small one.
        static BUFFER: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; 1 << 20]);
    }
    BUFFER.with(|buffer| {
        let mut buffer = buffer.borrow_mut();
        let mut hasher = blake3::Hasher::new();
        let mut size = 0u64;
        loop {
            let n = input.read(&mut buffer).map_err(io_err("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            each(&buffer[..n])?;
            size += n as u64;
        }
        Ok((hasher.finalize().to_hex().to_string(), size))
    })
}

/// The digest and size of a file, read where it is.
fn hash_in_place(path: &Path) -> Result<(String, u64), ArtifactError> {
    let mut input = fs::File::open(path).map_err(io_err("open", path))?;
    hash_file(&mut input, path, |_| Ok(()))
}

/// How a file reaches the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Copied while hashed; the original stays.
    Copy,
    /// Hashed in place, then renamed into the store.
    Move,
    /// Hashed only; nothing is stored.
    Hash,
}

/// Hashes `src` where it is and renames it into the store; `None` when it
/// cannot be moved (other hard links, another filesystem), for the caller
/// to copy it.
fn move_local_file(root: &Path, src: &Path) -> Result<Option<(String, u64)>, ArtifactError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(src).map_err(io_err("read", src))?;
    if !meta.is_file() || meta.nlink() != 1 {
        return Ok(None);
    }
    let (digest, size) = hash_in_place(src)?;
    let dir = root.join("blobs").join(&digest[..2]);
    let blob = dir.join(&digest);
    if blob.exists() {
        fs::remove_file(src).map_err(io_err("remove", src))?;
        return Ok(Some((digest, size)));
    }
    fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
    let mut perms = meta.permissions();
    perms.set_readonly(true);
    fs::set_permissions(src, perms).map_err(io_err("chmod", src))?;
    match fs::rename(src, &blob) {
        Ok(()) => Ok(Some((digest, size))),
        // Another filesystem: copy instead.
        Err(e) if e.raw_os_error() == Some(18) => Ok(None),
        Err(e) => Err(io_err("rename into", &blob)(e)),
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{t:x}-{n}")
}

/// Lists the regular files under `dir` as (relative path, absolute path),
/// refusing symlinks, special files, non-UTF-8 names and more than `limit`
/// bytes in total.
fn walk(dir: &Path, limit: u64) -> Result<Vec<(String, PathBuf)>, ArtifactError> {
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut stack = vec![(dir.to_owned(), String::new(), 0usize)];
    while let Some((path, prefix, depth)) = stack.pop() {
        if depth > MAX_TREE_DEPTH {
            return Err(ArtifactError::Unsupported {
                path: dir.to_owned(),
                what: "a directory nested deeper than the limit (128 levels)",
            });
        }
        for entry in fs::read_dir(&path).map_err(io_err("list", &path))? {
            let entry = entry.map_err(io_err("list", &path))?;
            let full = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| ArtifactError::Unsupported {
                    path: full.clone(),
                    what: "a file whose name is not UTF-8",
                })?;
            let relative = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if relative.len() > MAX_TREE_PATH {
                return Err(ArtifactError::Unsupported {
                    path: dir.to_owned(),
                    what: "a directory holding a path longer than the limit (4096 bytes)",
                });
            }
            let meta = fs::symlink_metadata(&full).map_err(io_err("read", &full))?;
            if meta.file_type().is_symlink() {
                return Err(ArtifactError::Unsupported {
                    path: full,
                    what: "a symbolic link",
                });
            } else if meta.is_dir() {
                stack.push((full, relative, depth + 1));
            } else if meta.is_file() {
                total += meta.len();
                if total > limit {
                    return Err(ArtifactError::TooLarge {
                        path: dir.to_owned(),
                        limit,
                    });
                }
                files.push((relative, full));
                if files.len() > MAX_TREE_FILES {
                    return Err(ArtifactError::Unsupported {
                        path: dir.to_owned(),
                        what: "a directory with more files than the limit (100000)",
                    });
                }
            } else {
                return Err(ArtifactError::Unsupported {
                    path: full,
                    what: "neither a regular file nor a directory",
                });
            }
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_dedup_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&dir.path().join("store")).unwrap();
        let a = dir.path().join("a.txt");
        fs::write(&a, "hello").unwrap();
        let stored = store.ingest(&a, u64::MAX).await.unwrap();
        assert_eq!(stored.digest, blake3::hash(b"hello").to_hex().to_string());
        assert_eq!(stored.size, 5);
        let again = store.ingest(&a, u64::MAX).await.unwrap();
        assert_eq!(stored, again);
        let blobs: Vec<_> = fs::read_dir(dir.path().join("store/blobs").join(&stored.digest[..2]))
            .unwrap()
            .collect();
        assert_eq!(blobs.len(), 1);
        assert_eq!(store.get_bytes(&stored.digest).await.unwrap(), Bytes::from("hello"));
        assert!(store.contains(&stored.digest, ArtifactKind::File).await.unwrap());
        // No staging leftovers.
        assert_eq!(fs::read_dir(dir.path().join("store/.staging")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_listing_copied_to_another_store_needs_its_blobs_first_and_keeps_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let here = ArtifactStore::local(&dir.path().join("here")).unwrap();
        let there = ArtifactStore::local(&dir.path().join("there")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a.txt"), "alpha").unwrap();
        fs::write(src.join("sub/b.txt"), "beta").unwrap();
        let stored = here.ingest(&src, u64::MAX).await.unwrap();
        let tree = here.tree(&stored.digest).await.unwrap();

        // Without its blobs the listing is refused, naming a missing one.
        assert!(matches!(there.put_tree(&tree).await, Err(ArtifactError::Missing(_))));
        assert!(!there.contains(&stored.digest, ArtifactKind::Dir).await.unwrap());
        for entry in &tree.entries {
            there
                .put_bytes(here.get_bytes(&entry.digest).await.unwrap())
                .await
                .unwrap();
        }
        let copied = there.put_tree(&tree).await.unwrap();
        assert_eq!(copied, stored);
        assert!(there.contains(&stored.digest, ArtifactKind::Dir).await.unwrap());
    }

    #[tokio::test]
    async fn directories_round_trip_and_refuse_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&dir.path().join("store")).unwrap();
        let src = dir.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("x.csv"), "1,2").unwrap();
        fs::write(src.join("sub/y.csv"), "3,4").unwrap();
        let stored = store.ingest(&src, u64::MAX).await.unwrap();
        assert_eq!(stored.kind, ArtifactKind::Dir);
        assert_eq!(stored.size, 6);
        let out = dir.path().join("out");
        store.export(&stored.digest, ArtifactKind::Dir, &out).await.unwrap();
        assert_eq!(fs::read_to_string(out.join("sub/y.csv")).unwrap(), "3,4");

        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let err = store.ingest(&src, u64::MAX).await.unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[tokio::test]
    async fn size_limit_and_missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::local(&dir.path().join("store")).unwrap();
        let big = dir.path().join("big");
        fs::write(&big, vec![0u8; 1000]).unwrap();
        assert!(matches!(
            store.ingest(&big, 999).await,
            Err(ArtifactError::TooLarge { .. })
        ));
        let stored = store.ingest(&big, 1000).await.unwrap();
        let blob = dir
            .path()
            .join("store/blobs")
            .join(&stored.digest[..2])
            .join(&stored.digest);
        fs::remove_file(blob).unwrap();
        assert!(!store.contains(&stored.digest, ArtifactKind::File).await.unwrap());
        assert!(matches!(
            store.get_bytes(&stored.digest).await,
            Err(ArtifactError::Missing(_))
        ));
        assert!(matches!(
            store.get_bytes("../../etc").await,
            Err(ArtifactError::BadDigest(_))
        ));
    }
}

impl ArtifactStore {
    /// Removes staging files left by processes that died mid-write
    /// (`is_alive` tells whether a pid still runs).
    pub fn clean_staging(&self, is_alive: impl Fn(i64) -> bool) {
        let Some(root) = &self.local_root else { return };
        let Ok(entries) = fs::read_dir(root.join(".staging")) else {
            return;
        };
        for entry in entries.flatten() {
            let pid = entry
                .file_name()
                .to_str()
                .and_then(|n| n.split('-').next())
                .and_then(|p| p.parse::<i64>().ok());
            if pid.is_some_and(|pid| !is_alive(pid)) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}
