//! ml/read-csv: reads a CSV file into weft's table (see `ml-common`).
//!
//! Input `raw`; output `table`. Params:
//! - `target`: the label column's name in the file, or its 0-based index
//!   (default: the last column); it is called `target` in the table.
//! - `header`: `"auto"` (default), `"names"` (the first line names the
//!   columns), `"none"` (data from the first line) or `"sklearn"` (a first
//!   line `n_samples,n_features,class names…`, as scikit-learn's bundled
//!   data sets have). Unnamed columns become `f0`, `f1`, … .
//! - `columns`: names for the file's columns, in order (instead of the
//!   header's, or of `f0`, `f1`, …); `target` may then use one of them.
//!
//! A label that is not a number becomes a class number (its rank among the
//! distinct labels); the names are logged as the metadata `classes`. A
//! feature column holding text (in most of its rows) is a category: it
//! is one-hot encoded, one
//! `name=value` column (1 or 0) per distinct value, and the encoded columns
//! are logged as the metadata `one_hot`.

use std::collections::BTreeMap;

use ml_common::{Table, DEFAULT_TARGET, MAX_CATEGORIES};
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    target: Option<Target>,
    #[serde(default = "auto")]
    header: String,
    #[serde(default)]
    columns: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Target {
    Index(usize),
    Name(String),
}

fn auto() -> String {
    "auto".into()
}

