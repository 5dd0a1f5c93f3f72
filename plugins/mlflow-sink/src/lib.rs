//! Tracker sink: forwards each finished weft run to an MLflow-compatible
//! tracking server (MLflow itself, or another `weft server`) through its
//! REST API: the pipeline becomes an experiment, the run a run, each step's
//! params and metrics `step.key`, with weft tags.
//!
//! Config: `tracking_uri` (required, e.g. `http://mlflow.internal:5000`),
//! `experiment` (default: the pipeline's name), `token` (optional bearer
//! token). It reaches only the hosts the user grants.

use serde_json::{json, Value};
use weft_plugin_sdk::{http, Config};

wit_bindgen::generate!({ path: "../../wit/plugin", world: "tracker-sink" });

use weft::plugin::types::{ConfigKey, Kind};

/// MLflow's per-request limits of log-batch.
const MAX_PARAMS: usize = 100;
const MAX_METRICS: usize = 1000;

struct MlflowSink;

struct Client {
    base: String,
    auth: Option<String>,
}

impl Client {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), PluginError> {
        let url = format!("{}/api/2.0/mlflow/{path}", self.base);
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &self.auth {
            headers.push(("authorization", a.as_str()));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let response = http::send(method, &url, &headers, bytes.as_bytes()).map_err(PluginError::Failed)?;
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok((response.status, json))
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Result<Value, PluginError> {
        match self.call(method, path, Some(body))? {
            (200, json) => Ok(json),
            (status, json) => Err(PluginError::Failed(format!("{path} answered {status}: {json}"))),
        }
    }
}

impl Guest for MlflowSink {
    fn describe() -> Manifest {
        Manifest {
            name: "mlflow-sink".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::TrackerSink,
            description: "Forwards each finished run (params, metrics, tags) to an MLflow-compatible tracking server"
                .into(),
            http_hosts: vec!["*".into()],
            config: vec![
                ConfigKey {
                    name: "tracking_uri".into(),
                    description: "the server's base URL".into(),
                    required: true,
                },
                ConfigKey {
                    name: "experiment".into(),
                    description: "experiment name (default: the pipeline's)".into(),
                    required: false,
                },
                ConfigKey {
                    name: "token".into(),
                    description: "bearer token for writes".into(),
                    required: false,
                },
            ],
            conversions: vec![],
        }
    }

    fn publish(config: String, run: TrackedRun) -> Result<(), PluginError> {
        let config = Config::parse(&config).map_err(PluginError::InvalidConfig)?;
        let base = config.string("tracking_uri").map_err(PluginError::InvalidConfig)?;
        let experiment = config
            .optional_string("experiment")
            .map_err(PluginError::InvalidConfig)?
            .unwrap_or_else(|| run.run.pipeline.clone());
        let client = Client {
            base: base.trim_end_matches('/').to_string(),
            auth: config
                .optional_string("token")
                .map_err(PluginError::InvalidConfig)?
                .map(|t| format!("Bearer {t}")),
        };

        let path = format!("experiments/get-by-name?experiment_name={}", encode(&experiment));
        let experiment_id = match client.call("GET", &path, None)? {
            (200, json) => json["experiment"]["experiment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            (404, _) => client.ok("POST", "experiments/create", json!({ "name": experiment }))?["experiment_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            (status, json) => {
                return Err(PluginError::Failed(format!(
                    "experiments/get-by-name answered {status}: {json}"
                )))
            }
        };
        let info = &run.run;
        let created = client.ok(
            "POST",
            "runs/create",
            json!({
                "experiment_id": experiment_id,
                "run_name": format!("{} #{}", info.pipeline, info.number),
                "start_time": info.started_at,
                "tags": [
                    { "key": "weft.run_id", "value": info.run_id },
                    { "key": "weft.pipeline", "value": info.pipeline },
                    { "key": "weft.status", "value": info.status },
                ],
            }),
        )?;
        let run_id = created["run"]["info"]["run_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if run_id.is_empty() {
            return Err(PluginError::Failed(format!("runs/create gave no run id: {created}")));
        }

        let params: Vec<Value> = run
            .steps
            .iter()
            .flat_map(|s| match serde_json::from_str::<Value>(&s.params) {
                Ok(Value::Object(map)) => map
                    .into_iter()
                    .map(|(k, v)| json!({ "key": format!("{}.{k}", s.name), "value": scalar(&v) }))
                    .collect(),
                _ => vec![],
            })
            .chain(
                run.params
                    .iter()
                    .map(|p| json!({ "key": format!("{}.{}", p.step, p.key), "value": p.value })),
            )
            .collect();
        let metrics: Vec<Value> = run
            .metrics
            .iter()
            .filter(|m| m.value.is_finite())
            .map(|m| {
                json!({
                    "key": format!("{}.{}", m.step, m.key),
                    "value": m.value,
                    "timestamp": m.timestamp,
                    "step": m.index.unwrap_or(0),
                })
            })
            .collect();
        let tags: Vec<Value> = run
            .tags
            .iter()
            .map(|t| json!({ "key": format!("{}.{}", t.step, t.key), "value": t.value }))
            .collect();
        for chunk in params.chunks(MAX_PARAMS) {
            client.ok("POST", "runs/log-batch", json!({ "run_id": run_id, "params": chunk }))?;
        }
        for chunk in metrics.chunks(MAX_METRICS) {
            client.ok("POST", "runs/log-batch", json!({ "run_id": run_id, "metrics": chunk }))?;
        }
        if !tags.is_empty() {
            client.ok("POST", "runs/log-batch", json!({ "run_id": run_id, "tags": tags }))?;
        }
        let status = match info.status.as_str() {
            "succeeded" => "FINISHED",
            "cancelled" => "KILLED",
            _ => "FAILED",
        };
        client.ok(
            "POST",
            "runs/update",
            json!({
                "run_id": run_id,
                "status": status,
                "end_time": info.ended_at.unwrap_or(info.started_at),
            }),
        )?;
        Ok(())
    }
}

/// A param value as MLflow shows it: strings bare, anything else as JSON.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

export!(MlflowSink);
