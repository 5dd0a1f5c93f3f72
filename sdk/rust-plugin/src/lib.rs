//! Helpers for weft plugins written in Rust.
//!
//! A plugin implements one world of `wit/plugin/plugin.wit` with
//! `wit_bindgen::generate!`; this crate gives it what the worlds leave to
//! the guest: [`http::send`] (outbound requests through `wasi:http`, which
//! the host lets out only to granted hosts), [`csv::parse`] (RFC 4180
//! text) and [`Config`] (typed reads of the JSON configuration).

pub mod csv;
pub mod http;

use serde_json::{Map, Value};

/// A plugin's configuration: the JSON object weft passes to each call.
pub struct Config(Map<String, Value>);

impl Config {
    /// Parses the configuration; an error names what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Ok(Config(map)),
            Ok(_) => Err("the configuration is not a JSON object".into()),
            Err(e) => Err(format!("the configuration is not JSON: {e}")),
        }
    }

    /// A string value, required.
    pub fn string(&self, key: &str) -> Result<String, String> {
        self.optional_string(key)?.ok_or_else(|| format!("'{key}' is required"))
    }

    /// A string value, if set.
    pub fn optional_string(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("'{key}' must be a string, not {other}")),
        }
    }

    /// Any value, if set.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
}