fn read_csv(params: Params) -> weft_sdk::Result<()> {
    let text = weft_sdk::read_input_string("raw")?;
    let mut records = Vec::new();
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    for (i, record) in csv.records().enumerate() {
        let record = record.map_err(|e| Error::msg(format!("line {}: {e}", i + 1)))?;
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        records.push(record.iter().map(|c| c.trim().to_string()).collect::<Vec<_>>());
    }
    if records.is_empty() {
        return Err(Error::msg("the file holds no rows"));
    }
    let number = |c: &str| c.parse::<f64>().is_ok_and(f64::is_finite);
    // A header names columns: some column's first cell is text and the
    // rest numbers, or no column holds numbers at all (a header is assumed).
    let first_is_header = {
        let first = &records[0];
        let rest = &records[1..];
        let column = |j: usize| rest.iter().filter_map(move |r| r.get(j));
        let named = (0..first.len()).any(|j| !number(&first[j]) && column(j).all(|c| number(c)));
        let any_numbers = (0..first.len()).any(|j| column(j).all(|c| number(c)) && number(&first[j]));
        named || (!any_numbers && !first.iter().all(|c| number(c)))
    };
    let width_of_data = records.get(1).map(|r| r.len()).unwrap_or(records[0].len());
    // scikit-learn's first line: the number of rows, of features, then names.
    let sklearn = |first: &[String]| {
        first.len() >= 2
            && first[0].parse::<usize>().ok() == Some(records.len() - 1)
            && first[1].parse::<usize>().ok() == Some(width_of_data.saturating_sub(1))
    };
    let header = match params.header.as_str() {
        "auto" if records.len() > 1 && sklearn(&records[0]) => "sklearn",
        "auto" if first_is_header => "names",
        "auto" => "none",
        h @ ("names" | "none" | "sklearn") => h,
        other => {
            return Err(Error::invalid_params(format!(
                "header is \"auto\", \"names\", \"none\" or \"sklearn\", not {other:?}"
            )))
        }
    };
    let (mut names, data, class_names) = match header {
        "names" => (records[0].clone(), &records[1..], None),
        "sklearn" => {
            let first = &records[0];
            (
                Vec::new(),
                &records[1..],
                (first.len() > 2).then(|| first[2..].to_vec()),
            )
        }
        _ => (Vec::new(), &records[..], None),
    };
    let width = data.first().map(|r| r.len()).unwrap_or(names.len());
    if let Some(columns) = params.columns {
        if columns.len() != width {
            return Err(Error::invalid_params(format!(
                "columns names {} columns; the file has {width}",
                columns.len()
            )));
        }
        names = columns;
    }
    if names.is_empty() {
        names = (0..width).map(|j| format!("f{j}")).collect();
    }
    if width < 2 {
        return Err(Error::msg("a table needs at least one feature and a target column"));
    }
    let target = match &params.target {
        None => width - 1,
        Some(Target::Index(i)) if *i < width => *i,
        Some(Target::Index(i)) => {
            return Err(Error::invalid_params(format!(
                "target column {i} is past the last ({})",
                width - 1
            )))
        }
        Some(Target::Name(name)) => names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::invalid_params(format!("no column '{name}' (the columns: {})", names.join(", "))))?,
    };
    // Labels that are not numbers become class numbers.
    let labels_numeric = data
        .iter()
        .all(|r| r.get(target).is_some_and(|c| c.parse::<f64>().is_ok()));
    let mut classes: BTreeMap<String, usize> = BTreeMap::new();
    if !labels_numeric {
        for r in data {
            if let Some(c) = r.get(target) {
                classes.insert(c.clone(), 0);
            }
        }
        for (i, v) in classes.values_mut().enumerate() {
            *v = i;
        }
    }
    for (i, r) in data.iter().enumerate() {
        if r.len() != width {
            return Err(Error::msg(format!(
                "data row {} has {} fields, the first {width}",
                i + 1,
                r.len()
            )));
        }
    }
    // A feature column of text is a category: its distinct values, sorted.
    let categories: Vec<Option<Vec<&str>>> = (0..width)
        .map(|j| {
            // Mostly numbers: a numeric column (a cell that is not a
            // number fails the step, naming it).
            let numbers = data.iter().filter(|r| number(&r[j])).count();
            if j == target || numbers * 2 >= data.len() {
                return None;
            }
            let mut values: Vec<&str> = data.iter().map(|r| r[j].as_str()).collect();
            values.sort_unstable();
            values.dedup();
            Some(values)
        })
        .collect();
    let mut encoded = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for (j, name) in names.iter().enumerate() {
        match &categories[j] {
            _ if j == target => {}
            None => columns.push(name.clone()),
            Some(values) if values.len() > MAX_CATEGORIES => {
                return Err(Error::msg(format!(
                    "column '{name}' holds text with {} distinct values, more than the {MAX_CATEGORIES} one-hot encodes: \
                     is it a category? (fix the column or leave it out of the file)",
                    values.len()
                )));
            }
            Some(values) => {
                encoded.push(name.clone());
                columns.extend(values.iter().map(|v| format!("{name}={v}")));
            }
        }
    }
    columns.push(DEFAULT_TARGET.to_string());
    let mut out = csv_line(&columns);
    for r in data {
        let mut row: Vec<String> = Vec::with_capacity(columns.len());
        for (j, cell) in r.iter().enumerate() {
            match &categories[j] {
                _ if j == target => {}
                None => row.push(cell.clone()),
                Some(values) => row.extend(values.iter().map(|v| if v == cell { "1" } else { "0" }.to_string())),
            }
        }
        row.push(match classes.get(&r[target]) {
            Some(class) => class.to_string(),
            None => r[target].clone(),
        });
        out.push_str(&csv_line(&row));
    }
    // Parse what was written: the same checks as every later step's.
    let table = Table::from_reader(out.as_bytes())?;
    if !encoded.is_empty() {
        weft_sdk::log_metadata("one_hot", &encoded)?;
    }
    if !classes.is_empty() {
        weft_sdk::log_metadata("classes", &classes.keys().collect::<Vec<_>>())?;
    } else if let Some(names) = class_names.filter(|_| target == width - 1) {
        // scikit-learn's class names name the last column's values.
        weft_sdk::log_metadata("classes", &names)?;
    }
    weft_sdk::log_metric("rows", table.rows.len() as f64);
    weft_sdk::log_metric("features", (table.columns.len() - 1) as f64);
    println!(
        "read {} rows of {} features ({header} header)",
        table.rows.len(),
        table.columns.len() - 1
    );
    Ok(table.write("table")?)
}

fn csv_line(fields: &[String]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(fields);
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

weft_sdk::export_step!(read_csv);
