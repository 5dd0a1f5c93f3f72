//! From a file's text cells to weft's table: what ml/read-csv and
//! ml/read-parquet share.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{Error, Result, Table, DEFAULT_TARGET, MAX_CATEGORIES};

/// The label column of a file: its name, or its 0-based index.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum TargetColumn {
    Index(usize),
    Name(String),
}

/// A file's rows as weft's table.
#[derive(Debug)]
pub struct Encoded {
    pub table: Table,
    /// The index of the label column in the file.
    pub target: usize,
    /// The feature columns of text, one-hot encoded.
    pub one_hot: Vec<String>,
    /// The labels, if they were text: class `i` is `classes[i]`.
    pub classes: Vec<String>,
}

/// What the first line of a CSV file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// Column names.
    Names,
    /// Data: the file has no header.
    None,
    /// scikit-learn's: the number of rows, of features, then class names.
    Sklearn,
}

impl Header {
    pub fn as_str(self) -> &'static str {
        match self {
            Header::Names => "names",
            Header::None => "none",
            Header::Sklearn => "sklearn",
        }
    }
}

/// Guesses what the first of `records` (a file's non-empty lines, split
/// into cells) is. scikit-learn's line gives the count of the other lines
/// and of their features; a line of names has, in some column, text above
/// numbers, or no column of numbers under it at all (a header is then
/// assumed, as pandas does); anything else is data.
pub fn detect_header(records: &[Vec<String>]) -> Header {
    let Some(first) = records.first() else {
        return Header::None;
    };
    let rest = &records[1..];
    let width_of_data = rest.first().map_or(first.len(), Vec::len);
    if !rest.is_empty()
        && first.len() >= 2
        && first[0].parse::<usize>().ok() == Some(rest.len())
        && first[1].parse::<usize>().ok() == Some(width_of_data.saturating_sub(1))
        // Not a data line that happens to start with those counts.
        && (first.len() != width_of_data || !first[2..].iter().all(|c| number(c)))
    {
        return Header::Sklearn;
    }
    let column_is_numbers = |j: usize| rest.iter().filter_map(|r| r.get(j)).all(|c| number(c));
    let named = (0..first.len()).any(|j| !number(&first[j]) && column_is_numbers(j));
    let numbers_under_numbers = (0..first.len()).any(|j| number(&first[j]) && column_is_numbers(j));
    if named || (!numbers_under_numbers && !first.iter().all(|c| number(c))) {
        Header::Names
    } else {
        Header::None
    }
}

fn number(cell: &str) -> bool {
    cell.parse::<f64>().is_ok_and(f64::is_finite)
}

/// Encodes `data` (rows of cells, as text) with columns `names`: the label
/// column (`target`, default the last) goes last and is named `target`;
/// text labels become class numbers (their rank among the distinct
/// labels); a feature column holding text in most rows is a category and
/// becomes one `name=value` column (1 or 0) per distinct value. Any other
/// cell that is not a finite number fails, naming its row and column.
pub fn encode(names: &[String], data: &[Vec<String>], target: Option<&TargetColumn>) -> Result<Encoded> {
    let width = names.len();
    if width < 2 {
        return Err(Error::msg("a table needs at least one feature and a target column"));
    }
    let target = match target {
        None => width - 1,
        Some(TargetColumn::Index(i)) if *i < width => *i,
        Some(TargetColumn::Index(i)) => {
            return Err(Error::invalid_params(format!(
                "target column {i} is past the last ({})",
                width - 1
            )))
        }
        Some(TargetColumn::Name(name)) => names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::invalid_params(format!("no column '{name}' (the columns: {})", names.join(", "))))?,
    };
    for (i, r) in data.iter().enumerate() {
        if r.len() != width {
            return Err(Error::msg(format!(
                "data row {} has {} fields, the header {width}",
                i + 1,
                r.len()
            )));
        }
    }
    // Labels that are not numbers become class numbers.
    let mut classes: BTreeMap<&str, usize> = BTreeMap::new();
    if !data.iter().all(|r| r[target].parse::<f64>().is_ok()) {
        for r in data {
            classes.insert(&r[target], 0);
        }
        for (i, v) in classes.values_mut().enumerate() {
            *v = i;
        }
    }
    // A feature column of text is a category: its distinct values, sorted.
    let categories: Vec<Option<Vec<&str>>> = (0..width)
        .map(|j| {
            // Mostly numbers: a numeric column (a cell that is not a
            // number fails, naming it).
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
    let mut one_hot = Vec::new();
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
                one_hot.push(name.clone());
                columns.extend(values.iter().map(|v| format!("{name}={v}")));
            }
        }
    }
    columns.push(DEFAULT_TARGET.to_string());
    crate::check_columns(&columns)?;
    let mut rows = Vec::with_capacity(data.len());
    for (i, r) in data.iter().enumerate() {
        let mut row: Vec<f64> = Vec::with_capacity(columns.len());
        for (j, cell) in r.iter().enumerate() {
            match &categories[j] {
                _ if j == target => {}
                None => row.push(parse(cell, i + 1, &names[j])?),
                Some(values) => row.extend(values.iter().map(|v| if v == cell { 1.0 } else { 0.0 })),
            }
        }
        row.push(match classes.get(r[target].as_str()) {
            Some(&class) => class as f64,
            None => parse(&r[target], i + 1, &names[target])?,
        });
        rows.push(row);
    }
    Ok(Encoded {
        table: Table { columns, rows },
        target,
        one_hot,
        classes: classes.into_keys().map(str::to_string).collect(),
    })
}

