//! The `weft:step/tracker` import: what a step logs, validated at the
//! boundary and kept in memory until the step run is recorded.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest key accepted for a metric, param, tag or metadata entry.
pub const MAX_KEY_LEN: usize = 250;
/// Longest param or tag value (MLflow's limit for params).
pub const MAX_VALUE_LEN: usize = 6000;
/// Largest metadata JSON document.
pub const MAX_METADATA_LEN: usize = 1 << 20;
/// Most tracker calls one step run may make.
pub const MAX_EVENTS: usize = 100_000;

/// One thing a step logged.
#[derive(Debug, Clone, PartialEq)]
pub enum TrackerEvent {
    /// `log-metric`.
    Metric {
        key: String,
        value: f64,
        step: Option<u64>,
        /// Milliseconds since the Unix epoch when it was logged.
        timestamp_ms: i64,
    },
    /// `log-param`.
    Param { key: String, value: String },
    /// `set-tag`.
    Tag { key: String, value: String },
    /// `log-metadata`; `json` is known to parse.
    Metadata { key: String, json: String },
}

/// Collects and validates the tracker calls of one step run.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pub(crate) events: Vec<TrackerEvent>,
    params: HashSet<String>,
}

impl Tracker {
    fn admit(&mut self, what: &str, key: &str) -> Result<(), String> {
        if self.events.len() >= MAX_EVENTS {
            return Err(format!("tracker: more than {MAX_EVENTS} calls in one step run"));
        }
        validate_key(what, key)
    }

    pub(crate) fn log_metric(&mut self, key: String, value: f64, step: Option<u64>) -> Result<(), String> {
        self.admit("metric", &key)?;
        if !value.is_finite() {
            return Err(format!("tracker: metric '{key}' has a non-finite value ({value})"));
        }
        if step.is_some_and(|s| s > i64::MAX as u64) {
            return Err(format!("tracker: metric '{key}' step is larger than {}", i64::MAX));
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.events.push(TrackerEvent::Metric {
            key,
            value,
            step,
            timestamp_ms,
        });
        Ok(())
    }

    pub(crate) fn log_param(&mut self, key: String, value: String) -> Result<(), String> {
        self.admit("param", &key)?;
        validate_value("param", &key, &value)?;
        if !self.params.insert(key.clone()) {
            return Err(format!(
                "tracker: param '{key}' was already logged in this step run (params are immutable)"
            ));
        }
        self.events.push(TrackerEvent::Param { key, value });
        Ok(())
    }

    pub(crate) fn set_tag(&mut self, key: String, value: String) -> Result<(), String> {
        self.admit("tag", &key)?;
        validate_value("tag", &key, &value)?;
        self.events.push(TrackerEvent::Tag { key, value });
        Ok(())
    }

    pub(crate) fn log_metadata(&mut self, key: String, json: String) -> Result<(), String> {
        self.admit("metadata", &key)?;
        if json.len() > MAX_METADATA_LEN {
            return Err(format!(
                "tracker: metadata '{key}' is {} bytes; the limit is {MAX_METADATA_LEN}",
                json.len()
            ));
        }
        if let Err(e) = serde_json::from_str::<serde_json::Value>(&json) {
            return Err(format!("tracker: metadata '{key}' is not valid JSON: {e}"));
        }
        self.events.push(TrackerEvent::Metadata { key, json });
        Ok(())
    }
}

fn validate_key(what: &str, key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err(format!("tracker: {what} key is empty"));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(format!(
            "tracker: {what} key is {} bytes; the limit is {MAX_KEY_LEN}",
            key.len()
        ));
    }
    if let Some(c) = key
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' ' | '/' | ':')))
    {
        return Err(format!(
            "tracker: {what} key '{key}' contains {c:?}; use letters, digits, '_', '-', '.', ' ', '/' or ':'"
        ));
    }
    Ok(())
}

fn validate_value(what: &str, key: &str, value: &str) -> Result<(), String> {
    if value.len() > MAX_VALUE_LEN {
        return Err(format!(
            "tracker: {what} '{key}' value is {} bytes; the limit is {MAX_VALUE_LEN}",
            value.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_are_immutable_and_values_checked() {
        let mut t = Tracker::default();
        t.log_param("lr".into(), "0.1".into()).unwrap();
        assert!(t
            .log_param("lr".into(), "0.2".into())
            .unwrap_err()
            .contains("already logged"));
        assert!(t
            .log_metric("loss".into(), f64::NAN, None)
            .unwrap_err()
            .contains("non-finite"));
        assert!(t
            .log_metadata("m".into(), "{oops".into())
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(t.set_tag("".into(), "x".into()).unwrap_err().contains("empty"));
        assert!(t.set_tag("a\nb".into(), "x".into()).unwrap_err().contains("contains"));
        t.log_metric("acc".into(), 0.9, Some(3)).unwrap();
        assert_eq!(t.events.len(), 2);
    }
}
