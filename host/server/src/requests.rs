//! The MLflow API's request bodies as types: one struct per endpoint,
//! deserialized by serde, so that what each endpoint takes is written down
//! in one place and a field of the wrong type is a 400 that names it.
//!
//! protobuf's JSON is lenient in ways clients rely on, and these field
//! types accept the same: [`Int64`] takes a number or a string,
//! [`Double`] a number or `"NaN"` / `"Infinity"` / `"-Infinity"`, [`Text`]
//! any scalar (a param value sent as a number is its text), and lists and
//! objects may be `null`. The rules on values (key characters, lengths,
//! limits per batch) stay with the handlers, which know the reference's
//! messages.

use axum::body::Bytes;
use serde::de::{DeserializeOwned, Deserializer};
use serde::Deserialize;
use serde_json::Value;

use crate::ApiError;

/// A JSON body as `T`; an empty body is `{}`. Parsed once: a body that
/// is not a JSON object is `MALFORMED_REQUEST`, a field of the wrong type
/// `INVALID_PARAMETER_VALUE`, as the reference answers.
pub(crate) fn typed<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        let object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        if e.classify() == serde_json::error::Category::Data && object {
            ApiError::invalid(format!("invalid request: {e}"))
        } else if object {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                format!("the body is not valid JSON: {e}"),
            )
        } else {
            ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "MALFORMED_REQUEST",
                "the body must be a JSON object",
            )
        }
    })
}

/// `null` as the type's default (an absent or null list is empty).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An int64, which protobuf's JSON writes as a string or a number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Int64 {
    Number(i64),
    Text(String),
}

impl Int64 {
    /// Its value; `what` names the field in the error.
    pub(crate) fn get(&self, what: &str) -> Result<i64, ApiError> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| ApiError::invalid(format!("'{what}' must be an integer, got '{t}'"))),
        }
    }
}

/// The page size of a search: `max_results`, `default` when absent, and
/// refused outside 1 to `max`.
pub(crate) fn page_size(max_results: &Option<Int64>, default: i64, max: i64) -> Result<i64, ApiError> {
    let limit = match max_results {
        Some(n) => n.get("max_results")?,
        None => default,
    };
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::invalid(format!(
            "max_results must be 1 to {max}, got {limit}"
        )))
    }
}

/// A list of experiment ids.
pub(crate) fn experiment_ids(ids: &[Int64]) -> Result<Vec<i64>, ApiError> {
    ids.iter().map(|id| id.get("experiment_ids")).collect()
}

/// A double: a number, or the strings protobuf's JSON uses for NaN and the
/// infinities (or a number as text).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Double {
    Number(f64),
    Text(String),
}

impl Double {
    pub(crate) fn get(&self, what: &str) -> Result<f64, ApiError> {
        match self {
            Double::Number(n) => Ok(*n),
            Double::Text(t) => match t.as_str() {
                "NaN" | "nan" => Ok(f64::NAN),
                "Infinity" | "inf" => Ok(f64::INFINITY),
                "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                other => other
                    .parse()
                    .map_err(|_| ApiError::invalid(format!("{what} value '{other}' is not a number"))),
            },
        }
    }
}

/// A string field that some clients send as another scalar: its text
/// (`null` is empty).
#[derive(Debug, Clone, Default)]
pub(crate) struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Text(match Value::deserialize(d)? {
            Value::String(s) => s,
            Value::Null => String::new(),
            other => other.to_string(),
        }))
    }
}

/// A `{key, value}` pair: a param or a tag.
#[derive(Debug, Deserialize)]
pub(crate) struct KeyValueIn {
    pub key: Option<String>,
    #[serde(default)]
    pub value: Text,
}

/// A run named by `run_id` (or, as older clients say, `run_uuid`).
#[derive(Debug, Deserialize)]
pub(crate) struct RunRef {
    pub run_id: Option<String>,
    pub run_uuid: Option<String>,
}

impl RunRef {
    pub(crate) fn get(&self) -> Result<&str, ApiError> {
        self.run_id
            .as_deref()
            .or(self.run_uuid.as_deref())
            .ok_or_else(|| ApiError::invalid("missing value for required parameter 'run_id'"))
    }
}

/// An experiment named by its id.
#[derive(Debug, Deserialize)]
pub(crate) struct ExperimentRef {
    pub experiment_id: Option<Int64>,
}

impl ExperimentRef {
    pub(crate) fn get(&self) -> Result<i64, ApiError> {
        self.experiment_id
            .as_ref()
            .ok_or_else(|| ApiError::invalid("missing value for required parameter 'experiment_id'"))?
            .get("experiment_id")
            .map_err(|_| ApiError::invalid("experiment ids are integers"))
    }
}

/// `experiments/create`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateExperiment {
    pub name: Option<String>,
    pub artifact_location: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// `experiments/update`.
