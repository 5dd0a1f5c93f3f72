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
/// Most bytes (keys and values together) one step run may log. They are
/// also counted against the step's memory limit, since the host holds them
/// for the step until it is recorded.
pub const MAX_TRACKER_BYTES: usize = 16 << 20;
/// What one logged entry costs beyond its key and value.
const EVENT_OVERHEAD: usize = 48;

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

/// Collects and validates the tracker calls of one step run. Every limit
/// is checked before anything is kept.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    pub(crate) events: Vec<TrackerEvent>,
    params: HashSet<String>,
    bytes: usize,
}

impl Tracker {
    /// Checks a call against the counts and the key rules, and returns what
    /// keeping it would cost (bytes), to be charged before it is kept.
    fn admit(&mut self, what: &str, key: &str, value_len: usize) -> Result<usize, String> {
        if self.events.len() >= MAX_EVENTS {
            return Err(format!(
                "tracker: more than {MAX_EVENTS} calls in one step run (the limit)"
            ));
        }
        validate_key(what, key)?;
        let cost = key.len() + value_len + EVENT_OVERHEAD;
        if self.bytes + cost > MAX_TRACKER_BYTES {
            return Err(format!(
                "tracker: more than {MAX_TRACKER_BYTES} bytes logged in one step run (keys and values together, the limit)"
            ));
        }
        Ok(cost)
    }

    fn keep(&mut self, cost: usize, event: TrackerEvent) {
        self.bytes += cost;
        self.events.push(event);
    }

    pub(crate) fn log_metric(
        &mut self,
        key: String,
        value: f64,
        step: Option<u64>,
        charge: &mut dyn FnMut(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let cost = self.admit("metric", &key, 8)?;
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
        charge(cost)?;
        self.keep(
            cost,
            TrackerEvent::Metric {
                key,
                value,
                step,
                timestamp_ms,
            },
        );
        Ok(())
    }

    pub(crate) fn log_param(
        &mut self,
        key: String,
        value: String,
        charge: &mut dyn FnMut(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let cost = self.admit("param", &key, value.len())?;
        validate_value("param", &key, &value)?;
        if self.params.contains(&key) {
            return Err(format!(
                "tracker: param '{key}' was already logged in this step run (params are immutable)"
            ));
        }
        charge(cost)?;
        self.params.insert(key.clone());
        self.keep(cost, TrackerEvent::Param { key, value });
        Ok(())
    }

    pub(crate) fn set_tag(
        &mut self,
        key: String,
        value: String,
        charge: &mut dyn FnMut(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let cost = self.admit("tag", &key, value.len())?;
        validate_value("tag", &key, &value)?;
        charge(cost)?;
        self.keep(cost, TrackerEvent::Tag { key, value });
        Ok(())
    }

    pub(crate) fn log_metadata(
        &mut self,
        key: String,
        json: String,
        charge: &mut dyn FnMut(usize) -> Result<(), String>,
    ) -> Result<(), String> {
        let cost = self.admit("metadata", &key, json.len())?;
        if json.len() > MAX_METADATA_LEN {
            return Err(format!(
                "tracker: metadata '{key}' is {} bytes; the limit is {MAX_METADATA_LEN}",
                json.len()
            ));
        }
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&json) {
            return Err(format!("tracker: metadata '{key}' is not valid JSON: {e}"));
        }
        charge(cost)?;
        self.keep(cost, TrackerEvent::Metadata { key, json });
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
        // The key is shown escaped: a control character in it must not
        // break or hide the message.
        return Err(format!(
            "tracker: {what} key \"{}\" contains {c:?}; use letters, digits, '_', '-', '.', ' ', '/' or ':'",
            key.escape_debug()
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

    fn free(_: usize) -> Result<(), String> {
        Ok(())
    }

    #[test]
    fn params_are_immutable_and_values_checked() {
        let mut t = Tracker::default();
        t.log_param("lr".into(), "0.1".into(), &mut free).unwrap();
        assert!(t
            .log_param("lr".into(), "0.2".into(), &mut free)
            .unwrap_err()
            .contains("already logged"));
        assert!(t
            .log_metric("loss".into(), f64::NAN, None, &mut free)
            .unwrap_err()
            .contains("non-finite"));
        assert!(t
            .log_metadata("m".into(), "{oops".into(), &mut free)
            .unwrap_err()
            .contains("not valid JSON"));
        assert!(t
            .set_tag("".into(), "x".into(), &mut free)
            .unwrap_err()
            .contains("empty"));
        let e = t.set_tag("a\nb\u{1b}[2J".into(), "x".into(), &mut free).unwrap_err();
        assert!(e.contains(r#"key "a\nb\u{1b}[2J" contains '\n'"#), "{e}");
        assert_eq!(e.lines().count(), 1, "one line, the reason kept");
        t.log_metric("acc".into(), 0.9, Some(3), &mut free).unwrap();
        assert_eq!(t.events.len(), 2);
    }

    #[test]
    fn the_total_is_capped_and_charged_before_anything_is_kept() {
        let mut t = Tracker::default();
        let value = "v".repeat(MAX_VALUE_LEN);
        let mut kept = 0;
        let error = loop {
            match t.set_tag(format!("k{kept}"), value.clone(), &mut free) {
                Ok(()) => kept += 1,
                Err(e) => break e,
            }
        };
        assert!(error.contains("bytes logged in one step run"), "{error}");
        assert!(t.bytes <= MAX_TRACKER_BYTES);
        assert_eq!(t.events.len(), kept);
        // A charge refused (the memory budget) keeps nothing.
        let mut t = Tracker::default();
        let mut refuse = |_: usize| Err("memory limit exceeded".to_string());
        assert!(t.log_metric("m".into(), 1.0, None, &mut refuse).is_err());
        assert!(t.events.is_empty() && t.bytes == 0);
    }
}
