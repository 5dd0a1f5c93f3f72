//! `weft plugin install|list|info|remove|config`.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};
use weft_plugins::{kind_name, Grant, InstalledPlugin, Manifest, PluginError, PluginHome, PluginHost};
use weft_runtime::Runtime;

use crate::context::{weft_home, CliError, CliResult, Stack, Stores};
use crate::exit;

impl From<PluginError> for CliError {
    fn from(e: PluginError) -> Self {
        let code = match e {
            PluginError::NotInstalled(_) => exit::NOT_FOUND,
            _ => exit::USAGE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

/// The plugin home and a host to call plugins with, on `runtime` (a run's)
/// or on one of its own.
pub fn open(runtime: Option<Runtime>) -> CliResult<(PluginHome, PluginHost)> {
    let home = weft_home()?;
    let runtime = match runtime {
        Some(runtime) => runtime,
        None => Runtime::new(crate::commands::runtime_options(&home.join("cache").join("compiled"))?)
            .map_err(|e| CliError::usage(e.to_string()))?,
    };
    Ok((PluginHome::new(&home), PluginHost::new(runtime)?))
}

/// `key=value` pairs as a JSON object: a value that parses as JSON is
/// taken as such (numbers, booleans, lists), anything else as a string.
pub fn parse_config(pairs: &[String]) -> CliResult<Map<String, Value>> {
    let mut map = Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CliError::usage(format!("--config {pair}: expected KEY=VALUE")))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(CliError::usage(format!("--config {pair}: the key is empty")));
        }
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        map.insert(key.to_string(), value);
    }
    Ok(map)
}

/// The component of `path`: a `.wasm` file, or a directory with a
/// `weft-plugin.toml` naming its component (built with its `build` command
/// when missing).
fn component_of(path: &Path) -> CliResult<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_owned());
    }
    let file = path.join("weft-plugin.toml");
    let text = std::fs::read_to_string(&file).map_err(|e| {
        CliError::usage(format!(
            "{} is a directory without a readable weft-plugin.toml ({e}); pass the .wasm file instead",
            path.display()
        ))
    })?;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Descriptor {
        component: PathBuf,
        build: Option<String>,
    }
    let d: Descriptor = toml::from_str(&text).map_err(|e| CliError::usage(format!("{}: {e}", file.display())))?;
    let component = path.join(&d.component);
    if !component.exists() {
        let Some(build) = d.build else {
            return Err(CliError::usage(format!("{} does not exist", component.display())));
        };
        eprintln!("building the plugin: {build}");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(&build)
            .current_dir(path)
            .status()
            .map_err(|e| CliError::usage(format!("cannot run `{build}`: {e}")))?;
        if !status.success() || !component.exists() {
            return Err(CliError::usage(format!(
                "`{build}` did not build {}",
                component.display()
            )));
        }
    }
    Ok(component)
}

fn describe_manifest(m: &Manifest) -> String {
    let mut text = format!("{} {} ({}): {}\n", m.name, m.version, kind_name(m.kind), m.description);
    let capabilities = weft_plugins::Capability::requested(m);
    if capabilities.is_empty() {
        text.push_str("  asks for: nothing (no network)\n");
    } else {
        text.push_str("  asks to:\n");
        for c in &capabilities {
            text.push_str(&format!("    - {}\n", c.describe()));
        }
    }
    for key in &m.config {
        text.push_str(&format!(
            "  config {}{}: {}\n",
            key.name,
            if key.required { " (required)" } else { "" },
            key.description
        ));
    }
    text
}

pub async fn install(path: &Path, allow: &[String], yes: bool, config: &[String]) -> CliResult<u8> {
    let (home, host) = open(None)?;
    let component = component_of(path)?;
    let manifest = host.describe(&component).await?;
    eprint!("{}", describe_manifest(&manifest));
    let config = parse_config(config)?;
    let grant = match Grant::consent(&manifest, allow, yes) {
        Ok(grant) => grant,
        Err(PluginError::ConsentRequired { .. }) if std::io::stdin().is_terminal() && !yes => {
            eprint!("Grant what it asks for? [y/N] ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            let _ = std::io::stdin().read_line(&mut answer);
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                return Err(CliError::usage("not installed: consent refused"));
            }
            Grant::consent(&manifest, allow, true)?
        }
        Err(e) => return Err(e.into()),
    };
    let plugin = home.install(&component, &manifest, grant, config)?;
    for key in plugin
        .config_keys
        .iter()
        .filter(|k| k.required && !plugin.config.contains_key(&k.name))
    {
        eprintln!(
            "note: set its required config '{}' with `weft plugin config {} {}=...` (or in a stack)",
            key.name, plugin.name, key.name
        );
    }
    eprintln!(
        "installed {} {} ({}), granted: {}",
        plugin.name,
        plugin.version,
        plugin.kind,
        grant_text(&plugin)
    );
    Ok(exit::OK)
}

