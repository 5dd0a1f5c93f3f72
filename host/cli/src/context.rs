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

/// Where guest toolchains (the Python virtualenv with componentize-py, …)
/// live: `WEFT_TOOLCHAINS`, else `$XDG_CACHE_HOME/weft/toolchains`, else
/// `~/.cache/weft/toolchains`. Shared by every project of the user.
pub fn toolchains_dir() -> CliResult<PathBuf> {
    user_dir(
        "WEFT_TOOLCHAINS",
        ("XDG_CACHE_HOME", ".cache"),
        "weft/toolchains",
        "guest toolchains",
    )
}

/// Where the user's plugins and stacks live: `WEFT_HOME`, else
/// `$XDG_CONFIG_HOME/weft`, else `~/.config/weft`.
pub fn weft_home() -> CliResult<PathBuf> {
    user_dir(
        "WEFT_HOME",
        ("XDG_CONFIG_HOME", ".config"),
        "weft",
        "plugins and stacks",
    )
}

/// `$explicit`, else `$xdg/sub`, else `~/<xdg default>/sub` (an empty
/// variable counts as unset, as the XDG spec says).
fn user_dir(explicit: &str, (xdg, default): (&str, &str), sub: &str, what: &str) -> CliResult<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var(explicit) {
        return Ok(PathBuf::from(dir));
    }
    if let Some(base) = var(xdg) {
        return Ok(PathBuf::from(base).join(sub));
    }
    match var("HOME") {
        Some(home) => Ok(PathBuf::from(home).join(default).join(sub)),
        None => Err(CliError::usage(format!(
            "cannot tell where to keep {what}: set {explicit} (or HOME)"
        ))),
    }
}

/// Where metadata and artifacts live, when not in the state directory:
/// a team points every `weft` (runs and server alike) at one PostgreSQL
/// database and one artifact store, usually through a named stack.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Stack {
    /// The stack to use (see `weft stack`; default: the active one).
    #[arg(id = "stack", long = "stack", global = true, env = "WEFT_STACK", value_name = "NAME")]
    pub name: Option<String>,
    /// Plugin configuration of the stack (plugin name -> keys).
    #[arg(skip)]
    pub plugin_config: std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
    /// Whether imported step runs serve cache hits unverified (a stack setting).
    #[arg(skip)]
    pub trust_imports: bool,
    /// Where the steps of a run execute (a stack setting; none: `local`).
    #[arg(skip)]
    pub orchestrator: Option<String>,
    /// How steps run on Kubernetes (a stack setting).
    #[arg(skip)]
    pub kubernetes: Option<crate::kubernetes::KubernetesSettings>,
    /// The metadata store URL as written, `${secret:NAME}` unresolved:
    /// what workers elsewhere resolve themselves.
    #[arg(skip)]
    pub written_db: Option<String>,
    /// The artifact store URL as written.
    #[arg(skip)]
    pub written_artifacts: Option<String>,
    /// Metadata store: sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB (default: weft.db in the state directory).
    #[arg(
        long = "db",
        global = true,
        env = "WEFT_DB",
        value_name = "URL",
        hide_env_values = true
    )]
    pub db: Option<String>,
    /// Artifact store: file:///PATH or s3://BUCKET/PREFIX (credentials and endpoint from AWS_* variables; default: artifacts/ in the state directory).
    #[arg(long = "artifacts", global = true, env = "WEFT_ARTIFACTS", value_name = "URL")]
    pub artifacts: Option<String>,
}

/// The metadata and artifact stores, created on first use.
#[derive(Clone)]
pub struct Stores {
    pub store: Store,
    pub artifacts: ArtifactStore,
}

impl Stores {
    pub async fn open(dir: &Path, stack: &Stack) -> CliResult<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::usage(format!("cannot create the state directory {}: {e}", dir.display())))?;
        let db = match &stack.db {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", dir.join("weft.db").display()),
        };
        let store = Store::open(&db)
            .await
            .map_err(|e| CliError::usage(format!("cannot open the metadata store {}: {e}", redact(&db))))?;
        let artifacts = match &stack.artifacts {
            Some(url) => ArtifactStore::open(url)?,
            None => ArtifactStore::local(&dir.join("artifacts"))?,
        };
        Ok(Self { store, artifacts })
    }

    /// Opens the stores only if something was recorded (read-only
    /// commands): the state directory's database exists, or a database
    /// URL was given.
    pub async fn open_existing(dir: &Path, stack: &Stack) -> CliResult<Self> {
        if stack.db.is_none() && !dir.join("weft.db").exists() {
            return Err(CliError {
                code: exit::NOT_FOUND,
                message: format!(
                    "nothing recorded yet in {} (run a pipeline with `weft run`)",
                    dir.display()
                ),
            });
        }
        Self::open(dir, stack).await
    }
}

/// A database URL with its password hidden, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