fn parse(cell: &str, row: usize, column: &str) -> Result<f64> {
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::msg(format!(
            "row {row}, column '{column}': '{cell}' is not a finite number"
        ))),
    }
}

impl Encoded {
    /// Writes the table as output `table` and logs what was encoded
    /// (metadata `one_hot`, `classes`) and its size (metrics `rows`,
    /// `features`).
    #[cfg(feature = "step")]
    pub fn write(&self, what: &str) -> Result<()> {
        let failed = |e: weft_sdk::Error| Error::msg(e.message());
        if !self.one_hot.is_empty() {
            weft_sdk::log_metadata("one_hot", &self.one_hot).map_err(failed)?;
        }
        if !self.classes.is_empty() {
            weft_sdk::log_metadata("classes", &self.classes).map_err(failed)?;
        }
        let (rows, features) = (self.table.rows.len(), self.table.columns.len() - 1);
        weft_sdk::log_metric("rows", rows as f64);
        weft_sdk::log_metric("features", features as f64);
        println!("read {rows} rows of {features} features ({what})");
        self.table.write("table")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &[&str]) -> Vec<Vec<String>> {
        text.iter()
            .map(|r| r.split(',').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn the_header_is_told_from_the_data() {
        let h = |text: &[&str]| detect_header(&rows(text));
        assert_eq!(h(&["2,2,no,yes", "1,2,0", "3,4,1"]), Header::Sklearn);
        assert_eq!(h(&["a,b,label", "1,2,yes", "3,4,no"]), Header::Names);
        assert_eq!(h(&["colour,size,label", "red,1,yes", "blue,2,no"]), Header::Names);
        assert_eq!(h(&["5,6,0", "3,4,1"]), Header::None);
        assert_eq!(h(&["red,1,yes", "blue,2,no"]), Header::None);
        assert_eq!(h(&["colour,label", "red,yes"]), Header::Names);
        assert_eq!(h(&["1.5,2,0"]), Header::None);
        // A data line that starts with the counts scikit-learn's would give.
        assert_eq!(h(&["1,2,0", "3,4,1"]), Header::None);
        assert_eq!(h(&["1,2", "3,4,1"]), Header::Sklearn);
    }

    #[test]
    fn labels_become_classes_and_text_features_categories() {
        let names: Vec<String> = ["size", "colour", "verdict"].map(String::from).to_vec();
        let e = encode(&names, &rows(&["1,red,keep", "2,blue,drop", "3,red,keep"]), None).unwrap();
        assert_eq!(e.table.columns, ["size", "colour=blue", "colour=red", "target"]);
        assert_eq!(e.table.rows[1], [2.0, 1.0, 0.0, 0.0]);
        assert_eq!(
            (e.one_hot, e.classes, e.target),
            (
                vec!["colour".to_string()],
                vec!["drop".to_string(), "keep".to_string()],
                2
            )
        );
        // The label by name, anywhere; numbers stay numbers.
        let e = encode(
            &names[..2].to_vec(),
            &rows(&["1,red", "2,blue"]),
            Some(&TargetColumn::Name("size".into())),
        )
        .unwrap();
        assert_eq!(e.table.columns, ["colour=blue", "colour=red", "target"]);
        assert_eq!(e.table.rows, [vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 2.0]]);
        // A text cell in a column of numbers is an error that names it.
        let err = encode(&names, &rows(&["1,red,a", "x,blue,b", "3,red,a"]), None).unwrap_err();
        assert_eq!(err.message(), "row 2, column 'size': 'x' is not a finite number");
        assert!(encode(&names, &rows(&["1,red"]), None).is_err());
        assert!(encode(&names, &rows(&["1,red,a"]), Some(&TargetColumn::Index(3))).is_err());
    }
}
