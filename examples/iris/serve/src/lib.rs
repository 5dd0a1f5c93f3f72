//! The iris model server: reads a `SoftmaxModel` (the `train` step's
//! output) once, then answers each row of a request with its class name,
//! or with every class's probability when the request's params say
//! `{"probabilities": true}`.

use iris_model::SoftmaxModel;
use serde_json::{json, Value};
use weft_model_sdk::{Error, Model, Result, Table};

struct Iris(SoftmaxModel);

impl Model for Iris {
    fn load(bytes: &[u8]) -> Result<Self> {
        let model: SoftmaxModel =
            serde_json::from_slice(bytes).map_err(|e| Error::InvalidModel(format!("not an iris model: {e}")))?;
        let k = model.classes.len();
        let n = model.features.len();
        if k == 0
            || model.bias.len() != k
            || model.weights.len() != k
            || model.weights.iter().any(|w| w.len() != n)
            || model.mean.len() != n
            || model.std.len() != n
        {
            return Err(Error::InvalidModel("the model's shapes do not agree".into()));
        }
        Ok(Iris(model))
    }

    fn predict(&self, table: &Table) -> Result<Value> {
        let model = &self.0;
        let rows = table.numeric_rows(Some(&model.features))?;
        let probabilities = table.params.get("probabilities") == Some(&Value::Bool(true));
        Ok(rows
            .iter()
            .map(|row| {
                if probabilities {
                    let p = model.probabilities(row);
                    Value::Object(model.classes.iter().cloned().zip(p.into_iter().map(Value::from)).collect())
                } else {
                    json!(model.classes[model.predict(row)])
                }
            })
            .collect())
    }
}

weft_model_sdk::export_model!(Iris);
