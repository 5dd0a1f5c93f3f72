//! `weft models`: the model registry from the command line, and the
//! registration of pipeline outputs named under `[models]` in weft.toml.

use std::path::{Path, PathBuf};

use serde_json::json;
use weft_store::{ModelVersion, RegisteredModel};

use crate::context::{CliError, CliResult, Stores};
use crate::exit;

/// What becomes a model version.
pub enum Source {
    /// An artifact: id (or prefix), name or name:version.
    Artifact(String),
    /// A model file made outside weft.
    File(PathBuf),
}

/// Registers `source` as the next version of `name` (the same bytes as
/// the newest version: that version).
pub async fn register(
    stores: &Stores,
    source: &Source,
    name: &str,
    served_by: Option<&Path>,
) -> CliResult<ModelVersion> {
    weft_store::validate_model_name(name).map_err(CliError::usage)?;
    let (store, artifacts) = (&stores.store, &stores.artifacts);
    let registered = match source {
        Source::Artifact(key) => weft_pipeline::register_model(store, artifacts, key, name, served_by).await,
        Source::File(path) => weft_pipeline::register_model_file(store, artifacts, path, name, served_by).await,
    };
    registered.map_err(|e| match e {
        weft_pipeline::ExecError::Store(e) => e.into(),
        other => CliError::usage(other.to_string()),
    })
}

pub async fn register_command(
    stores: &Stores,
    source: &Source,
    name: &str,
    alias: Option<&str>,
    served_by: Option<&Path>,
) -> CliResult<u8> {
    if let Some(alias) = alias {
        weft_store::validate_alias(alias).map_err(CliError::usage)?;
    }
    let version = register(stores, source, name, served_by).await?;
    if let Some(alias) = alias {
        stores.store.set_model_alias(name, alias, version.version).await?;
    }
    let from = match source {
        Source::Artifact(key) => tag(&version, "weft.artifact").unwrap_or(key).to_string(),
        Source::File(path) => path.display().to_string(),
    };
    eprintln!(
        "{name} version {} ← {from}{}",
        version.version,
        alias.map(|a| format!(" (@{a})")).unwrap_or_default()
    );
    Ok(exit::OK)
}

pub async fn alias_command(stores: &Stores, name: &str, alias: &str, version: i64) -> CliResult<u8> {
    weft_store::validate_alias(alias).map_err(CliError::usage)?;
    stores.store.set_model_alias(name, alias, version).await?;
    eprintln!("{name}@{alias} → version {version}");
    Ok(exit::OK)
}

fn tag<'a>(v: &'a ModelVersion, key: &str) -> Option<&'a str> {
    v.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn model_json(m: &RegisteredModel) -> serde_json::Value {
    json!({
        "name": m.name,
        "description": m.description,
        "created_at": m.creation_timestamp,
        "updated_at": m.last_updated_timestamp,
        "aliases": m.aliases.iter().map(|(a, v)| json!({"alias": a, "version": v})).collect::<Vec<_>>(),
        "tags": m.tags.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
    })
}

pub async fn list_command(stores: &Stores, json: bool) -> CliResult<u8> {
    let models = stores.store.registered_models(None, 10_000, 0).await?;
    if json {
        let out: Vec<_> = models.iter().map(model_json).collect();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!("{:<32} {:>7}  ALIASES", "MODEL", "LATEST");
    for m in models {
        let latest = m
            .latest_versions
            .first()
            .map(|v| v.version.to_string())
            .unwrap_or_else(|| "-".into());
        let aliases: Vec<String> = m.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
        println!("{:<32} {:>7}  {}", m.name, latest, aliases.join(", "));
    }
    Ok(exit::OK)
}

pub async fn show_command(stores: &Stores, name: &str, json: bool) -> CliResult<u8> {
    let model = stores.store.registered_model(name).await?;
    let versions = stores.store.model_versions(Some(name), None, 10_000, 0).await?;
    if json {
        let mut out = model_json(&model);
        out["versions"] = serde_json::to_value(&versions).unwrap_or_default();
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
        return Ok(exit::OK);
    }
    println!(
        "{}{}",
        model.name,
        if model.description.is_empty() {
            String::new()
        } else {
            format!(" — {}", model.description)
        }
    );
    for v in &versions {
        let aliases = if v.aliases.is_empty() {
            String::new()
        } else {
            format!("  @{}", v.aliases.join(" @"))
        };
        println!("  version {}{aliases}", v.version);
        println!("    source     {}", v.source);
        if let Some(a) = tag(v, "weft.artifact") {
            println!(
                "    artifact   {a} (blake3:{})",
                tag(v, "weft.digest").map(|d| &d[..16.min(d.len())]).unwrap_or("?")
            );
        }
        if let (Some(run), Some(step)) = (tag(v, "weft.run_id"), tag(v, "weft.step")) {
            println!(
                "    made by    step '{step}' of run {run} (component {})",
                tag(v, "weft.component_digest")
                    .map(|d| &d[..16.min(d.len())])
                    .unwrap_or("?")
            );
        }
        if let Some(id) = tag(v, "weft.artifact_id") {
            println!("    lineage    weft lineage {id}");
        }
    }
    if versions.is_empty() {
        println!("  no versions yet");
    }
    Ok(exit::OK)
}
