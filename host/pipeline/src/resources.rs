//! What a step asks of the orchestrator that runs it away from the run's
//! process (`[steps.X.resources]` in weft.toml): cores, memory and wall
//! time for every orchestrator; partition, generic resources and extra
//! `sbatch` flags for Slurm; namespace, service account, node selector,
//! tolerations and extended resources for Kubernetes. Not part of the
//! cache key: where a step runs does not change what it writes.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A step's resources, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Cores (`--cpus-per-task`).
    #[serde(default)]
    pub cpus: Option<u32>,
    /// Memory, a number with an optional K, M, G or T suffix (`--mem`).
    #[serde(default)]
    pub memory: Option<String>,
    /// Wall time in Slurm's form: `MM`, `MM:SS`, `HH:MM:SS`, `D-HH`,
    /// `D-HH:MM` or `D-HH:MM:SS` (`--time`).
    #[serde(default)]
    pub time: Option<String>,
    /// The partition (`--partition`), e.g. `gpu`.
    #[serde(default)]
    pub partition: Option<String>,
    /// Generic resources (`--gres`), e.g. `gpu:1`.
    #[serde(default)]
    pub gres: Option<String>,
    /// More `sbatch` flags, each one argument (`--qos=high`).
    #[serde(default)]
    pub sbatch: Vec<String>,
    /// Kubernetes: the namespace of the step's Job (default: the stack's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// Kubernetes: the service account its pod runs as (default: the
    /// stack's).
    #[serde(default)]
    pub service_account: Option<String>,
    /// Kubernetes: node labels its pod must run on
    /// (`{ "cloud.google.com/gke-accelerator" = "nvidia-l4" }`).
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Kubernetes: the node taints its pod tolerates.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
    /// Kubernetes: extended resources its container is limited to (and
    /// requests), e.g. `{ "nvidia.com/gpu" = "1" }`.
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

