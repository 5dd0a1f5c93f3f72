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
    // `Value` sorts an object's keys; columns keep the client's order
    // (a split names its columns itself).
    let order = match field {
        "dataframe_split" => KeyOrder::None,
        _ => key_order(body, field),
    };
    let table = match field {
        "dataframe_split" => dataframe_split(input)?,
        "dataframe_records" => match input {
            Value::Array(rows) => records(rows, field, &order)?,
            _ => return Err("dataframe_records must be a list of objects".into()),
        },
        _ => tensor_input(input, field, &order)?,
    };
    let params = match fields.remove("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => return Err("params must be an object".into()),
    };
    into_value(table, params)
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
    into_value(
        Table {
            columns: Some(columns),
            data,
        },
        None,
    )
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

/// The table form; a request without rows is refused, as MLflow does.
fn into_value(table: Table, params: Option<Map<String, Value>>) -> Result<Value, String> {
    if table.data.is_empty() {
        return Err("the request holds no rows".into());
    }
    let mut out = Map::new();
    out.insert("columns".into(), json!(table.columns));
    out.insert("data".into(), Value::Array(table.data));
    if let Some(params) = params {
        out.insert("params".into(), Value::Object(params));
    }
    Ok(Value::Object(out))
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
fn records(rows: Vec<Value>, field: &str, order: &KeyOrder) -> Result<Table, String> {
    let mut columns: Vec<String> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Value::Object(row) = row else {
            return Err(format!("{field} row {i} is not an object"));
        };
        let sent = match order {
            KeyOrder::Rows(rows) => rows.get(i).map(Vec::as_slice),
            _ => None,
        };
        let keys: Box<dyn Iterator<Item = &String>> = match sent {
            Some(keys) => Box::new(keys.iter()),
            None => Box::new(row.keys()),
        };
        for key in keys {
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
fn tensor_input(input: Value, field: &str, order: &KeyOrder) -> Result<Table, String> {
    match input {
        Value::Array(rows) if rows.iter().all(Value::is_object) && !rows.is_empty() => records(rows, field, order),
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
            let names: Vec<String> = match order {
                KeyOrder::Object(keys) if keys.len() == columns.len() => keys.clone(),
                _ => columns.keys().cloned().collect(),
            };
            let mut columns = columns;
            let mut data: Vec<Vec<Value>> = vec![Vec::with_capacity(names.len()); rows];
            for value in names.iter().filter_map(|n| columns.remove(n)) {
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

/// The order in which the client sent the keys of the input field: of
/// the object itself (an object of columns), or of each object in it (a
/// list of records). serde_json's `Value` keeps keys sorted, and a data
/// frame's columns follow the order they were sent in, as pandas does.
#[derive(Debug, Default)]
enum KeyOrder {
    Object(Vec<String>),
    Rows(Vec<Vec<String>>),
    #[default]
    None,
}

/// The key order of `field` in a request that parsed as JSON already.
fn key_order(body: &[u8], field: &str) -> KeyOrder {
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;

    /// Keys of an object in order; of each element of a list with `nested`.
    struct Keys {
        field: Option<String>,
        nested: bool,
    }
    impl<'de> DeserializeSeed<'de> for Keys {
        type Value = KeyOrder;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<KeyOrder, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Keys {
        type Value = KeyOrder;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyOrder, A::Error> {
            let mut keys = Vec::new();
            let mut found = KeyOrder::None;
            while let Some(key) = map.next_key::<String>()? {
                match &self.field {
                    // The request: descend into the input field only.
                    Some(field) if *field == key => {
                        found = map.next_value_seed(Keys {
                            field: None,
                            nested: true,
                        })?;
                    }
                    Some(_) => {
                        map.next_value::<IgnoredAny>()?;
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                        keys.push(key);
                    }
                }
            }
            Ok(if self.field.is_some() {
                found
            } else {
                KeyOrder::Object(keys)
            })
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyOrder, A::Error> {
            let mut rows = Vec::new();
            while let Some(row) = seq.next_element_seed(Keys {
                field: None,
                nested: false,
            })? {
                rows.push(match row {
                    KeyOrder::Object(keys) if self.nested => keys,
                    _ => Vec::new(),
                });
            }
            Ok(if self.nested {
                KeyOrder::Rows(rows)
            } else {
                KeyOrder::None
            })
        }
        fn visit_bool<E>(self, _: bool) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
        fn visit_str<E>(self, _: &str) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
        fn visit_unit<E>(self) -> Result<KeyOrder, E> {
            Ok(KeyOrder::None)
        }
    }
    let mut d = serde_json::Deserializer::from_slice(body);
    Keys {
        field: Some(field.to_string()),
        nested: false,
    }
    .deserialize(&mut d)
    .unwrap_or_default()
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
        // Columns in the order the client sent them, not sorted.
        let reversed = json!({"columns": ["b", "a"], "data": [[2, 1], [4, 3]]});
        for body in [
            r#"{"dataframe_records": [{"b": 2, "a": 1}, {"b": 4, "a": 3}]}"#,
            r#"{"instances": [{"b": 2, "a": 1}, {"a": 3, "b": 4}]}"#,
            r#"{"inputs": {"b": [2, 4], "a": [1, 3]}}"#,
        ] {
            assert_eq!(table(body), reversed, "{body}");
        }
        assert_eq!(
            table(r#"{"dataframe_records": [{"b": 2}, {"c": 5, "a": 1}]}"#),
            json!({"columns": ["b", "c", "a"], "data": [[2, null, null], [null, 5, 1]]})
        );
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
            (r#"{"instances": []}"#, "no rows"),
            (r#"{"dataframe_split": {"columns": ["a"], "data": []}}"#, "no rows"),
        ] {
            let error = from_json(body.as_bytes()).unwrap_err();
            assert!(error.contains(says), "{body}: {error}");
        }
        assert!(from_csv(b"a,b\n").unwrap_err().contains("no rows"));
    }
}
