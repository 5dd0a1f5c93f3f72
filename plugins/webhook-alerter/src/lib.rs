//! Alerter: POSTs each event it is told of as JSON to a configured URL.
//!
//! Config: `url` (required): where to POST; `token` (optional): sent as
//! `Authorization: Bearer <token>`. It asks to reach whichever host the
//! user grants (`--allow http:HOST:PORT`), and reaches only those.
//!
//! The body: `{"event": "run-started" | "step-finished" | "run-finished",
//! "run": {...}, "step": {...}, "steps": [...]}`.

use serde_json::{json, Value};
use weft_plugin_sdk::{http, Config};

wit_bindgen::generate!({ path: "../../wit/plugin", world: "alerter" });

use weft::plugin::types::{ConfigKey, Kind, RunInfo, StepInfo};

struct WebhookAlerter;

impl Guest for WebhookAlerter {
    fn describe() -> Manifest {
        Manifest {
            name: "webhook-alerter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            kind: Kind::Alerter,
            description:
                "POSTs run and step events as JSON to a URL (Slack-style webhooks, incident tools, your own service)"
                    .into(),
            http_hosts: vec!["*".into()],
            config: vec![
                ConfigKey {
                    name: "url".into(),
                    description: "where to POST each event".into(),
                    required: true,
                },
                ConfigKey {
                    name: "token".into(),
                    description: "sent as a bearer token".into(),
                    required: false,
                },
            ],
            conversions: vec![],
        }
    }

    fn notify(config: String, event: Event) -> Result<(), PluginError> {
        let config = Config::parse(&config).map_err(PluginError::InvalidConfig)?;
        let url = config.string("url").map_err(PluginError::InvalidConfig)?;
        let token = config.optional_string("token").map_err(PluginError::InvalidConfig)?;
        let body = match &event {
            Event::RunStarted(run) => json!({ "event": "run-started", "run": run_json(run) }),
            Event::StepFinished((run, step)) => {
                json!({ "event": "step-finished", "run": run_json(run), "step": step_json(step) })
            }
            Event::RunFinished((run, steps)) => json!({
                "event": "run-finished",
                "run": run_json(run),
                "steps": steps.iter().map(step_json).collect::<Vec<_>>(),
            }),
        };
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        let response = http::post_json(&url, &headers, &body).map_err(PluginError::Failed)?;
        if !(200..300).contains(&response.status) {
            return Err(PluginError::Failed(format!(
                "{url} answered {}: {}",
                response.status,
                response.text()
            )));
        }
        Ok(())
    }
}

fn run_json(run: &RunInfo) -> Value {
    json!({
        "run_id": run.run_id,
        "pipeline": run.pipeline,
        "number": run.number,
        "status": run.status,
        "error": run.error,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
    })
}

fn step_json(step: &StepInfo) -> Value {
    json!({
        "name": step.name,
        "status": step.status,
        "error": step.error,
        "duration_ms": step.duration_ms,
        "cached_from": step.cached_from,
        "params": serde_json::from_str::<Value>(&step.params).unwrap_or(Value::Null),
    })
}

export!(WebhookAlerter);