fn grant_text(p: &InstalledPlugin) -> String {
    if p.grant.http_hosts.is_empty() {
        "nothing".into()
    } else {
        p.grant
            .http_hosts
            .iter()
            .map(|h| format!("http:{h}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn plugin_json(p: &InstalledPlugin) -> Value {
    json!({
        "name": p.name,
        "version": p.version,
        "kind": p.kind,
        "description": p.description,
        "asks_http_hosts": p.http_hosts,
        "granted_http_hosts": p.grant.http_hosts,
        "config": p.config,
        "conversions": p.conversions,
        "digest": p.digest,
    })
}

pub fn list(json: bool) -> CliResult<u8> {
    let home = PluginHome::new(&weft_home()?);
    let plugins = home.list()?;
    if json {
        println!("{}", Value::Array(plugins.iter().map(plugin_json).collect()));
        return Ok(exit::OK);
    }
    if plugins.is_empty() {
        eprintln!("no plugins installed (weft plugin install FILE.wasm|DIR)");
    }
    for p in &plugins {
        println!("{:24} {:8} {:15} granted: {}", p.name, p.version, p.kind, grant_text(p));
    }
    Ok(exit::OK)
}

pub fn info(name: &str) -> CliResult<u8> {
    let p = PluginHome::new(&weft_home()?).get(name)?;
    println!("{}", serde_json::to_string_pretty(&plugin_json(&p)).unwrap_or_default());
    Ok(exit::OK)
}

pub fn remove(name: &str) -> CliResult<u8> {
    PluginHome::new(&weft_home()?).remove(name)?;
    eprintln!("removed {name}");
    Ok(exit::OK)
}

pub fn configure(name: &str, pairs: &[String]) -> CliResult<u8> {
    let p = PluginHome::new(&weft_home()?).configure(name, parse_config(pairs)?)?;
    println!("{}", Value::Object(p.config));
    Ok(exit::OK)
}

/// `weft plugin convert`: an artifact through a materializer.
pub async fn convert(
    stores: &Stores,
    stack: &Stack,
    key: &str,
    to: &str,
    plugin: Option<&str>,
    output: Option<&Path>,
) -> CliResult<u8> {
    let (home, host) = open(None)?;
    let artifact = stores.store.artifact(key).await?;
    let from = artifact.media_type.split(';').next().unwrap_or("").trim().to_string();
    let plugin = match plugin {
        Some(name) => home.get(name)?,
        None => home
            .list()?
            .into_iter()
            .find(|p| p.conversions.iter().any(|(f, t)| *f == from && t == to))
            .ok_or_else(|| CliError::usage(format!("no installed materializer converts {from} to {to}")))?,
    };
    if weft_artifacts::ArtifactKind::parse(&artifact.kind) == Some(weft_artifacts::ArtifactKind::Dir) {
        return Err(CliError::usage(format!(
            "{} is a directory; materializers convert files",
            artifact.name
        )));
    }
    let data = stores.artifacts.get_bytes(&artifact.digest).await?;
    let input = weft_plugins::Artifact {
        name: artifact.name.clone(),
        media_type: artifact.media_type.clone(),
        data: data.to_vec(),
    };
    let config = plugin.config_with(stack.plugin_config.get(&plugin.name));
    let config = if config.contains(weft_secrets::REFERENCE_START) {
        crate::secrets::open()?
            .resolve_json(&config)
            .map_err(|e| CliError::usage(format!("the configuration of {}: {e}", plugin.name)))?
            .text
            .to_string()
    } else {
        config
    };
    let report = host.convert(&plugin, &config, &input, to).await?;
    let bytes = report
        .result
        .map_err(|e| CliError::usage(format!("{} could not convert {}: {e}", plugin.name, artifact.name)))?;
    match output {
        Some(path) => std::fs::write(path, &bytes)
            .map_err(|e| CliError::usage(format!("cannot write {}: {e}", path.display())))?,
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| CliError::usage(format!("cannot write: {e}")))?,
    }
    eprintln!(
        "{} v{} ({from}) → {to} with {}",
        artifact.name, artifact.version, plugin.name
    );
    Ok(exit::OK)
}
