//! Step cache keys, built in one place from what feeds the sandbox.
//!
//! A [`StepSpec`] is everything a step run is given: the component, its
//! params, its inputs, its declared outputs, its grants and how it sees time
//! and randomness. The executor builds it, the sandbox is set up from it, it
//! is recorded with the step run (so `weft verify` can set up the same
//! sandbox again), and the cache key is its hash:
//!
//! ```text
//! key = blake3( "weft-cache-v2",
//!               host semantics   = blake3 of the wit/step sources (weft_runtime::STEP_WIT_DIGEST),
//!               determinism      = weft_runtime::VIRTUAL_SANDBOX + the engine's float settings,
//!                                  or "real" for a nondeterministic step,
//!               mounts           = "/inputs:ro /outputs:rw /tmp:rw",
//!               component digest = blake3 of the component's bytes,
//!               params           = canonical JSON (keys sorted, no whitespace),
//!               inputs           = sorted by name: (name, kind file|dir, digest),
//!               outputs          = sorted by name: (name, media type or the default),
//!               env grants       = sorted by name: (name, value) )
//! ```
//!
//! Every field is length-prefixed, so no two different specs hash the same
//! bytes. Limits are recorded with the spec but are not part of the key: a
//! limit can make a step fail, never change what a successful step wrote
//! (growing past the memory limit traps; the step cannot observe it).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use weft_artifacts::ArtifactKind;
use weft_runtime::{Determinism, Limits};

/// What the guest sees of the host's filesystem.
const MOUNTS: &str = "/inputs:ro /outputs:rw /tmp:rw";
/// Engine settings that make floating point the same on every CPU (see
/// weft-runtime's engine configuration).
const ENGINE_FLOATS: &str = "cranelift-nan-canonicalization relaxed-simd-deterministic";

/// Everything a step run is given; its hash is the cache key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    /// blake3 of the component's bytes (the archived component's digest).
    pub component: String,
    /// The params, a JSON object.
    pub params: Value,
    /// Inputs, sorted by name.
    pub inputs: Vec<SpecInput>,
    /// Declared outputs, sorted by name.
    pub outputs: Vec<SpecOutput>,
    /// Environment variables granted, sorted by name.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Real clocks and randomness instead of virtual ones.
    #[serde(default)]
    pub nondeterministic: bool,
    /// The host semantics it ran under (digest of the wit/step sources).
    pub host: String,
    /// How it was limited (recorded, not hashed).
    pub limits: SpecLimits,
}

/// One input of a [`StepSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecInput {
    pub name: String,
    pub kind: ArtifactKind,
    pub digest: String,
}

/// One declared output of a [`StepSpec`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecOutput {
    pub name: String,
    /// `None`: the default for its kind and name.
    pub media_type: Option<String>,
}

/// The limits a step ran under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecLimits {
    pub memory_bytes: u64,
    pub timeout_ms: u64,
    pub max_log_bytes: u64,
    pub max_resources: u64,
    pub max_output_bytes: u64,
    pub max_tmp_bytes: u64,
}

impl SpecLimits {
    /// The sandbox's part.
    pub fn sandbox(&self) -> Limits {
        Limits {
            memory_bytes: self.memory_bytes,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            max_log_bytes: self.max_log_bytes as usize,
            max_resources: self.max_resources as usize,
        }
    }
}

