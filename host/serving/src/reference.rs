//! Model URIs, as MLflow writes them.

use crate::ServeError;

/// Which version of a registered model to serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// `models:/NAME@ALIAS`: followed when the alias moves.
    Alias { name: String, alias: String },
    /// `models:/NAME/VERSION`.
    Version { name: String, version: i64 },
    /// `models:/NAME/latest`: the newest version, followed as new ones come.
    Latest { name: String },
}

impl ModelRef {
    /// Parses a model URI.
    pub fn parse(uri: &str) -> Result<Self, ServeError> {
        let bad = |message: &str| ServeError::Reference {
            uri: uri.to_string(),
            message: message.to_string(),
        };
        let rest = uri
            .strip_prefix("models:/")
            .ok_or_else(|| bad("give models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest"))?;
        let name_ok = |name: &str| weft_store::validate_model_name(name).map_err(|m| bad(&m));
        if let Some((name, alias)) = rest.split_once('@') {
            name_ok(name)?;
            weft_store::validate_alias(alias).map_err(|m| bad(&m))?;
            return Ok(ModelRef::Alias {
                name: name.to_string(),
                alias: alias.to_string(),
            });
        }
        let (name, version) = rest.split_once('/').ok_or_else(|| {
            bad("name a version (models:/NAME/3), the latest (models:/NAME/latest) or an alias (models:/NAME@champion)")
        })?;
        name_ok(name)?;
        if version == "latest" {
            return Ok(ModelRef::Latest { name: name.to_string() });
        }
        match version.parse::<i64>() {
            Ok(version) if version > 0 => Ok(ModelRef::Version {
                name: name.to_string(),
                version,
            }),
            _ => Err(bad("a version is a number from 1")),
        }
    }

    /// The registered model's name.
    pub fn name(&self) -> &str {
        match self {
            ModelRef::Alias { name, .. } | ModelRef::Version { name, .. } | ModelRef::Latest { name } => name,
        }
    }

    /// Whether the version it names can change (an alias, `latest`).
    pub fn moves(&self) -> bool {
        !matches!(self, ModelRef::Version { .. })
    }

    /// The version it names now.
    pub async fn resolve(&self, store: &weft_store::Store) -> Result<weft_store::ModelVersion, ServeError> {
        let found = match self {
            ModelRef::Alias { name, alias } => store.model_version_by_alias(name, alias).await,
            ModelRef::Version { name, version } => store.model_version(name, *version).await,
            ModelRef::Latest { name } => match store.registered_model(name).await {
                Ok(model) => {
                    return model
                        .latest_versions
                        .first()
                        .cloned()
                        .ok_or_else(|| ServeError::NotFound(format!("registered model '{name}' has no versions")))
                }
                Err(e) => Err(e),
            },
        };
        found.map_err(|e| match e {
            weft_store::StoreError::NotFound { .. } => ServeError::NotFound(format!("{self}: {e}")),
            e => ServeError::Registry(format!("{self}: {e}")),
        })
    }
}

impl std::fmt::Display for ModelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelRef::Alias { name, alias } => write!(f, "models:/{name}@{alias}"),
            ModelRef::Version { name, version } => write!(f, "models:/{name}/{version}"),
            ModelRef::Latest { name } => write!(f, "models:/{name}/latest"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_uris() {
        assert_eq!(
            ModelRef::parse("models:/iris@champion").unwrap(),
            ModelRef::Alias {
                name: "iris".into(),
                alias: "champion".into()
            }
        );
        assert_eq!(
            ModelRef::parse("models:/iris/3").unwrap(),
            ModelRef::Version {
                name: "iris".into(),
                version: 3
            }
        );
        assert!(ModelRef::parse("models:/iris/latest").unwrap().moves());
        for bad in [
            "iris",
            "models:/iris",
            "models:/iris/0",
            "models:/iris/x",
            "models:/@a",
            "models:/iris@",
        ] {
            assert!(ModelRef::parse(bad).is_err(), "{bad}");
        }
    }
}
