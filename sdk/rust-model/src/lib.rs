//! Write weft model servers in Rust.
//!
//! A model server is a WebAssembly component of the `model` world in
//! `wit/inference/inference.wit`: weft gives each instance the registered
//! model's bytes once, then asks it for predictions. Implement [`Model`]
//! and export it:
//!
//! ```ignore
//! use weft_model_sdk::{Error, Model, Result, Table};
//!
//! struct Doubler;
//!
//! impl Model for Doubler {
//!     fn load(_bytes: &[u8]) -> Result<Self> {
//!         Ok(Doubler)
//!     }
//!     fn predict(&self, table: &Table) -> Result<serde_json::Value> {
//!         let rows = table.numeric_rows(None)?;
//!         Ok(rows.iter().map(|r| r[0] * 2.0).collect())
//!     }
//! }
//!
//! weft_model_sdk::export_model!(Doubler);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2`. weft turns
//! every MLflow scoring format into a [`Table`]; what `predict` returns
//! becomes the `predictions` of the answer. An [`Error::InvalidRequest`]
//! answers HTTP 400 with its message, any other error 500, and a panic
//! fails the request (the instance is replaced).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Value};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit/inference",
        world: "model",
        pub_export_macro: true,
        export_macro_name: "__export_model_world",
        default_bindings_module: "weft_model_sdk::bindings",
    });
}

use bindings::weft::inference::types::{InferenceError, Response};

/// Why a model could not be loaded or a request answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The bytes are not a model this server reads.
    InvalidModel(String),
    /// The request does not fit the model (the client's mistake).
    InvalidRequest(String),
    /// Anything else.
    Failed(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidModel(m) => write!(f, "invalid model: {m}"),
            Error::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

/// The result of loading or predicting.
pub type Result<T> = std::result::Result<T, Error>;

/// A request as weft hands it over: rows of values, with their column
/// names when the request gave them, and the request's params.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Table {
    /// Column names, or `None` when the request sent bare rows.
    pub columns: Option<Vec<String>>,
    /// One entry per row.
    pub data: Vec<Vec<Value>>,
    /// The request's `params`, if it sent any.
    #[serde(default)]
    pub params: Map<String, Value>,
}

impl Table {
    /// Parses weft's table form (`{"columns": [...], "data": [[...]]}`).
    pub fn parse(json: &[u8]) -> Result<Self> {
        serde_json::from_slice(json).map_err(|e| Error::InvalidRequest(format!("not a table: {e}")))
    }

    /// The rows as numbers. With `features`, each row holds those columns
    /// in that order: found by name when the request named its columns,
    /// taken by position (and counted) when it did not. Without, each row
    /// as it came. A missing column, a row of the wrong length or a value
    /// that is not a finite number is an [`Error::InvalidRequest`] naming
    /// the row.
    pub fn numeric_rows(&self, features: Option<&[String]>) -> Result<Vec<Vec<f64>>> {
        let positions: Option<Vec<usize>> = match (features, &self.columns) {
            (Some(features), Some(columns)) => Some(
                features
                    .iter()
                    .map(|f| {
                        columns
                            .iter()
                            .position(|c| c == f)
                            .ok_or_else(|| Error::InvalidRequest(format!("column '{f}' is missing")))
                    })
                    .collect::<Result<_>>()?,
            ),
            (Some(features), None) => Some((0..features.len()).collect()),
            (None, _) => None,
        };
        self.data
            .iter()
            .enumerate()
            .map(|(i, row)| {
                if let (Some(features), None) = (features, &self.columns) {
                    if row.len() != features.len() {
                        return Err(Error::InvalidRequest(format!(
                            "row {i} has {} values, the model takes {}",
                            row.len(),
                            features.len()
                        )));
                    }
                }
                let pick: Box<dyn Iterator<Item = Option<&Value>>> = match &positions {
                    Some(p) => Box::new(p.iter().map(|&at| row.get(at))),
                    None => Box::new(row.iter().map(Some)),
                };
                pick.map(|v| match v.and_then(number) {
                    Some(x) if x.is_finite() => Ok(x),
                    _ => Err(Error::InvalidRequest(format!(
                        "row {i} has a value that is not a finite number"
                    ))),
                })
                .collect()
            })
            .collect()
    }
}

