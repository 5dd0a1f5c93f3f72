//! Installed plugins: `<home>/plugins/<name>/plugin.wasm` beside
//! `plugin.toml` (what the plugin declared, what the user granted, its
//! configuration).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{kind_name, valid_plugin_name, ConfigKey, Grant, Kind, Manifest, PluginError};

/// An installed plugin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledPlugin {
    pub name: String,
    pub version: String,
    /// alerter, tracker-sink, data-validator or materializer.
    pub kind: String,
    pub description: String,
    /// What it asked for (see [`Manifest::http_hosts`]).
    pub http_hosts: Vec<String>,
    /// (from, to) media types, for a materializer.
    #[serde(default)]
    pub conversions: Vec<(String, String)>,
    /// blake3 of the component.
    pub digest: String,
    /// What the user granted.
    pub grant: Grant,
    /// Its configuration (a JSON object).
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
    /// The configuration keys it reads.
    #[serde(default)]
    pub config_keys: Vec<InstalledConfigKey>,
    /// Where the component is.
    #[serde(skip)]
    pub component: PathBuf,
}

/// A configuration key, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InstalledConfigKey {
    pub name: String,
    pub description: String,
    pub required: bool,
}

impl From<&ConfigKey> for InstalledConfigKey {
    fn from(k: &ConfigKey) -> Self {
        Self {
            name: k.name.clone(),
            description: k.description.clone(),
            required: k.required,
        }
    }
}

impl InstalledPlugin {
    /// Its configuration with `overrides` (a stack's, a gate's) on top.
    pub fn config_with(&self, overrides: Option<&serde_json::Map<String, serde_json::Value>>) -> String {
        let mut config = self.config.clone();
        for (k, v) in overrides.into_iter().flatten() {
            config.insert(k.clone(), v.clone());
        }
        serde_json::Value::Object(config).to_string()
    }
}

/// Where plugins are installed.
#[derive(Debug, Clone)]
pub struct PluginHome {
    root: PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PluginError + 'a {
    move |source| PluginError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl PluginHome {
    /// Plugins under `<home>/plugins`.
    pub fn new(home: &Path) -> Self {
        Self {
            root: home.join("plugins"),
        }
    }

    /// Installs the component at `component` (whose manifest is
    /// `manifest`) with `grant` and `config`. Copies the component, so the
    /// original may change or go.
    pub fn install(
        &self,
        component: &Path,
        manifest: &Manifest,
        grant: Grant,
        config: serde_json::Map<String, serde_json::Value>,
    ) -> Result<InstalledPlugin, PluginError> {
        if !valid_plugin_name(&manifest.name) {
            return Err(PluginError::NotAPlugin {
                path: component.to_owned(),
                message: format!(
                    "its name '{}' is not lowercase letters, digits and '-' (1-64, starting with a letter)",
                    manifest.name
                ),
            });
        }
        let dir = self.root.join(&manifest.name);
        if dir.join("plugin.toml").exists() {
            return Err(PluginError::AlreadyInstalled(manifest.name.clone()));
        }
        let bytes = std::fs::read(component).map_err(io("read", component))?;
        let staging = self.root.join(format!(".{}.installing", manifest.name));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(io("create", &staging))?;
        std::fs::write(staging.join("plugin.wasm"), &bytes).map_err(io("write", &staging))?;
        let plugin = InstalledPlugin {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            kind: kind_name(manifest.kind).into(),
            description: manifest.description.clone(),
            http_hosts: manifest.http_hosts.clone(),
            conversions: manifest.conversions.clone(),
            digest: blake3::hash(&bytes).to_hex().to_string(),
            grant,
            config,
            config_keys: manifest.config.iter().map(Into::into).collect(),
            component: dir.join("plugin.wasm"),
        };
        self.write_record(&staging, &plugin)?;
        // Whole or not at all: the directory appears with both files.
        std::fs::rename(&staging, &dir).map_err(io("install", &dir))?;
        Ok(plugin)
    }

    fn write_record(&self, dir: &Path, plugin: &InstalledPlugin) -> Result<(), PluginError> {
        let text = toml::to_string_pretty(plugin).map_err(|e| PluginError::BadConfig(e.to_string()))?;
        let path = dir.join("plugin.toml");
        let tmp = dir.join("plugin.toml.tmp");
        std::fs::write(&tmp, text).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(io("write", &path))
    }

    /// One installed plugin.
    pub fn get(&self, name: &str) -> Result<InstalledPlugin, PluginError> {
        if !valid_plugin_name(name) {
            return Err(PluginError::NotInstalled(name.into()));
        }
        let dir = self.root.join(name);
        let path = dir.join("plugin.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(PluginError::NotInstalled(name.into())),
            Err(e) => return Err(io("read", &path)(e)),
        };
        let mut plugin: InstalledPlugin =
            toml::from_str(&text).map_err(|e| PluginError::BadConfig(format!("{}: {e}", path.display())))?;
        plugin.component = dir.join("plugin.wasm");
        Ok(plugin)
    }

    /// Every installed plugin, by name.
    pub fn list(&self) -> Result<Vec<InstalledPlugin>, PluginError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io("list", &self.root)(e)),
        };
        let mut plugins = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if valid_plugin_name(&name) {
                plugins.push(self.get(&name)?);
            }
        }
        plugins.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plugins)
    }

    /// Sets configuration keys of an installed plugin.
    pub fn configure(
        &self,
        name: &str,
        values: serde_json::Map<String, serde_json::Value>,
    ) -> Result<InstalledPlugin, PluginError> {
        let mut plugin = self.get(name)?;
        plugin.config.extend(values);
        self.write_record(&self.root.join(name), &plugin)?;
        Ok(plugin)
    }

    /// Uninstalls a plugin.
    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        self.get(name)?;
        let dir = self.root.join(name);
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))
    }
}

/// Checks an installed plugin is of `kind`.
pub(crate) fn expect_kind(plugin: &InstalledPlugin, kind: Kind) -> Result<(), PluginError> {
    if plugin.kind == kind_name(kind) {
        Ok(())
    } else {
        Err(PluginError::WrongKind {
            name: plugin.name.clone(),
            actual: plugin.kind.clone(),
            wanted: kind_name(kind).into(),
        })
    }
}
