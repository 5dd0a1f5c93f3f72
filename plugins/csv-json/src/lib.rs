//! Materializer: CSV ↔ JSON. CSV (with a header row) becomes a JSON array
//! of objects, numbers as numbers; a JSON array of objects becomes CSV with
//! the union of their keys as the header. No configuration, no network.

use serde_json::{Map, Value};
use weft_plugin_sdk::csv::parse as parse_csv;

wit_bindgen::generate!({ path: "../../wit/plugin", world: "materializer" });

use weft::plugin::types::Kind;

const CSV: &str = "text/csv";
const JSON: &str = "application/json";

struct CsvJson;

impl Guest for CsvJson {
    fn describe() -> Manifest {
        Manifest {
            name: "csv-json".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Materializer,
            description: "Converts CSV (with a header row) to a JSON array of objects, and back".into(),
            http_hosts: vec![],
            config: vec![],
            conversions: vec![(CSV.into(), JSON.into()), (JSON.into(), CSV.into())],
        }
    }

    fn convert(_config: String, artifact: Artifact, to: String) -> Result<Vec<u8>, PluginError> {
        let from = artifact.media_type.split(';').next().unwrap_or("").trim().to_string();
        let text = String::from_utf8(artifact.data)
            .map_err(|_| PluginError::Failed(format!("{} is not UTF-8 text", artifact.name)))?;
        match (from.as_str(), to.as_str()) {
            (CSV, JSON) => csv_to_json(&text),
            (JSON, CSV) => json_to_csv(&text),
            _ => Err(PluginError::Failed(format!(
                "csv-json converts {CSV} <-> {JSON}, not {from} -> {to}"
            ))),
        }
    }
}

fn csv_to_json(text: &str) -> Result<Vec<u8>, PluginError> {
    let mut rows = parse_csv(text).into_iter();
    let header = rows
        .next()
        .ok_or_else(|| PluginError::Failed("the CSV is empty".into()))?;
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        if row.len() != header.len() {
            return Err(PluginError::Failed(format!(
                "row {} has {} fields; the header has {}",
                i + 2,
                row.len(),
                header.len()
            )));
        }
        let object: Map<String, Value> = header
            .iter()
            .zip(row)
            .map(|(k, v)| {
                let value = if v.is_empty() {
                    Value::Null
                } else if let Ok(n) = v.parse::<i64>() {
                    Value::from(n)
                } else if let Some(n) = v.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                    Value::Number(n)
                } else {
                    Value::String(v)
                };
                (k.clone(), value)
            })
            .collect();
        out.push(Value::Object(object));
    }
    serde_json::to_vec(&out).map_err(|e| PluginError::Failed(e.to_string()))
}

fn json_to_csv(text: &str) -> Result<Vec<u8>, PluginError> {
    let Ok(Value::Array(rows)) = serde_json::from_str::<Value>(text) else {
        return Err(PluginError::Failed("the JSON is not an array of objects".into()));
    };
    let mut header: Vec<String> = Vec::new();
    for row in &rows {
        let Value::Object(map) = row else {
            return Err(PluginError::Failed("the JSON is not an array of objects".into()));
        };
        for k in map.keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    let mut out = String::new();
    out.push_str(&header.iter().map(|h| quote(h)).collect::<Vec<_>>().join(","));
    out.push('\n');
    for row in &rows {
        let cells: Vec<String> = header
            .iter()
            .map(|k| match row.get(k) {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(s)) => quote(s),
                Some(other) => quote(&other.to_string()),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    Ok(out.into_bytes())
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

export!(CsvJson);