impl StepSpec {
    /// The cache key, as hex (see the module docs for the formula).
    pub fn key(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(b"weft-cache-v2");
        field(self.host.as_bytes());
        if self.nondeterministic {
            field(b"real");
        } else {
            field(weft_runtime::VIRTUAL_SANDBOX.as_bytes());
        }
        field(ENGINE_FLOATS.as_bytes());
        field(MOUNTS.as_bytes());
        field(self.component.as_bytes());
        field(canonical_json(&self.params).as_bytes());
        let mut inputs: Vec<&SpecInput> = self.inputs.iter().collect();
        inputs.sort_by(|a, b| a.name.cmp(&b.name));
        field(&(inputs.len() as u64).to_le_bytes());
        for input in inputs {
            field(input.name.as_bytes());
            field(input.kind.as_str().as_bytes());
            field(input.digest.as_bytes());
        }
        let mut outputs: Vec<&SpecOutput> = self.outputs.iter().collect();
        outputs.sort_by(|a, b| a.name.cmp(&b.name));
        field(&(outputs.len() as u64).to_le_bytes());
        for output in outputs {
            field(output.name.as_bytes());
            match &output.media_type {
                Some(media_type) => field(format!("={media_type}").as_bytes()),
                None => field(b"default"),
            }
        }
        let mut env: Vec<&(String, String)> = self.env.iter().collect();
        env.sort();
        field(&(env.len() as u64).to_le_bytes());
        for (name, value) in env {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        hasher.finalize().to_hex().to_string()
    }

    /// How the sandbox sees time and randomness: virtual and seeded from
    /// `key` (this spec's cache key), or real.
    pub fn determinism(&self, key: &str) -> Determinism {
        if self.nondeterministic {
            Determinism::Real
        } else {
            Determinism::seeded_from(key)
        }
    }

    /// The spec as recorded with a step run.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// A recorded spec.
    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("the recorded sandbox of this step run is unreadable: {e}"))
    }
}

/// JSON with object keys sorted at every level and no whitespace.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> StepSpec {
        StepSpec {
            component: "c".into(),
            params: json!({"a": 1, "b": 2}),
            inputs: vec![
                SpecInput {
                    name: "x".into(),
                    kind: ArtifactKind::File,
                    digest: "d1".into(),
                },
                SpecInput {
                    name: "y".into(),
                    kind: ArtifactKind::File,
                    digest: "d2".into(),
                },
            ],
            outputs: vec![SpecOutput {
                name: "out".into(),
                media_type: None,
            }],
            env: vec![],
            nondeterministic: false,
            host: weft_runtime::STEP_WIT_DIGEST.into(),
            limits: SpecLimits {
                memory_bytes: 1,
                timeout_ms: 1,
                max_log_bytes: 1,
                max_resources: 1,
                max_output_bytes: 1,
                max_tmp_bytes: 1,
            },
        }
    }

    fn changed(f: impl FnOnce(&mut StepSpec)) -> String {
        let mut s = spec();
        f(&mut s);
        s.key()
    }

    #[test]
    fn key_depends_on_everything_that_feeds_the_sandbox_and_nothing_else() {
        let base = spec().key();
        assert_eq!(
            base,
            changed(|s| {
                s.params = json!({"b": 2, "a": 1});
                s.inputs.reverse();
            }),
            "order does not matter"
        );
        assert_eq!(
            base,
            changed(|s| s.limits.memory_bytes = 2),
            "limits are not part of it"
        );
        let differs: Vec<(&str, String)> = vec![
            ("params", changed(|s| s.params = json!({"a": 1, "b": 3}))),
            ("input digest", changed(|s| s.inputs[1].digest = "d3".into())),
            ("input kind", changed(|s| s.inputs[1].kind = ArtifactKind::Dir)),
            ("which input is which", changed(|s| s.inputs[0].name = "z".into())),
            ("component", changed(|s| s.component = "other".into())),
            ("output name", changed(|s| s.outputs[0].name = "o".into())),
            (
                "output media type",
                changed(|s| s.outputs[0].media_type = Some("text/csv".into())),
            ),
            ("env grant", changed(|s| s.env = vec![("A".into(), "1".into())])),
            ("determinism", changed(|s| s.nondeterministic = true)),
            ("host semantics", changed(|s| s.host = "older".into())),
        ];
        for (what, key) in differs {
            assert_ne!(base, key, "{what} changes the key");
        }
        assert_ne!(
            changed(|s| s.inputs = vec![SpecInput {
                name: "ab".into(),
                kind: ArtifactKind::File,
                digest: "c".into()
            }]),
            changed(|s| s.inputs = vec![SpecInput {
                name: "a".into(),
                kind: ArtifactKind::File,
                digest: "bc".into()
            }]),
            "no ambiguity from concatenation"
        );
    }

    #[test]
    fn spec_round_trips_as_recorded() {
        let s = spec();
        let back = StepSpec::from_json(&s.to_json()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.key(), s.key());
    }
}
