//! Step cache keys.
//!
//! A step can read nothing but its params and its inputs, so its outputs are
//! a function of exactly these: the component bytes, the params, the input
//! contents, the declared outputs, its grants and the contract version. The
//! key hashes all of them (lengths included, so no two different tuples
//! collide by concatenation).

use serde_json::Value;

/// Cache key of a step run, as hex.
pub fn cache_key(
    component_digest: &str,
    params: &Value,
    inputs: &[(String, String)],
    outputs: &[String],
    grants: &Value,
) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut field = |bytes: &[u8]| {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"weft-cache-v1");
    field(weft_runtime::STEP_WIT_VERSION.as_bytes());
    field(component_digest.as_bytes());
    field(canonical_json(params).as_bytes());
    let mut inputs: Vec<_> = inputs.iter().collect();
    inputs.sort();
    field(&(inputs.len() as u64).to_le_bytes());
    for (name, digest) in inputs {
        field(name.as_bytes());
        field(digest.as_bytes());
    }
    let mut outputs: Vec<_> = outputs.iter().collect();
    outputs.sort();
    field(&(outputs.len() as u64).to_le_bytes());
    for name in outputs {
        field(name.as_bytes());
    }
    field(canonical_json(grants).as_bytes());
    hasher.finalize().to_hex().to_string()
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

    fn key(params: Value, inputs: &[(&str, &str)]) -> String {
        let inputs: Vec<_> = inputs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        cache_key("c", &params, &inputs, &["out".into()], &json!({}))
    }

    #[test]
    fn key_depends_on_everything_and_nothing_else() {
        let base = key(json!({"a": 1, "b": 2}), &[("x", "d1"), ("y", "d2")]);
        assert_eq!(
            base,
            key(json!({"b": 2, "a": 1}), &[("y", "d2"), ("x", "d1")]),
            "order does not matter"
        );
        assert_ne!(base, key(json!({"a": 1, "b": 3}), &[("x", "d1"), ("y", "d2")]));
        assert_ne!(base, key(json!({"a": 1, "b": 2}), &[("x", "d1"), ("y", "d3")]));
        assert_ne!(
            base,
            key(json!({"a": 1, "b": 2}), &[("x", "d2"), ("y", "d1")]),
            "which input is which matters"
        );
        assert_ne!(
            base,
            cache_key(
                "other",
                &json!({"a": 1, "b": 2}),
                &[("x".into(), "d1".into()), ("y".into(), "d2".into())],
                &["out".into()],
                &json!({})
            )
        );
        assert_ne!(
            cache_key("c", &json!({}), &[("ab".into(), "c".into())], &[], &json!({})),
            cache_key("c", &json!({}), &[("a".into(), "bc".into())], &[], &json!({})),
            "no ambiguity from concatenation"
        );
    }
}
