//! Stacks: named profiles of where metadata and artifacts live, which
//! orchestrator runs pipelines, and configuration for plugins.
//! `weft stack create|list|use|show|delete`; kept in
//! `<WEFT_HOME>/stacks.toml`. Credentials never go in the file: a database
//! password is a secret the URL refers to (`${secret:NAME}`, see `weft
//! secret`), resolved each time the stack is used; S3 keys come from the
//! environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::context::{redact, weft_home, CliError, CliResult, Stack};
use crate::exit;
use crate::kubernetes::KubernetesSettings;

/// The orchestrators weft has.
const ORCHESTRATORS: [&str; 4] = [
    "local",
    crate::worker::PROCESS,
    crate::slurm::SLURM,
    crate::kubernetes::KUBERNETES,
];

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StackFile {
    /// The stack used when none is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    #[serde(default)]
    stacks: BTreeMap<String, Profile>,
}

/// One stack.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Metadata store URL (sqlite://PATH or postgres://...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
    /// Artifact store URL (file:///PATH or s3://BUCKET/PREFIX).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
    #[serde(default = "local")]
    pub orchestrator: String,
    /// Plugin name -> configuration on top of the installed plugin's.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub plugins: BTreeMap<String, Map<String, Value>>,
    /// Step runs imported through the sync API serve cache hits without a
    /// verification here (off: they serve only once `weft verify` matched
    /// them).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub trust_imports: bool,
    /// Where and how steps run on Kubernetes (the `kubernetes`
    /// orchestrator, or steps that name it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSettings>,
}

fn local() -> String {
    "local".into()
}

fn path() -> CliResult<PathBuf> {
    Ok(weft_home()?.join("stacks.toml"))
}

fn load() -> CliResult<StackFile> {
    let path = path()?;
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).map_err(|e| CliError::usage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StackFile::default()),
        Err(e) => Err(CliError::usage(format!("cannot read {}: {e}", path.display()))),
    }
}

