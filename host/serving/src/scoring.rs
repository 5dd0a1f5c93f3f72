//! The MLflow scoring protocol: what `/invocations` accepts, turned into the
//! one form a model server reads (see `wit/inference/inference.wit`):
//!
//! ```json
//! {"columns": ["a", "b"] | null, "data": [[...], ...], "params": {...}}
//! ```
//!
//! Accepted, as `mlflow models serve` does:
//! - `application/json` with exactly one of `dataframe_split` (`columns`,
//!   `data`, an ignored `index`), `dataframe_records` (a list of objects),
//!   `instances` or `inputs` (a list of rows, of objects or of scalars, or
//!   an object of columns), and optionally `params` (an object);
//! - `text/csv` with a header line.

use serde_json::{json, Map, Value};

/// The input fields of a scoring request; a request has exactly one.
pub const INPUT_FIELDS: [&str; 4] = ["dataframe_split", "dataframe_records", "instances", "inputs"];

/// A table: column names (or none) and rows.
struct Table {
    columns: Option<Vec<String>>,
    data: Vec<Value>,
}

/// A JSON scoring request as the table form, or why it is not one.
pub fn from_json(body: &[u8]) -> Result<Value, String> {
    let request: Value = serde_json::from_slice(body).map_err(|e| format!("the request is not JSON: {e}"))?;
    let Value::Object(mut fields) = request else {
        return Err(one_field_message(&[]));
    };
    let present: Vec<&str> = INPUT_FIELDS
        .iter()
        .copied()
        .filter(|f| fields.contains_key(*f))
        .collect();
    let unknown: Vec<&String> = fields
        .keys()
        .filter(|k| !INPUT_FIELDS.contains(&k.as_str()) && *k != "params")
        .collect();
    if present.len() != 1 || !unknown.is_empty() {
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        return Err(one_field_message(&keys));
    }
    let field = present[0];
    let input = fields.remove(field).unwrap_or(Value::Null);
    let table = match field {
        "dataframe_split" => dataframe_split(input)?,
        "dataframe_records" => match input {
            Value::Array(rows) => records(rows, field)?,
            _ => return Err("dataframe_records must be a list of objects".into()),
        },
        _ => tensor_input(input, field)?,
    };
    let params = match fields.remove("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err("params must be an object".into()),
    };
    Ok(into_value(table, params))
}

/// A CSV scoring request (a header line, then rows) as the table form.
pub fn from_csv(body: &[u8]) -> Result<Value, String> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| format!("the request is not CSV: {e}"))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut data = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| format!("CSV row {}: {e}", i + 1))?;
        data.push(Value::Array(record.iter().map(csv_value).collect()));
    }
    Ok(into_value(
        Table {
            columns: Some(columns),
            data,
        },
        None,
    ))
}

/// A CSV field: a number when it reads as one, else its text.
fn csv_value(field: &str) -> Value {
    let trimmed = field.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        return json!(i);
    }
    match trimmed.parse::<f64>() {
        Ok(f) if f.is_finite() => json!(f),
        _ => Value::String(field.to_string()),
    }
}

fn one_field_message(keys: &[&str]) -> String {
    format!(
        "the input must be a JSON object with exactly one of the input fields {INPUT_FIELDS:?} (and optionally \
         'params'); got the fields {keys:?}"
    )
}

fn into_value(table: Table, params: Option<Map<String, Value>>) -> Value {
    let mut out = Map::new();
    out.insert("columns".into(), json!(table.columns));
    out.insert("data".into(), Value::Array(table.data));
    if let Some(params) = params {
        out.insert("params".into(), Value::Object(params));
    }
    Value::Object(out)
}

fn dataframe_split(input: Value) -> Result<Table, String> {
    let Value::Object(mut split) = input else {
        return Err("dataframe_split must be an object with 'columns' and 'data'".into());
    };
    let columns = match split.remove("columns") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(
            names
                .into_iter()
                .map(|n| match n {
                    Value::String(s) => Ok(s),
                    other => Ok(other.to_string()),
                })
                .collect::<Result<Vec<_>, String>>()?,
        ),
        Some(_) => return Err("dataframe_split.columns must be a list of names".into()),
    };
    let rows = match split.remove("data") {
        Some(Value::Array(rows)) => rows,
        _ => return Err("dataframe_split.data must be a list of rows".into()),
    };
    for (i, row) in rows.iter().enumerate() {
        match row {
            Value::Array(values) => {
                if let Some(columns) = &columns {
                    if values.len() != columns.len() {
                        return Err(format!(
                            "dataframe_split.data row {i} has {} values for {} columns",
                            values.len(),
                            columns.len()
                        ));
                    }
                }
            }
            _ => return Err(format!("dataframe_split.data row {i} is not a list")),
        }
    }
    Ok(Table { columns, data: rows })
}

