//! The ONNX model server: serves a model trained anywhere and exported to
//! ONNX, with tract (a pure-Rust ONNX runtime) inside the sandbox.
//!
//! The model takes one tensor of shape `[batch, features]` (f32 or f64;
//! the batch may be a symbol or fixed). Each request row becomes one row
//! of that tensor, its columns taken by position. The answer holds each
//! output of the model per row: the output's values alone when the model
//! has one output, an object of outputs by name when it has several.

use std::io::Cursor;
use std::sync::Arc;

use serde_json::{Map, Value};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::{DimFact, Factoid, GenericFactoid, ShapeFactoid};
use weft_model_sdk::{Error, Model, Result, Table};

struct Onnx {
    plan: Arc<TypedRunnableModel>,
    /// The input's element type.
    input_type: DatumType,
    /// Features per row, when the model fixes it.
    features: Option<usize>,
    /// Rows per call, when the model fixes its batch (usually 1).
    batch: Option<usize>,
    /// Output names, in the model's order.
    outputs: Vec<String>,
}

fn invalid_model(e: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("{e:#}"))
}

impl Model for Onnx {
    fn load(bytes: &[u8]) -> Result<Self> {
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut Cursor::new(bytes))
            .map_err(|e| Error::InvalidModel(format!("not an ONNX model tract can read: {e:#}")))?;
        let inputs = model.input_outlets().map_err(invalid_model)?.len();
        if inputs != 1 {
            return Err(Error::InvalidModel(format!(
                "this server takes models with one input tensor, and this one has {inputs}"
            )));
        }
        // An exporter may leave the batch unnamed (skl2onnx's `None`):
        // it becomes a symbol, so that any number of rows fits.
        let fact = model.input_fact(0).map_err(invalid_model)?.clone();
        let mut dims: TVec<DimFact> = fact.shape.dims().cloned().collect();
        if !fact.shape.is_open() && dims.len() == 2 && dims[0].concretize().is_none() {
            dims[0] = GenericFactoid::Only(model.symbols.sym("batch").into());
            let shape = ShapeFactoid::closed(dims);
            model
                .set_input_fact(0, InferenceFact { shape, ..fact })
                .map_err(invalid_model)?;
        }
        // The names of the graph's outputs, before typing renames nodes.
        let outputs = model
            .output_outlets()
            .map_err(invalid_model)?
            .iter()
            .map(|&o| {
                model
                    .outlet_label(o)
                    .map(str::to_string)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let typed = model.into_typed().map_err(invalid_model)?;
        let fact = typed.input_fact(0).map_err(invalid_model)?.clone();
        if fact.rank() != 2 {
            return Err(Error::InvalidModel(format!(
                "the input is {fact:?}; this server takes a [batch, features] tensor"
            )));
        }
        let input_type = fact.datum_type;
        if !matches!(input_type, DatumType::F32 | DatumType::F64) {
            return Err(Error::InvalidModel(format!(
                "the input holds {input_type:?}; this server takes f32 or f64"
            )));
        }
        let fixed = |d: &TDim| d.to_i64().ok().and_then(|n| usize::try_from(n).ok());
        let batch = fixed(&fact.shape[0]);
        let features = fixed(&fact.shape[1]);
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(invalid_model)?;
        Ok(Onnx {
            plan,
            input_type,
            features,
            batch,
            outputs,
        })
    }

    fn predict(&self, table: &Table) -> Result<Value> {
        let rows = table.numeric_rows(None)?;
        let width = match (self.features, rows.first()) {
            (Some(n), _) => n,
            (None, Some(row)) => row.len(),
            (None, None) => 0,
        };
        if let Some((i, row)) = rows.iter().enumerate().find(|(_, r)| r.len() != width) {
            return Err(Error::InvalidRequest(format!(
                "row {i} has {} values, the model takes {width}",
                row.len()
            )));
        }
        let chunk = self.batch.unwrap_or(rows.len().max(1));
        let mut columns: Vec<Vec<Value>> = vec![Vec::with_capacity(rows.len()); self.outputs.len()];
        for part in rows.chunks(chunk) {
            if part.len() != chunk {
                // Only with a fixed batch larger than what is left.
                return Err(Error::InvalidRequest(format!(
                    "the model takes rows in batches of exactly {chunk}; send a multiple of {chunk}"
                )));
            }
            let input = self.tensor(part, width)?;
            let results = self
                .plan
                .run(tvec!(input.into_tvalue()))
                .map_err(|e| Error::Failed(format!("running the model: {e:#}")))?;
            for (column, tensor) in columns.iter_mut().zip(results.iter()) {
                column.extend(rows_of(tensor, part.len())?);
            }
        }
        Ok(if self.outputs.len() == 1 {
            Value::Array(columns.pop().unwrap_or_default())
        } else {
            Value::Object(
                self.outputs
                    .iter()
                    .cloned()
                    .zip(columns.into_iter().map(Value::Array))
                    .collect::<Map<_, _>>(),
            )
        })
    }
}

impl Onnx {
    fn tensor(&self, rows: &[Vec<f64>], width: usize) -> Result<Tensor> {
        let flat = rows.iter().flatten().copied();
        let shape = [rows.len(), width];
        let tensor = match self.input_type {
            DatumType::F64 => Tensor::from_shape(&shape, &flat.collect::<Vec<f64>>()),
            _ => Tensor::from_shape(&shape, &flat.map(|x| x as f32).collect::<Vec<f32>>()),
        };
        tensor.map_err(|e| Error::Failed(format!("building the input: {e:#}")))
    }
}

/// One JSON value per row of `tensor` (its first axis): a scalar for
/// `[rows]` and `[rows, 1]`, nested arrays otherwise.
fn rows_of(tensor: &Tensor, rows: usize) -> Result<Vec<Value>> {
    let shape = tensor.shape();
    if shape.first() != Some(&rows) {
        return Err(Error::Failed(format!(
            "an output of shape {shape:?} does not have one entry per row ({rows})"
        )));
    }
    let values = flat_values(tensor)?;
    let inner: &[usize] = &shape[1..];
    let per_row: usize = inner.iter().product();
    Ok(values
        .chunks(per_row.max(1))
        .take(rows)
        .map(|chunk| {
            if per_row == 1 {
                chunk[0].clone()
            } else {
                nest(chunk, inner)
            }
        })
        .collect())
}

/// `values` (row-major) as nested arrays of `shape`.
fn nest(values: &[Value], shape: &[usize]) -> Value {
    match shape {
        [] | [_] => Value::Array(values.to_vec()),
        [_, rest @ ..] => {
            let size: usize = rest.iter().product();
            Value::Array(values.chunks(size.max(1)).map(|c| nest(c, rest)).collect())
        }
    }
}

fn flat_values(tensor: &Tensor) -> Result<Vec<Value>> {
    fn each<T: Datum>(tensor: &Tensor, json: impl Fn(&T) -> Value) -> Result<Vec<Value>> {
        let view = tensor
            .to_plain_array_view::<T>()
            .map_err(|e| Error::Failed(format!("reading an output: {e:#}")))?;
        Ok(view.iter().map(json).collect())
    }
    match tensor.datum_type() {
        DatumType::F32 => each::<f32>(tensor, |&x| finite(x.into())),
        DatumType::F64 => each::<f64>(tensor, |&x| finite(x)),
        DatumType::I64 => each::<i64>(tensor, |&x| Value::from(x)),
        DatumType::I32 => each::<i32>(tensor, |&x| Value::from(x)),
        DatumType::Bool => each::<bool>(tensor, |&x| Value::from(x)),
        DatumType::String => each::<String>(tensor, |x| Value::from(x.as_str())),
        other => {
            let cast = tensor.cast_to::<f64>().map_err(|_| {
                Error::Failed(format!(
                    "an output holds {other:?}, which this server cannot return as JSON"
                ))
            })?;
            each::<f64>(&cast, |&x| finite(x))
        }
    }
}

/// NaN and infinities have no JSON form: they become null.
fn finite(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

weft_model_sdk::export_model!(Onnx);