/// A Kubernetes toleration (`tolerations = [{ key = "gpu", operator =
/// "Exists", effect = "NoSchedule" }]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    /// The taint's key (none, with `Exists`: every taint).
    #[serde(default)]
    pub key: Option<String>,
    /// `Equal` (the default) or `Exists`.
    #[serde(default)]
    pub operator: Option<String>,
    /// The taint's value, with `Equal`.
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute` (none: all).
    #[serde(default)]
    pub effect: Option<String>,
    /// With `NoExecute`: how long the pod stays once the taint appears.
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

/// Flags weft sets itself on every job.
const RESERVED_FLAGS: [&str; 8] = [
    "--wrap",
    "--output",
    "--error",
    "--parsable",
    "--job-name",
    "--export",
    "--chdir",
    "--dependency",
];

/// A DNS-1123 label (a Kubernetes namespace's name): 1 to 63 lowercase
/// letters, digits and `-`, not at either end.
pub fn is_dns_label(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// A DNS-1123 subdomain (a Kubernetes service account's or Secret's
/// name): DNS-1123 labels joined by `.`, at most 253 characters.
pub fn is_dns_subdomain(value: &str) -> bool {
    value.len() <= 253 && value.split('.').all(is_dns_label)
}

/// A label value: at most 63 letters, digits, `-`, `_` or `.`, beginning
/// and ending with a letter or digit (or empty).
fn is_label_value(value: &str) -> bool {
    value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && value.bytes().next().is_none_or(|b| b.is_ascii_alphanumeric())
        && value.bytes().last().is_none_or(|b| b.is_ascii_alphanumeric())
}

/// A qualified name (`[PREFIX/]NAME`): a label key or a resource name.
fn is_qualified_name(value: &str) -> bool {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns_subdomain(p)) && !name.is_empty() && is_label_value(name)
}

/// A resource quantity: a decimal number and an optional suffix (`1`,
/// `500m`, `2Gi`).
fn is_quantity(value: &str) -> bool {
    let digits = value.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &value[digits.len()..];
    !digits.is_empty()
        && value.len() <= 32
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1
        && [
            "", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
        ]
        .contains(&suffix)
}

fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 128
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.:,=+-".contains(&b))
}

impl Resources {
    /// Checks every value; the error says which and why.
    pub(crate) fn validate(&self) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((key.to_string(), message.to_string()));
        if let Some(cpus) = self.cpus {
            if !(1..=4096).contains(&cpus) {
                return bad("cpus", "from 1 to 4096");
            }
        }
        if let Some(memory) = &self.memory {
            let digits = memory.trim_end_matches(['K', 'M', 'G', 'T']);
            let suffixes = memory.len() - digits.len();
            if digits.is_empty() || digits.len() > 12 || suffixes > 1 || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return bad("memory", "a number with an optional K, M, G or T suffix, e.g. 4G");
            }
        }
        if let Some(time) = &self.time {
            if !valid_time(time) {
                return bad("time", "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS");
            }
        }
        for (key, value) in [("partition", &self.partition), ("gres", &self.gres)] {
            if let Some(value) = value {
                if !is_name(value) {
                    return bad(key, "letters, digits and _.:,=+- (at most 128)");
                }
            }
        }
        if self.sbatch.len() > 32 {
            return bad("sbatch", "at most 32 flags");
        }
        for flag in &self.sbatch {
            let name = flag.split('=').next().unwrap_or_default();
            if !flag.starts_with("--") || flag.len() > 256 || flag.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return bad("sbatch", "each flag is one `--name` or `--name=value` with no spaces");
            }
            if RESERVED_FLAGS.contains(&name) {
                return bad("sbatch", &format!("{name} is set by weft"));
            }
        }
        if let Some(namespace) = &self.namespace {
            if !is_dns_label(namespace) {
                return bad(
                    "namespace",
                    "a Kubernetes namespace: lowercase letters, digits and '-' (at most 63)",
                );
            }
        }
        if let Some(account) = &self.service_account {
            if !is_dns_subdomain(account) {
                return bad(
                    "service_account",
                    "a Kubernetes name: lowercase letters, digits, '-' and '.' (at most 253)",
                );
            }
        }
        if self.node_selector.len() > 32 || self.tolerations.len() > 32 || self.limits.len() > 32 {
            return bad(
                "node_selector",
                "at most 32 entries each in node_selector, tolerations and limits",
            );
        }
        for (key, value) in &self.node_selector {
            if !is_qualified_name(key) || !is_label_value(value) {
                return bad(
                    "node_selector",
                    &format!("{key} = {value:?} is not a node label (KEY or PREFIX/KEY = VALUE)"),
                );
            }
        }
        for toleration in &self.tolerations {
            toleration
                .validate()
                .map_err(|message| ("tolerations".to_string(), message))?;
        }
        for (name, quantity) in &self.limits {
            if !is_qualified_name(name) || !is_quantity(quantity) {
                return bad(
                    "limits",
                    &format!("{name} = {quantity:?}: a resource name and a quantity, e.g. \"nvidia.com/gpu\" = \"1\""),
                );
            }
            if name == "cpu" || name == "memory" {
                return bad("limits", "cpu and memory come from `cpus` and `memory`");
            }
        }
        Ok(())
    }

    /// The memory as a Kubernetes quantity: Slurm's `8G` (GiB) is `8Gi`,
    /// and a bare number is in MiB, as Slurm reads it.
    pub fn kubernetes_memory(&self) -> Option<String> {
        let memory = self.memory.as_ref()?;
        Some(match memory.strip_suffix(['K', 'M', 'G', 'T']) {
            Some(number) => format!("{number}{}i", &memory[number.len()..]),
            None => format!("{memory}Mi"),
        })
    }

    /// The wall time in seconds (Slurm's forms: `MM`, `MM:SS`,
    /// `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`).
    pub fn time_seconds(&self) -> Option<i64> {
        let time = self.time.as_ref()?;
        let number = |s: &str| s.parse::<i64>().ok();
        let (days, rest) = match time.split_once('-') {
            Some((days, rest)) => (number(days)?, rest),
            None => (0, time.as_str()),
        };
        let parts: Vec<i64> = rest.split(':').map(number).collect::<Option<_>>()?;
        let (hours, minutes, seconds) = match (time.contains('-'), parts.as_slice()) {
            (true, [h]) => (*h, 0, 0),
            (true, [h, m]) => (*h, *m, 0),
            (_, [h, m, s]) => (*h, *m, *s),
            (false, [m]) => (0, *m, 0),
            (false, [m, s]) => (0, *m, *s),
            _ => return None,
        };
        Some(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    }

    /// The `sbatch` arguments these resources make.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if let Some(cpus) = self.cpus {
            args.push(format!("--cpus-per-task={cpus}"));
        }
        if let Some(memory) = &self.memory {
            args.push(format!("--mem={memory}"));
        }
        if let Some(time) = &self.time {
            args.push(format!("--time={time}"));
        }
        if let Some(partition) = &self.partition {
            args.push(format!("--partition={partition}"));
        }
        if let Some(gres) = &self.gres {
            args.push(format!("--gres={gres}"));
        }
        args.extend(self.sbatch.iter().cloned());
        args
    }
}

impl Toleration {
    fn validate(&self) -> Result<(), String> {
        if let Some(key) = &self.key {
            if !is_qualified_name(key) {
                return Err(format!("key {key:?} is not a taint key"));
            }
        }
        match self.operator.as_deref() {
            None | Some("Equal") => {
                if self.key.is_none() {
                    return Err("a toleration with operator Equal names a key".into());
                }
            }
            Some("Exists") => {
                if self.value.is_some() {
                    return Err("a toleration with operator Exists has no value".into());
                }
            }
            Some(other) => return Err(format!("operator {other:?}: Equal or Exists")),
        }
        if let Some(value) = &self.value {
            if !is_label_value(value) {
                return Err(format!("value {value:?} is not a taint value"));
            }
        }
        match self.effect.as_deref() {
            None | Some("NoSchedule") | Some("PreferNoSchedule") | Some("NoExecute") => {}
            Some(other) => return Err(format!("effect {other:?}: NoSchedule, PreferNoSchedule or NoExecute")),
        }
        if self.toleration_seconds.is_some() && self.effect.as_deref() != Some("NoExecute") {
            return Err("toleration_seconds goes with effect NoExecute".into());
        }
        Ok(())
    }
}

fn valid_time(time: &str) -> bool {
    let (days, rest) = match time.split_once('-') {
        Some((days, rest)) => (Some(days), rest),
        None => (None, time),
    };
    let number = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if let Some(days) = days {
        if !number(days) {
            return false;
        }
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| number(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_become_sbatch_flags() {
        let resources = Resources {
            cpus: Some(4),
            memory: Some("8G".into()),
            time: Some("1-02:00:00".into()),
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            sbatch: vec!["--qos=high".into()],
            ..Default::default()
        };
        assert_eq!(resources.validate(), Ok(()));
        assert_eq!(
            resources.sbatch_args(),
            [
                "--cpus-per-task=4",
                "--mem=8G",
                "--time=1-02:00:00",
                "--partition=gpu",
                "--gres=gpu:1",
                "--qos=high"
            ]
        );
        for (bad, key) in [
            (
                Resources {
                    cpus: Some(0),
                    ..Default::default()
                },
                "cpus",
            ),
            (
                Resources {
                    memory: Some("8GB".into()),
                    ..Default::default()
                },
                "memory",
            ),
            (
                Resources {
                    memory: Some("lots".into()),
                    ..Default::default()
                },
                "memory",
            ),
            (
                Resources {
                    time: Some("1:2:3:4".into()),
                    ..Default::default()
                },
                "time",
            ),
            (
                Resources {
                    partition: Some("a b".into()),
                    ..Default::default()
                },
                "partition",
            ),
            (
                Resources {
                    gres: Some("gpu;rm".into()),
                    ..Default::default()
                },
                "gres",
            ),
            (
                Resources {
                    sbatch: vec!["--wrap=rm -rf /".into()],
                    ..Default::default()
                },
                "sbatch",
            ),
            (
                Resources {
                    sbatch: vec!["--output=/etc/passwd".into()],
                    ..Default::default()
                },
                "sbatch",
            ),
            (
                Resources {
                    sbatch: vec!["-p".into()],
                    ..Default::default()
                },
                "sbatch",
            ),
        ] {
            assert_eq!(bad.validate().map_err(|(k, _)| k), Err(key.to_string()), "{bad:?}");
        }
    }

    #[test]
    fn kubernetes_values_are_checked_and_converted() {
        let resources = Resources {
            memory: Some("8G".into()),
            time: Some("1-02:03:04".into()),
            namespace: Some("ml-team".into()),
            service_account: Some("weft.worker".into()),
            node_selector: [("cloud.google.com/gke-accelerator".to_string(), "nvidia-l4".to_string())].into(),
            tolerations: vec![
                Toleration {
                    key: Some("nvidia.com/gpu".into()),
                    operator: Some("Exists".into()),
                    effect: Some("NoSchedule".into()),
                    ..Default::default()
                },
                Toleration {
                    key: Some("dedicated".into()),
                    value: Some("ml".into()),
                    effect: Some("NoExecute".into()),
                    toleration_seconds: Some(60),
                    ..Default::default()
                },
            ],
            limits: [("nvidia.com/gpu".to_string(), "1".to_string())].into(),
            ..Default::default()
        };
        assert_eq!(resources.validate(), Ok(()));
        assert_eq!(resources.kubernetes_memory().as_deref(), Some("8Gi"));
        assert_eq!(resources.time_seconds(), Some(((24 + 2) * 60 + 3) * 60 + 4));
        for (time, seconds) in [
            ("30", 1800),
            ("30:15", 1815),
            ("01:02:03", 3723),
            ("2-0", 172_800),
            ("1-1:30", 91_800),
        ] {
            let r = Resources {
                time: Some(time.into()),
                ..Default::default()
            };
            assert_eq!(r.time_seconds(), Some(seconds), "{time}");
        }
        let bare = Resources {
            memory: Some("512".into()),
            ..Default::default()
        };
        assert_eq!(bare.kubernetes_memory().as_deref(), Some("512Mi"));

        let bad = |r: Resources| r.validate().map_err(|(k, _)| k).err();
        assert_eq!(
            bad(Resources {
                namespace: Some("ML".into()),
                ..Default::default()
            })
            .as_deref(),
            Some("namespace")
        );
        assert_eq!(
            bad(Resources {
                node_selector: [("zone".to_string(), "a b".to_string())].into(),
                ..Default::default()
            })
            .as_deref(),
            Some("node_selector")
        );
        assert_eq!(
            bad(Resources {
                tolerations: vec![Toleration {
                    operator: Some("Sometimes".into()),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .as_deref(),
            Some("tolerations")
        );
        assert_eq!(
            bad(Resources {
                limits: [("memory".to_string(), "1Gi".to_string())].into(),
                ..Default::default()
            })
            .as_deref(),
            Some("limits")
        );
        assert_eq!(
            bad(Resources {
                limits: [("nvidia.com/gpu".to_string(), "one".to_string())].into(),
                ..Default::default()
            })
            .as_deref(),
            Some("limits")
        );
    }
}