#[derive(Debug, Deserialize)]
pub(crate) struct RenameExperiment {
    #[serde(flatten)]
    pub experiment: ExperimentRef,
    pub new_name: Option<String>,
}

/// `experiments/set-experiment-tag` and `delete-experiment-tag`.
#[derive(Debug, Deserialize)]
pub(crate) struct ExperimentTag {
    #[serde(flatten)]
    pub experiment: ExperimentRef,
    #[serde(flatten)]
    pub tag: KeyValueIn,
}

/// A list of strings; a single string (as a query string sends it) is a
/// list of one.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum Strings {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl Strings {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            Strings::None => Vec::new(),
            Strings::One(s) => vec![s],
            Strings::Many(v) => v,
        }
    }
}

/// `experiments/search`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchExperiments {
    pub max_results: Option<Int64>,
    pub page_token: Option<String>,
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub order_by: Strings,
    pub view_type: Option<String>,
}

/// `runs/create`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateRun {
    pub experiment_id: Option<Int64>,
    pub user_id: Option<String>,
    pub run_name: Option<String>,
    pub start_time: Option<Int64>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// `runs/update`.
#[derive(Debug, Deserialize)]
pub(crate) struct UpdateRun {
    #[serde(flatten)]
    pub run: RunRef,
    pub status: Option<String>,
    pub end_time: Option<Int64>,
    pub run_name: Option<String>,
}

/// A metric point, as `runs/log-metric` and `runs/log-batch` send it.
#[derive(Debug, Deserialize)]
pub(crate) struct MetricIn {
    pub key: Option<String>,
    pub value: Option<Double>,
    pub timestamp: Option<Int64>,
    pub step: Option<Int64>,
    /// The logged model it was measured on, if any (MLflow 3).
    pub model_id: Option<String>,
    pub dataset_name: Option<String>,
    pub dataset_digest: Option<String>,
}

/// `runs/log-metric`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogMetric {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(flatten)]
    pub metric: MetricIn,
}

/// `runs/log-parameter`, `runs/set-tag` and `runs/delete-tag`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunKeyValue {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(flatten)]
    pub pair: KeyValueIn,
}

/// `runs/log-batch`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogBatch {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default, deserialize_with = "nullable")]
    pub metrics: Vec<MetricIn>,
    #[serde(default, deserialize_with = "nullable")]
    pub params: Vec<KeyValueIn>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// A dataset, as `runs/log-inputs` sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct DatasetIn {
    pub name: Option<String>,
    pub digest: Option<String>,
    pub source_type: Option<String>,
    pub source: Option<String>,
    pub schema: Option<String>,
    pub profile: Option<String>,
}

/// One input of `runs/log-inputs`: a dataset and the tags of its use.
#[derive(Debug, Deserialize)]
pub(crate) struct DatasetInputIn {
    pub dataset: Option<DatasetIn>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// `runs/log-inputs`.
#[derive(Debug, Deserialize)]
pub(crate) struct LogInputs {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default, deserialize_with = "nullable")]
    pub datasets: Vec<DatasetInputIn>,
}

/// `runs/search`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchRuns {
    #[serde(default, deserialize_with = "nullable")]
    pub experiment_ids: Vec<Int64>,
    pub filter: Option<String>,
    pub run_view_type: Option<String>,
    pub max_results: Option<Int64>,
    #[serde(default, deserialize_with = "nullable")]
    pub order_by: Strings,
    pub page_token: Option<String>,
}

/// A query string's parameters read into `T` (each value a string, which
/// the lenient field types accept).
pub(crate) fn from_query<T: DeserializeOwned>(query: std::collections::HashMap<String, String>) -> Result<T, ApiError> {
    let map: serde_json::Map<String, Value> = query.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    serde_json::from_value(Value::Object(map)).map_err(|e| ApiError::invalid(format!("invalid request: {e}")))
}

/// A boolean that may come as `true`/`false` or as their text.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Bool {
    Value(bool),
    Text(String),
}

impl Bool {
    pub(crate) fn get(&self, what: &str) -> Result<bool, ApiError> {
        match self {
            Bool::Value(b) => Ok(*b),
            Bool::Text(t) if t.eq_ignore_ascii_case("true") => Ok(true),
            Bool::Text(t) if t.eq_ignore_ascii_case("false") => Ok(false),
            Bool::Text(t) => Err(ApiError::invalid(format!("{what} must be a boolean, got '{t}'"))),
        }
    }
}

/// `registered-models/create`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateModel {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// A registered model by name, and what `update`/`rename` change
/// (`get`, `delete`, `update`, `rename`).
#[derive(Debug, Deserialize)]
pub(crate) struct ModelRef {
    pub name: Option<String>,
    pub description: Option<String>,
    pub new_name: Option<String>,
}

