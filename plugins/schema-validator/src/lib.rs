//! Data validator: checks a CSV or JSON artifact against a declared schema
//! (columns, types, ranges, nulls, allowed values, row counts) and reports
//! every problem by row and column. No network.
//!
//! Config:
//!
//! ```json
//! { "columns": [ { "name": "sepal_length", "type": "number", "min": 0, "max": 10,
//!                  "nullable": false, "allowed": [...] }, ... ],
//!   "header": true, "skip_rows": 0, "min_rows": 1, "max_rows": null }
//! ```
//!
//! `type` is number, integer, string or boolean. A CSV with `header: true`
//! (the default) is matched by column name; with `header: false` the
//! columns are positional. A JSON artifact is an array of objects, matched
//! by key.

use serde_json::Value;
use weft_plugin_sdk::{csv, Config};

wit_bindgen::generate!({ path: "../../wit/plugin", world: "data-validator" });

use weft::plugin::types::{ConfigKey, Kind};

/// Problems listed in a report (all are counted).
const MAX_LISTED: usize = 20;

struct SchemaValidator;

struct Column {
    name: String,
    kind: String,
    min: Option<f64>,
    max: Option<f64>,
    nullable: bool,
    allowed: Option<Vec<String>>,
}

impl Guest for SchemaValidator {
    fn describe() -> Manifest {
        Manifest {
            name: "schema-validator".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::DataValidator,
            description: "Checks a CSV or JSON artifact against a schema: columns, types, ranges, nulls, allowed values, row counts".into(),
            http_hosts: vec![],
            config: vec![
                ConfigKey { name: "columns".into(), description: "[{name, type, min, max, nullable, allowed}]".into(), required: true },
                ConfigKey { name: "header".into(), description: "CSV: the first row names the columns (default true)".into(), required: false },
                ConfigKey { name: "skip_rows".into(), description: "CSV: rows to skip before the data (or header)".into(), required: false },
                ConfigKey { name: "min_rows".into(), description: "fewest data rows accepted".into(), required: false },
                ConfigKey { name: "max_rows".into(), description: "most data rows accepted".into(), required: false },
            ],
            conversions: vec![],
        }
    }

    fn validate(config: String, artifact: Artifact) -> Result<Validation, PluginError> {
        let config = Config::parse(&config).map_err(PluginError::InvalidConfig)?;
        let columns = columns(&config).map_err(PluginError::InvalidConfig)?;
        let header = config.get("header").and_then(Value::as_bool).unwrap_or(true);
        let skip = config.get("skip_rows").and_then(Value::as_u64).unwrap_or(0) as usize;
        let text = String::from_utf8(artifact.data)
            .map_err(|_| PluginError::Failed(format!("{} is not UTF-8 text", artifact.name)))?;

        // Rows of (row number for the report, column name -> raw cell).
        let mut problems = Vec::new();
        let rows: Vec<(usize, Vec<(String, Option<Value>)>)> = if artifact.media_type.contains("json") {
            let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&text) else {
                return Ok(verdict(
                    &artifact.name,
                    vec!["the document is not a JSON array of objects".into()],
                    0,
                    columns.len(),
                ));
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    (
                        i + 1,
                        columns
                            .iter()
                            .map(|c| (c.name.clone(), item.get(&c.name).cloned()))
                            .collect(),
                    )
                })
                .collect()
        } else {
            let mut lines = csv::parse(&text).into_iter().skip(skip);
            let first_row = skip + if header { 2 } else { 1 };
            let positions: Vec<Option<usize>> = if header {
                let names = lines.next().unwrap_or_default();
                columns
                    .iter()
                    .map(|c| {
                        let at = names.iter().position(|n| n.trim() == c.name);
                        if at.is_none() {
                            problems.push(format!("column {} is missing from the header", c.name));
                        }
                        at
                    })
                    .collect()
            } else {
                (0..columns.len()).map(Some).collect()
            };
            lines
                .enumerate()
                .map(|(i, cells)| {
                    let row = columns
                        .iter()
                        .zip(&positions)
                        .map(|(c, at)| {
                            (
                                c.name.clone(),
                                at.and_then(|at| cells.get(at))
                                    .map(|s| Value::String(s.trim().to_string())),
                            )
                        })
                        .collect();
                    (first_row + i, row)
                })
                .collect()
        };

        let count = rows.len();
        if let Some(min) = config.get("min_rows").and_then(Value::as_u64) {
            if (count as u64) < min {
                problems.push(format!("{count} rows; at least {min} expected"));
            }
        }
        if let Some(max) = config.get("max_rows").and_then(Value::as_u64) {
            if count as u64 > max {
                problems.push(format!("{count} rows; at most {max} expected"));
            }
        }
        for (row, cells) in &rows {
            for (column, (_, cell)) in columns.iter().zip(cells) {
                if let Some(problem) = check(column, cell.as_ref()) {
                    problems.push(format!("row {row}, column {}: {problem}", column.name));
                }
            }
        }
        Ok(verdict(&artifact.name, problems, count, columns.len()))
    }
}