/// A JSON number, or a string holding one (CSV requests carry strings).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A model server.
pub trait Model: Sized + 'static {
    /// Reads the model from the registered version's bytes.
    fn load(bytes: &[u8]) -> Result<Self>;

    /// The predictions for a table, one per row, as JSON.
    fn predict(&self, table: &Table) -> Result<Value>;

    /// Answers a request in its own media type (weft's `/predict` route).
    /// By default a JSON body is read as a [`Table`] and answered with the
    /// predictions as JSON.
    fn predict_raw(&self, body: &[u8], media_type: &str) -> Result<(String, Vec<u8>)> {
        let essence = media_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(Error::InvalidRequest(format!(
                "this model takes application/json, not '{media_type}'"
            )));
        }
        let predictions = self.predict(&Table::parse(body)?)?;
        let body = serde_json::to_vec(&predictions).map_err(|e| Error::Failed(e.to_string()))?;
        Ok(("application/json".into(), body))
    }
}

thread_local! {
    /// The loaded model of this instance.
    static LOADED: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
}

fn to_wit(e: Error) -> InferenceError {
    match e {
        Error::InvalidModel(m) => InferenceError::InvalidModel(m),
        Error::InvalidRequest(m) => InferenceError::InvalidRequest(m),
        Error::Failed(m) => InferenceError::Failed(m),
    }
}

#[doc(hidden)]
pub fn __load<M: Model>(bytes: &[u8]) -> std::result::Result<(), InferenceError> {
    let model = M::load(bytes).map_err(to_wit)?;
    LOADED.with(|slot| *slot.borrow_mut() = Some(Box::new(model)));
    Ok(())
}

#[doc(hidden)]
pub fn __predict<M: Model>(body: &[u8], media_type: &str) -> std::result::Result<Response, InferenceError> {
    LOADED.with(|slot| {
        let slot = slot.borrow();
        let model = slot
            .as_ref()
            .and_then(|m| m.downcast_ref::<M>())
            .ok_or_else(|| InferenceError::Failed("predict was called before load".into()))?;
        let (media_type, body) = model.predict_raw(body, media_type).map_err(to_wit)?;
        Ok(Response { media_type, body })
    })
}

/// Exports a [`Model`] as the component's `load` and `predict`.
#[macro_export]
macro_rules! export_model {
    ($model:ty) => {
        #[doc(hidden)]
        struct __WeftModel;

        impl $crate::bindings::Guest for __WeftModel {
            fn load(
                model: ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), $crate::bindings::weft::inference::types::InferenceError> {
                $crate::__load::<$model>(&model)
            }
            fn predict(
                request: ::std::vec::Vec<u8>,
                media_type: ::std::string::String,
            ) -> ::core::result::Result<
                $crate::bindings::weft::inference::types::Response,
                $crate::bindings::weft::inference::types::InferenceError,
            > {
                $crate::__predict::<$model>(&request, &media_type)
            }
        }

        $crate::bindings::__export_model_world!(__WeftModel with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_found_by_name_and_bare_rows_by_position() {
        let features = ["a".to_string(), "b".to_string()];
        let named = Table::parse(br#"{"columns":["b","a"],"data":[[2,1],["4","3"]]}"#).unwrap();
        assert_eq!(named.numeric_rows(Some(&features)).unwrap(), vec![vec![1.0, 2.0], vec![3.0, 4.0]]);
        let bare = Table::parse(br#"{"columns":null,"data":[[1,2]]}"#).unwrap();
        assert_eq!(bare.numeric_rows(Some(&features)).unwrap(), vec![vec![1.0, 2.0]]);
        let short = Table::parse(br#"{"columns":null,"data":[[1]]}"#).unwrap();
        assert!(matches!(short.numeric_rows(Some(&features)), Err(Error::InvalidRequest(_))));
        let missing = Table::parse(br#"{"columns":["a"],"data":[[1]]}"#).unwrap();
        assert!(matches!(missing.numeric_rows(Some(&features)), Err(Error::InvalidRequest(m)) if m.contains("'b'")));
        let text = Table::parse(br#"{"columns":null,"data":[["x"]]}"#).unwrap();
        assert!(text.numeric_rows(None).is_err());
    }
}
