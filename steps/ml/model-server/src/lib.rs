//! ml/model-server: serves a model written by an ml/* training step
//! (`weft serve`, `weft server --serve-models`). Each row of a request is
//! read by the model's feature names (or in their order when the request
//! has no column names) and answered with its class (with the request
//! param `{"probabilities": true}`, with each class's probability), its
//! value (a regressor) or its cluster (a clustering).

use ml_common::{ModelFile, Predicted};
use serde_json::{json, Value};
use weft_model_sdk::{Error, Model, Result, Table};

struct Served(ModelFile);

impl Model for Served {
    fn load(bytes: &[u8]) -> Result<Self> {
        ModelFile::from_slice(bytes)
            .map(Served)
            .map_err(|e| Error::InvalidModel(e.to_string()))
    }

    fn predict(&self, table: &Table) -> Result<Value> {
        let model = &self.0;
        let rows: Vec<Vec<f64>> = table
            .numeric_rows(Some(&model.features))?
            .into_iter()
            .map(|row| model.scale(row))
            .collect();
        let predicted = model.predict(&rows).map_err(|e| Error::Failed(e.to_string()))?;
        Ok(match predicted {
            Predicted::Classes { scores, .. } if table.params.get("probabilities") == Some(&Value::Bool(true)) => {
                scores
                    .into_iter()
                    .map(|p| {
                        Value::Object(
                            model
                                .classes
                                .iter()
                                .map(|c| c.to_string())
                                .zip(p.into_iter().map(Value::from))
                                .collect(),
                        )
                    })
                    .collect()
            }
            Predicted::Classes { labels, .. } => json!(labels),
            Predicted::Values(values) => json!(values),
            Predicted::Clusters { clusters, .. } => json!(clusters),
        })
    }
}

weft_model_sdk::export_model!(Served);