fn verdict(name: &str, problems: Vec<String>, rows: usize, columns: usize) -> Validation {
    if problems.is_empty() {
        return Validation {
            passed: true,
            report: format!("schema check of {name}: passed ({rows} rows, {columns} columns)"),
        };
    }
    let mut report = format!(
        "schema check of {name}: FAILED, {} problem{} in {rows} rows",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems.iter().take(MAX_LISTED) {
        report.push_str("\n  - ");
        report.push_str(p);
    }
    if problems.len() > MAX_LISTED {
        report.push_str(&format!("\n  ... and {} more", problems.len() - MAX_LISTED));
    }
    Validation { passed: false, report }
}

/// What is wrong with one cell, if anything.
fn check(column: &Column, cell: Option<&Value>) -> Option<String> {
    let text = match cell {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let Some(text) = text else {
        return (!column.nullable).then(|| "missing (nulls are not allowed)".to_string());
    };
    let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
    match column.kind.as_str() {
        "number" if number.is_none() => return Some(format!("'{text}' is not a number")),
        "integer" if text.parse::<i64>().is_err() => return Some(format!("'{text}' is not an integer")),
        "boolean" if !matches!(text.as_str(), "true" | "false") => {
            return Some(format!("'{text}' is not true or false"))
        }
        _ => {}
    }
    if let (Some(n), Some(min)) = (number, column.min) {
        if n < min {
            return Some(format!("{text} is below the minimum {min}"));
        }
    }
    if let (Some(n), Some(max)) = (number, column.max) {
        if n > max {
            return Some(format!("{text} is above the maximum {max}"));
        }
    }
    if let Some(allowed) = &column.allowed {
        if !allowed.contains(&text) {
            return Some(format!("'{text}' is not one of {}", allowed.join(", ")));
        }
    }
    None
}

fn columns(config: &Config) -> Result<Vec<Column>, String> {
    let Some(Value::Array(items)) = config.get("columns") else {
        return Err("'columns' is required: a list of {name, type, ...}".into());
    };
    items
        .iter()
        .map(|item| {
            let name = item["name"].as_str().ok_or("every column needs a 'name'")?.to_string();
            let kind = item.get("type").and_then(Value::as_str).unwrap_or("string").to_string();
            if !matches!(kind.as_str(), "number" | "integer" | "string" | "boolean") {
                return Err(format!(
                    "column {name}: type must be number, integer, string or boolean, not {kind}"
                ));
            }
            Ok(Column {
                min: item.get("min").and_then(Value::as_f64),
                max: item.get("max").and_then(Value::as_f64),
                nullable: item.get("nullable").and_then(Value::as_bool).unwrap_or(false),
                allowed: item.get("allowed").and_then(Value::as_array).map(|a| {
                    a.iter()
                        .map(|v| v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
                        .collect()
                }),
                name,
                kind,
            })
        })
        .collect()
}

export!(SchemaValidator);
