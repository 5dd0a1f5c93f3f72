//! CSV tables, as weft's steps exchange them in every language (cargo
//! feature `csv`): a first line of column names, then one line per row
//! (RFC 4180, comma-separated, UTF-8). The steps of weft's library read
//! and write the same format, with the label column named `target`; Python
//! steps use `weft.read_csv` / `weft.write_csv`, JavaScript steps
//! `weft.readCsv` / `weft.writeCsv`.

use crate::{check_name, create_output, open_input, Error, Result};

/// A table: column names and rows of cells, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// The index of column `name`.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            Error::msg(format!(
                "the table has no column '{name}' (its columns: {})",
                self.columns.join(", ")
            ))
        })
    }

    /// The cells of column `name` as numbers.
    pub fn numbers(&self, name: &str) -> Result<Vec<f64>> {
        let j = self.column(name)?;
        self.rows
            .iter()
            .enumerate()
            .map(|(i, row)| {
                row[j]
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| Error::msg(format!("row {}, column '{name}': '{}' is not a number", i + 1, row[j])))
            })
            .collect()
    }

    /// Appends column `name` with one cell per row.
    pub fn push_column<T: ToString>(&mut self, name: &str, cells: impl IntoIterator<Item = T>) -> Result<()> {
        if self.columns.iter().any(|c| c == name) {
            return Err(Error::msg(format!("the table already has a column '{name}'")));
        }
        let cells: Vec<String> = cells.into_iter().map(|c| c.to_string()).collect();
        if cells.len() != self.rows.len() {
            return Err(Error::msg(format!(
                "column '{name}' has {} cells for {} rows",
                cells.len(),
                self.rows.len()
            )));
        }
        self.columns.push(name.to_string());
        for (row, cell) in self.rows.iter_mut().zip(cells) {
            row.push(cell);
        }
        Ok(())
    }
}

/// Reads a CSV input into a [`Table`]; every row must have a cell per column.
pub fn read_csv(name: &str) -> Result<Table> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(open_input(name)?);
    let bad = |e: csv::Error| Error::msg(format!("input '{name}' is not a CSV table: {e}"));
    let columns = reader.headers().map_err(bad)?.iter().map(str::to_string).collect();
    let rows = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect::<std::result::Result<_, _>>()
        .map_err(bad)?;
    Ok(Table { columns, rows })
}

/// Writes `table` as a CSV output.
pub fn write_csv(name: &str, table: &Table) -> Result<()> {
    check_name("output", name)?;
    if let Some(i) = table.rows.iter().position(|r| r.len() != table.columns.len()) {
        return Err(Error::msg(format!(
            "cannot write output '{name}': row {} has {} cells for {} columns",
            i + 1,
            table.rows[i].len(),
            table.columns.len()
        )));
    }
    let failed = |e: csv::Error| Error::msg(format!("cannot write output '{name}': {e}"));
    let mut writer = csv::Writer::from_writer(create_output(name)?);
    writer.write_record(&table.columns).map_err(failed)?;
    for row in &table.rows {
        writer.write_record(row).map_err(failed)?;
    }
    writer
        .flush()
        .map_err(|e| Error::msg(format!("cannot write output '{name}': {e}")))
}
