//! The version being served, and swapping in the next.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use weft_artifacts::{ArtifactKind, ArtifactStore};
use weft_runtime::Runtime;
use weft_store::{ModelVersion, Store, DIGEST_TAG, SERVED_BY_TAG};

use crate::{ModelRef, Pool, PoolLimits, ServeError};

/// One model version with its pool of server instances.
pub struct Served {
    /// What was asked for (`models:/iris@champion`).
    pub reference: ModelRef,
    /// The version it named when loaded.
    pub version: ModelVersion,
    /// Digest of the model's bytes.
    pub model_digest: String,
    /// Digest of the model server component.
    pub server_digest: String,
    pub pool: Pool,
}

/// Where to find things when loading a version.
#[derive(Clone)]
pub struct Sources {
    pub runtime: Runtime,
    pub store: Store,
    pub artifacts: ArtifactStore,
    /// A model server to use instead of the one each version names.
    pub component: Option<PathBuf>,
    pub limits: PoolLimits,
}

impl Served {
    /// Loads the version `reference` names now.
    pub async fn load(sources: &Sources, reference: &ModelRef) -> Result<Self, ServeError> {
        let version = reference.resolve(&sources.store).await?;
        Self::load_version(sources, reference, version).await
    }

    /// Loads `version`: its bytes, its server component, and a warm pool.
    pub async fn load_version(
        sources: &Sources,
        reference: &ModelRef,
        version: ModelVersion,
    ) -> Result<Self, ServeError> {
        let what = format!("{} version {}", version.name, version.version);
        let tag = |key: &str| version.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
        let registry = |m: String| ServeError::Registry(format!("{what}: {m}"));
        let model_digest = tag(DIGEST_TAG)
            .ok_or_else(|| registry("it has no weft.digest tag (it was not registered by weft)".into()))?;
        if !sources
            .artifacts
            .contains(&model_digest, ArtifactKind::File)
            .await
            .map_err(|e| registry(e.to_string()))?
        {
            return Err(registry(format!(
                "its bytes ({model_digest}) are not a file in the artifact store (directory models cannot be served yet)"
            )));
        }
        let model = sources
            .artifacts
            .get_bytes(&model_digest)
            .await
            .map_err(|e| registry(format!("reading its bytes: {e}")))?;
        if model.len() as u64 > sources.limits.memory_bytes {
            return Err(ServeError::Load {
                what,
                message: format!(
                    "the model is {} bytes, more than an instance may hold ({}); raise --memory",
                    model.len(),
                    sources.limits.memory_bytes
                ),
            });
        }
        let (name, server) = match &sources.component {
            Some(path) => (path.clone(), weft_runtime::read_component(path)?),
            None => {
                let digest = tag(SERVED_BY_TAG).ok_or_else(|| ServeError::NoServer {
                    name: version.name.clone(),
                    version: version.version,
                })?;
                let bytes = sources
                    .artifacts
                    .get_bytes(&digest)
                    .await
                    .map_err(|e| registry(format!("reading its model server {digest}: {e}")))?;
                (PathBuf::from(format!("model server {digest}")), bytes.to_vec())
            }
        };
        let server_digest = weft_runtime::component_digest(&server);
        let runtime = sources.runtime.clone();
        let component = tokio::task::spawn_blocking(move || runtime.component_from_bytes(&name, &server))
            .await
            .map_err(|e| ServeError::Failed(format!("compiling the model server: {e}")))??;
        let pool = Pool::start(&sources.runtime, &component, model, &what, sources.limits).await?;
        Ok(Served {
            reference: reference.clone(),
            version,
            model_digest,
            server_digest,
            pool,
        })
    }
}

/// The version being served; another can be swapped in at any time.
pub struct Serving {
    current: RwLock<Arc<Served>>,
    swaps: AtomicU64,
}

impl Serving {
    pub fn new(served: Served) -> Arc<Self> {
        Arc::new(Serving {
            current: RwLock::new(Arc::new(served)),
            swaps: AtomicU64::new(0),
        })
    }

    /// The version serving now. A request holds it to its end, so a swap
    /// never cuts one short.
    pub fn current(&self) -> Arc<Served> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Serves `next` from now on.
    pub fn swap(&self, next: Served) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        self.swaps.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times another version was swapped in.
    pub fn swaps(&self) -> u64 {
        self.swaps.load(Ordering::Relaxed)
    }

    /// Follows the alias (or `latest`) being served: every `every`, looks
    /// up the version it names and, when it changed, loads that one and
    /// swaps it in. A version that fails to load is reported once and the
    /// current one goes on serving. Returns at once for a fixed version.
    pub async fn follow(self: Arc<Self>, sources: Sources, every: Duration) {
        let reference = self.current().reference.clone();
        if !reference.moves() {
            return;
        }
        let mut failed: Option<i64> = None;
        loop {
            tokio::time::sleep(every).await;
            let version = match reference.resolve(&sources.store).await {
                Ok(version) => version,
                Err(e) => {
                    tracing::warn!("{reference}: {e}");
                    continue;
                }
            };
            let serving = self.current().version.version;
            if version.version == serving || failed == Some(version.version) {
                continue;
            }
            let number = version.version;
            tracing::info!("{reference} now names version {number}: loading it");
            match Served::load_version(&sources, &reference, version).await {
                Ok(next) => {
                    self.swap(next);
                    failed = None;
                    eprintln!("{reference}: serving version {number} (was {serving})");
                }
                Err(e) => {
                    failed = Some(number);
                    eprintln!(
                        "{reference}: version {number} could not be loaded, version {serving} goes on serving: {e}"
                    );
                }
            }
        }
    }
}