/// Rows given as objects: the columns are every key, in the order first
/// seen; a row without one has null there.
fn records(rows: Vec<Value>, field: &str) -> Result<Table, String> {
    let mut columns: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(row) = row else {
            return Err(format!("{field} row {i} is not an object"));
        };
        for key in row.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let data = rows
        .into_iter()
        .filter_map(|row| match row {
            Value::Object(mut row) => Some(Value::Array(
                columns.iter().map(|c| row.remove(c).unwrap_or(Value::Null)).collect(),
            )),
            _ => None, // every row was checked to be an object above
        })
        .collect();
    Ok(Table {
        columns: Some(columns),
        data,
    })
}

/// `instances` or `inputs`: a list of rows (lists, objects or scalars), or
/// an object of columns (each a list of the same length, or one value).
fn tensor_input(input: Value, field: &str) -> Result<Table, String> {
    match input {
        Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => records(rows, field),
        Value::Array(rows) => {
            let data = rows
                .into_iter()
                .enumerate()
                .map(|(i, row)| match row {
                    Value::Array(_) => Ok(row),
                    Value::Object(_) => Err(format!("{field} mixes objects and other rows (row {i})")),
                    scalar => Ok(Value::Array(vec![scalar])),
                })
                .collect::<Result<_, String>>()?;
            Ok(Table { columns: None, data })
        }
        Value::Object(columns) => {
            let lengths: Vec<Option<usize>> = columns.values().map(|v| v.as_array().map(Vec::len)).collect();
            let rows = match lengths.first() {
                None => 0,
                Some(Some(n)) => *n,
                Some(None) => 1,
            };
            if lengths.iter().any(|l| l.unwrap_or(1) != rows) {
                return Err(format!("the columns of {field} differ in length"));
            }
            let names: Vec<String> = columns.keys().cloned().collect();
            let mut data: Vec<Vec<Value>> = vec![Vec::with_capacity(names.len()); rows];
            for value in columns.into_values() {
                match value {
                    Value::Array(values) => {
                        for (row, v) in data.iter_mut().zip(values) {
                            row.push(v);
                        }
                    }
                    scalar => data[0].push(scalar),
                }
            }
            Ok(Table {
                columns: Some(names),
                data: data.into_iter().map(Value::Array).collect(),
            })
        }
        _ => Err(format!("{field} must be a list of rows or an object of columns")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(body: &str) -> Value {
        from_json(body.as_bytes()).unwrap()
    }

    #[test]
    fn every_format_gives_the_same_table() {
        let expected = json!({"columns": ["a", "b"], "data": [[1, 2], [3, 4]]});
        for body in [
            r#"{"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]], "index": [0, 1]}}"#,
            r#"{"dataframe_records": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}"#,
            r#"{"instances": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}"#,
            r#"{"inputs": {"a": [1, 3], "b": [2, 4]}}"#,
        ] {
            assert_eq!(table(body), expected, "{body}");
        }
        assert_eq!(from_csv(b"a,b\n1,2\n3,4\n").unwrap(), expected);
        assert_eq!(
            table(r#"{"inputs": [[1, 2], [3, 4]], "params": {"k": true}}"#),
            json!({"columns": null, "data": [[1, 2], [3, 4]], "params": {"k": true}})
        );
        assert_eq!(
            table(r#"{"instances": [1, 2]}"#),
            json!({"columns": null, "data": [[1], [2]]})
        );
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        for (body, says) in [
            ("[1]", "exactly one"),
            (r#"{"inputs": [[1]], "instances": [[1]]}"#, "exactly one"),
            (r#"{"data": [[1]]}"#, "exactly one"),
            (
                r#"{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}"#,
                "2 values for 1 columns",
            ),
            (r#"{"dataframe_records": [1]}"#, "row 0 is not an object"),
            (r#"{"inputs": {"a": [1, 2], "b": [1]}}"#, "differ in length"),
            (r#"{"inputs": [[1]], "params": 3}"#, "params must be an object"),
            ("{", "not JSON"),
        ] {
            let error = from_json(body.as_bytes()).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
    }
}
