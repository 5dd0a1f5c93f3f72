//! ml/read-parquet: reads a Parquet file into weft's table (see
//! `ml-common`), as ml/read-csv does a CSV file.
//!
//! Input `raw`; output `table`. Param `target`: the label column's name or
//! its 0-based index (default: the last column); it is called `target` in
//! the table. Columns of numbers (integers, floats, decimals, booleans as 1
//! and 0) stay numbers; a column of strings is a category and is one-hot
//! encoded, or, as the label, becomes class numbers. Missing values, dates,
//! times, binary and nested columns are refused, naming the column: weft's
//! table holds numbers. Compression: none, Snappy (pandas' and pyarrow's
//! default), gzip or LZ4; zstd and Brotli are refused with a hint.

use ml_common::TargetColumn;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde::Deserialize;
use weft_sdk::Error;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    target: Option<TargetColumn>,
}

fn cell(field: &Field, row: usize, column: &str) -> weft_sdk::Result<String> {
    let number = |v: f64| Ok(v.to_string());
    match field {
        Field::Bool(b) => number(if *b { 1.0 } else { 0.0 }),
        Field::Byte(v) => number(*v as f64),
        Field::Short(v) => number(*v as f64),
        Field::Int(v) => number(*v as f64),
        Field::Long(v) => number(*v as f64),
        Field::UByte(v) => number(*v as f64),
        Field::UShort(v) => number(*v as f64),
        Field::UInt(v) => number(*v as f64),
        Field::ULong(v) => number(*v as f64),
        Field::Float16(v) => number(v.to_f64()),
        Field::Float(v) => number(*v as f64),
        Field::Double(v) => number(*v),
        // A decimal's text is exact: parsed as a number later.
        Field::Decimal(_) => Ok(field.to_string()),
        Field::Str(s) => Ok(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => Err(Error::msg(format!(
                "row {row}, column '{column}': binary data, not text or a number"
            ))),
        },
        Field::Null => Err(Error::msg(format!(
            "row {row}, column '{column}' is missing (null): weft's table has no missing values; fill or drop them first"
        ))),
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => Err(Error::msg(format!(
            "column '{column}' holds dates or times: convert them to numbers (or drop the column) first"
        ))),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => Err(Error::msg(format!(
            "column '{column}' is nested (a struct, list or map): weft's table is flat"
        ))),
    }
}

fn read_parquet(params: Params) -> weft_sdk::Result<()> {
    let bytes = weft_sdk::read_input("raw")?;
    let not_parquet = |e: parquet::errors::ParquetError| {
        let hint = match e.to_string() {
            m if m.contains("zstd") || m.contains("ZSTD") || m.contains("brotli") || m.contains("BROTLI") => {
                " (write it with Snappy, gzip, LZ4 or no compression: e.g. pandas' to_parquet(compression=\"snappy\"))"
            }
            _ => "",
        };
        Error::msg(format!("input 'raw' cannot be read as Parquet: {e}{hint}"))
    };
    let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).map_err(not_parquet)?;
    let names: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    let mut data = Vec::new();
    for (i, row) in reader.get_row_iter(None).map_err(not_parquet)?.enumerate() {
        let row = row.map_err(not_parquet)?;
        let cells = row
            .get_column_iter()
            .map(|(name, field)| cell(field, i + 1, name))
            .collect::<weft_sdk::Result<Vec<String>>>()?;
        data.push(cells);
    }
    if data.is_empty() {
        return Err(Error::msg("the file holds no rows"));
    }
    let encoded = ml_common::encode(&names, &data, params.target.as_ref())?;
    Ok(encoded.write("Parquet")?)
}

weft_sdk::export_step!(read_parquet);
