//! What a plugin may do: the capabilities it asks for, and the grant the
//! user consented to.

use serde::{Deserialize, Serialize};

use crate::{Manifest, PluginError};

/// One capability a plugin asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// HTTP requests to this host (`host` or `host:port`).
    Http(String),
    /// HTTP requests to hosts the user names (for a configurable URL).
    HttpAnyNamedHost,
}

impl Capability {
    /// How the consent prompt and errors describe it.
    pub fn describe(&self) -> String {
        match self {
            Capability::Http(host) => format!("send HTTP requests to {host} (--allow http:{host})"),
            Capability::HttpAnyNamedHost => {
                "send HTTP requests to hosts you name (--allow http:HOST[:PORT] for each)".into()
            }
        }
    }

    /// Every capability a manifest asks for.
    pub fn requested(manifest: &Manifest) -> Vec<Capability> {
        manifest
            .http_hosts
            .iter()
            .map(|h| {
                if h == "*" {
                    Capability::HttpAnyNamedHost
                } else {
                    Capability::Http(h.to_ascii_lowercase())
                }
            })
            .collect()
    }

    /// The `--allow` flag that grants it.
    pub fn flag(&self) -> String {
        match self {
            Capability::Http(host) => format!("http:{host}"),
            Capability::HttpAnyNamedHost => "http:HOST[:PORT]".into(),
        }
    }
}

/// What the user granted a plugin. Nothing else is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Hosts it may send HTTP requests to: `host` (the scheme's default
    /// port) or `host:port`.
    pub http_hosts: Vec<String>,
}

impl Grant {
    /// The grant for `manifest` from `--allow` values, with `yes` meaning
    /// the user confirmed every host the manifest names. Refused, listing
    /// what is missing, unless every capability asked for is granted; a
    /// grant of something not asked for is refused too.
    pub fn consent(manifest: &Manifest, allow: &[String], yes: bool) -> Result<Grant, PluginError> {
        let mut named = Vec::new();
        for flag in allow {
            let Some(host) = flag.strip_prefix("http:") else {
                return Err(PluginError::BadGrant(format!(
                    "unknown capability '{flag}': the only one is http:HOST[:PORT]"
                )));
            };
            named.push(valid_host(host)?);
        }
        let asked = Capability::requested(manifest);
        let any = asked.contains(&Capability::HttpAnyNamedHost);
        let mut missing = Vec::new();
        let mut granted = Vec::new();
        for capability in &asked {
            match capability {
                Capability::Http(host) if named.contains(host) || yes => granted.push(host.clone()),
                Capability::Http(_) => missing.push(capability.clone()),
                Capability::HttpAnyNamedHost => {}
            }
        }
        for host in &named {
            if granted.contains(host) {
                continue;
            }
            if !any {
                return Err(PluginError::BadGrant(format!(
                    "plugin '{}' did not ask to reach {host}; it asks for: {}",
                    manifest.name,
                    if asked.is_empty() {
                        "nothing".into()
                    } else {
                        asked.iter().map(Capability::flag).collect::<Vec<_>>().join(", ")
                    }
                )));
            }
            granted.push(host.clone());
        }
        if any && named.is_empty() {
            missing.push(Capability::HttpAnyNamedHost);
        }
        if !missing.is_empty() {
            return Err(PluginError::ConsentRequired {
                name: manifest.name.clone(),
                missing,
            });
        }
        Ok(Grant { http_hosts: granted })
    }

    /// Whether a request to `host` (port `port`, or the scheme's default)
    /// is granted.
    pub fn allows(&self, host: &str, port: Option<u16>, https: bool) -> bool {
        let host = host.to_ascii_lowercase();
        let default = if https { 443 } else { 80 };
        let port = port.unwrap_or(default);
        self.http_hosts.iter().any(|granted| match granted.rsplit_once(':') {
            Some((h, p)) => h == host && p.parse::<u16>().ok() == Some(port),
            None => *granted == host && port == default,
        })
    }
}

/// `host` or `host:port`, lowercased; no scheme, path or wildcard.
fn valid_host(text: &str) -> Result<String, PluginError> {
    let bad = || {
        PluginError::BadGrant(format!(
            "'{text}' is not a host: give HOST or HOST:PORT (no scheme, no path)"
        ))
    };
    let (host, port) = match text.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (text, None),
    };
    if host.is_empty()
        || host.len() > 253
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
    {
        return Err(bad());
    }
    if let Some(p) = port {
        p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    }
    Ok(text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Kind;

    fn manifest(hosts: &[&str]) -> Manifest {
        Manifest {
            name: "p".into(),
            version: "1.0.0".into(),
            kind: Kind::Alerter,
            description: String::new(),
            http_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            config: vec![],
            conversions: vec![],
        }
    }

    #[test]
    fn consent_covers_every_capability_and_nothing_more() {
        let m = manifest(&["api.example.com"]);
        assert!(matches!(
            Grant::consent(&m, &[], false),
            Err(PluginError::ConsentRequired { .. })
        ));
        let g = Grant::consent(&m, &["http:api.example.com".into()], false).unwrap();
        assert_eq!(g.http_hosts, ["api.example.com"]);
        assert_eq!(Grant::consent(&m, &[], true).unwrap(), g);
        assert!(matches!(
            Grant::consent(&m, &["http:other.example.com".into()], true),
            Err(PluginError::BadGrant(_))
        ));
        assert!(matches!(
            Grant::consent(&m, &["net:all".into()], true),
            Err(PluginError::BadGrant(_))
        ));
        assert!(matches!(
            Grant::consent(&m, &["http:https://x".into()], true),
            Err(PluginError::BadGrant(_))
        ));

        let any = manifest(&["*"]);
        assert!(matches!(
            Grant::consent(&any, &[], true),
            Err(PluginError::ConsentRequired { .. })
        ));
        let g = Grant::consent(&any, &["http:127.0.0.1:8080".into()], false).unwrap();
        assert_eq!(g.http_hosts, ["127.0.0.1:8080"]);
        assert_eq!(Grant::consent(&manifest(&[]), &[], false).unwrap(), Grant::default());
    }

    #[test]
    fn a_grant_allows_exactly_its_hosts_and_ports() {
        let g = Grant {
            http_hosts: vec!["127.0.0.1:8080".into(), "hooks.example.com".into()],
        };
        assert!(g.allows("127.0.0.1", Some(8080), false));
        assert!(!g.allows("127.0.0.1", Some(8081), false));
        assert!(!g.allows("localhost", Some(8080), false));
        assert!(g.allows("HOOKS.example.com", None, true));
        assert!(g.allows("hooks.example.com", Some(80), false));
        assert!(!g.allows("hooks.example.com", Some(8443), true));
        assert!(!g.allows("evil.example.com", None, true));
    }
}