fn save(file: &StackFile) -> CliResult<()> {
    let path = path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CliError::usage(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = toml::to_string_pretty(file).map_err(|e| CliError::usage(e.to_string()))?;
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).map_err(|e| CliError::usage(format!("cannot write {}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, &path).map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))
}

fn valid_stack_name(name: &str) -> bool {
    weft_pipeline::valid_name(name)
}

/// The stack to use: `--stack`/`WEFT_STACK`, else the active one, with
/// `--db`/`--artifacts` given explicitly on top.
pub fn resolve(stack: &Stack) -> CliResult<Stack> {
    let mut resolved = with_profile(stack)?;
    resolved.written_db = resolved.db.clone();
    resolved.written_artifacts = resolved.artifacts.clone();
    if let Some(db) = &resolved.db {
        resolved.db = Some(crate::secrets::resolve(db, "the metadata store URL")?);
    }
    if let Some(url) = &resolved.artifacts {
        resolved.artifacts = Some(crate::secrets::resolve(url, "the artifact store URL")?);
    }
    Ok(resolved)
}

/// The stack's settings as written (secret references unresolved).
fn with_profile(stack: &Stack) -> CliResult<Stack> {
    let file = load()?;
    let name = stack.name.clone().or(file.active.clone());
    let Some(name) = name else {
        return Ok(stack.clone());
    };
    let profile = file.stacks.get(&name).ok_or_else(|| CliError {
        code: exit::NOT_FOUND,
        message: format!("no stack named '{name}' (see `weft stack list`)"),
    })?;
    Ok(Stack {
        name: Some(name),
        db: stack.db.clone().or(profile.db.clone()),
        artifacts: stack.artifacts.clone().or(profile.artifacts.clone()),
        plugin_config: profile.plugins.clone(),
        trust_imports: profile.trust_imports,
        orchestrator: Some(profile.orchestrator.clone()),
        kubernetes: profile.kubernetes.clone(),
        ..Stack::default()
    })
}

pub struct CreateArgs<'a> {
    pub name: &'a str,
    pub db: Option<String>,
    pub artifacts: Option<String>,
    pub orchestrator: String,
    pub plugin_config: &'a [String],
    pub trust_imports: bool,
    pub kubernetes: Option<KubernetesSettings>,
}

pub fn create(args: CreateArgs<'_>) -> CliResult<u8> {
    if !valid_stack_name(args.name) {
        return Err(CliError::usage(format!(
            "'{}' is not a stack name (1-64 letters, digits, '_' or '-')",
            args.name
        )));
    }
    if let Some(db) = &args.db {
        if !(db.starts_with("sqlite://") || db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err(CliError::usage(format!(
                "--db {}: use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB",
                redact(db)
            )));
        }
        weft_secrets::references(db).map_err(|e| CliError::usage(format!("--db: {e}")))?;
        if let Some(password) = url_password(db) {
            if !password.contains(weft_secrets::REFERENCE_START) {
                return Err(CliError::usage(
                    "--db: the password would be kept in plain text in stacks.toml; store it as a secret \
                     (`weft secret set NAME`, reading it from standard input) and write \
                     postgres://USER:${secret:NAME}@HOST:PORT/DB",
                ));
            }
        }
    }
    if let Some(url) = &args.artifacts {
        weft_secrets::references(url).map_err(|e| CliError::usage(format!("--artifacts: {e}")))?;
    }
    if let Some(url) = &args.artifacts {
        weft_artifacts::ArtifactStore::check_url(url).map_err(|e| CliError::usage(format!("--artifacts: {e}")))?;
    }
    if !ORCHESTRATORS.contains(&args.orchestrator.as_str()) {
        return Err(CliError::usage(format!(
            "--orchestrator {}: weft has {}",
            args.orchestrator,
            ORCHESTRATORS.join(", ")
        )));
    }
    match &args.kubernetes {
        Some(settings) => {
            crate::kubernetes::KubernetesDispatcher::new(
                settings.clone(),
                args.db.as_deref(),
                args.artifacts.as_deref(),
            )
            .map_err(CliError::usage)?;
        }
        None if args.orchestrator == crate::kubernetes::KUBERNETES => {
            return Err(CliError::usage(
                "--orchestrator kubernetes: name the image the pods run with --k8s-image \
                 (see the README's Kubernetes guide)",
            ))
        }
        None => {}
    }
    let mut plugins: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for entry in args.plugin_config {
        let (target, value) = entry
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--plugin-config {entry}: expected PLUGIN.KEY=VALUE")))?;
        let (plugin, key) = target
            .split_once('.')
            .ok_or_else(|| CliError::usage(format!("--plugin-config {entry}: expected PLUGIN.KEY=VALUE")))?;
        let pair = crate::plugins::parse_config(&[format!("{key}={value}")])?;
        plugins.entry(plugin.to_string()).or_default().extend(pair);
    }
    let mut file = load()?;
    if file.stacks.contains_key(args.name) {
        return Err(CliError::usage(format!(
            "a stack named '{}' exists already: `weft stack delete {}` first",
            args.name, args.name
        )));
    }
    file.stacks.insert(
        args.name.to_string(),
        Profile {
            db: args.db,
            artifacts: args.artifacts,
            orchestrator: args.orchestrator,
            plugins,
            trust_imports: args.trust_imports,
            kubernetes: args.kubernetes,
        },
    );
    save(&file)?;
    eprintln!(
        "created stack {} (make it the default with `weft stack use {}`)",
        args.name, args.name
    );
    Ok(exit::OK)
}

/// The password part of a URL's user information, if it has one.
pub(crate) fn url_password(url: &str) -> Option<&str> {
    let scheme = url.find("://")? + 3;
    let at = url.rfind('@').filter(|at| *at > scheme)?;
    url[scheme..at].split_once(':').map(|(_, password)| password)
}

pub fn list() -> CliResult<u8> {
    let file = load()?;
    if file.stacks.is_empty() {
        eprintln!(
            "no stacks: the default is SQLite and local files in each project's .weft (weft stack create NAME ...)"
        );
    }
    for (name, p) in &file.stacks {
        let mark = if file.active.as_deref() == Some(name) { "*" } else { " " };
        println!(
            "{mark} {name:16} db: {:32} artifacts: {}",
            p.db.as_deref()
                .map(redact)
                .unwrap_or_else(|| "(project default)".into()),
            p.artifacts.as_deref().unwrap_or("(project default)")
        );
    }
    Ok(exit::OK)
}

pub fn use_stack(name: Option<&str>) -> CliResult<u8> {
    let mut file = load()?;
    match name {
        Some(name) if !file.stacks.contains_key(name) => {
            return Err(CliError {
                code: exit::NOT_FOUND,
                message: format!("no stack named '{name}' (see `weft stack list`)"),
            })
        }
        Some(name) => eprintln!("using stack {name}"),
        None => eprintln!("using no stack: each project's .weft"),
    }
    file.active = name.map(String::from);
    save(&file)?;
    Ok(exit::OK)
}

pub fn show(name: Option<&str>) -> CliResult<u8> {
    let file = load()?;
    let Some(name) = name.map(String::from).or(file.active.clone()) else {
        eprintln!("no active stack: metadata in .weft/weft.db, artifacts in .weft/artifacts of each project");
        return Ok(exit::OK);
    };
    let p = file.stacks.get(&name).ok_or_else(|| CliError {
        code: exit::NOT_FOUND,
        message: format!("no stack named '{name}'"),
    })?;
    let shown = serde_json::json!({
        "name": name,
        "active": file.active.as_deref() == Some(name.as_str()),
        "db": p.db.as_deref().map(redact),
        "artifacts": p.artifacts,
        "orchestrator": p.orchestrator,
        "plugins": p.plugins,
        "trust_imports": p.trust_imports,
        "kubernetes": p.kubernetes,
    });
    println!("{}", serde_json::to_string_pretty(&shown).unwrap_or_default());
    Ok(exit::OK)
}

pub fn delete(name: &str) -> CliResult<u8> {
    let mut file = load()?;
    if file.stacks.remove(name).is_none() {
        return Err(CliError {
            code: exit::NOT_FOUND,
            message: format!("no stack named '{name}'"),
        });
    }
    if file.active.as_deref() == Some(name) {
        file.active = None;
    }
    save(&file)?;
    eprintln!("deleted stack {name}");
    Ok(exit::OK)
}