/// A tag of a registered model or of a model version (`version` set).
#[derive(Debug, Deserialize)]
pub(crate) struct RegistryTag {
    pub name: Option<String>,
    pub version: Option<Int64>,
    #[serde(flatten)]
    pub tag: KeyValueIn,
}

/// `registered-models/alias` (set, get, delete).
#[derive(Debug, Deserialize)]
pub(crate) struct ModelAlias {
    pub name: Option<String>,
    pub alias: Option<String>,
    pub version: Option<Int64>,
}

/// `registered-models/get-latest-versions`.
#[derive(Debug, Deserialize)]
pub(crate) struct LatestVersions {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub stages: Strings,
}

/// `model-versions/create`.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateVersion {
    pub name: Option<String>,
    pub source: Option<String>,
    pub run_id: Option<String>,
    pub description: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// A model version (`get`, `delete`, `update`, `get-download-uri`).
#[derive(Debug, Deserialize)]
pub(crate) struct VersionRef {
    pub name: Option<String>,
    pub version: Option<Int64>,
    pub description: Option<String>,
}

/// `model-versions/transition-stage`.
#[derive(Debug, Deserialize)]
pub(crate) struct TransitionStage {
    pub name: Option<String>,
    pub version: Option<Int64>,
    pub stage: Option<String>,
    pub archive_existing_versions: Option<Bool>,
}

/// A search of the registry (models or versions).
#[derive(Debug, Deserialize)]
pub(crate) struct SearchRegistry {
    pub filter: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub order_by: Strings,
    pub max_results: Option<Int64>,
    pub page_token: Option<String>,
}

/// A logged model's status: its name (`LOGGED_MODEL_READY`) or its proto
/// number.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum NameOrNumber {
    Number(i64),
    Name(String),
}

/// `logged-models` (create).
#[derive(Debug, Deserialize)]
pub(crate) struct CreateLoggedModel {
    pub experiment_id: Option<Int64>,
    pub name: Option<String>,
    pub model_type: Option<String>,
    pub source_run_id: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub params: Vec<KeyValueIn>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// `logged-models/{id}` (finalize).
#[derive(Debug, Deserialize)]
pub(crate) struct FinalizeLoggedModel {
    pub status: Option<NameOrNumber>,
}

/// `logged-models/{id}/params` and `/tags`.
#[derive(Debug, Deserialize)]
pub(crate) struct LoggedModelPairs {
    #[serde(default, deserialize_with = "nullable")]
    pub params: Vec<KeyValueIn>,
    #[serde(default, deserialize_with = "nullable")]
    pub tags: Vec<KeyValueIn>,
}

/// `logged-models/search`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchLoggedModels {
    #[serde(default, deserialize_with = "nullable")]
    pub experiment_ids: Vec<Int64>,
    pub filter: Option<String>,
    pub max_results: Option<Int64>,
    pub page_token: Option<String>,
}

/// One model of `runs/outputs`.
#[derive(Debug, Deserialize)]
pub(crate) struct ModelOutputIn {
    pub model_id: Option<String>,
    pub step: Option<Int64>,
}

/// `runs/outputs`.
#[derive(Debug, Deserialize)]
pub(crate) struct RunOutputs {
    #[serde(flatten)]
    pub run: RunRef,
    #[serde(default, deserialize_with = "nullable")]
    pub models: Vec<ModelOutputIn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protobuf_json_is_read_leniently() {
        let batch: LogBatch = typed(&Bytes::from_static(
            br#"{"run_id": "r", "metrics": [{"key": "a", "value": "NaN", "timestamp": "5", "step": 2}],
                "params": [{"key": "p", "value": 3}], "tags": null}"#,
        ))
        .unwrap();
        assert_eq!(batch.run.get().unwrap(), "r");
        assert!(batch.metrics[0].value.as_ref().unwrap().get("a").unwrap().is_nan());
        assert_eq!(batch.metrics[0].timestamp.as_ref().unwrap().get("t").unwrap(), 5);
        assert_eq!(batch.params[0].value.0, "3");
        assert!(batch.tags.is_empty());
        let search: SearchRuns =
            typed(&Bytes::from_static(br#"{"experiment_ids": ["1", 2], "order_by": "x"}"#)).unwrap();
        assert_eq!(search.order_by.into_vec(), ["x"]);
        assert_eq!(search.experiment_ids[1].get("id").unwrap(), 2);
        for bad in [&b"[1]"[..], b"{", br#"{"metrics": 3}"#, br#"{"run_id": 5}"#] {
            let e = typed::<LogBatch>(&Bytes::copy_from_slice(bad)).unwrap_err();
            assert_eq!(
                e.status,
                axum::http::StatusCode::BAD_REQUEST,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
