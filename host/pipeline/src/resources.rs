//! What a step asks of the orchestrator that runs it away from the run's
//! process (`[steps.X.resources]` in weft.toml): cores, memory, wall time,
//! partition, generic resources, and extra `sbatch` flags. Not part of the
//! cache key: where a step runs does not change what it writes.

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
        Ok(())
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
}
