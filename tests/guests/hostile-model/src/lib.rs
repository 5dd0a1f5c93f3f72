//! A model server that misbehaves on request, for the serving tests: the
//! request's params say what to do (`{"attack": "memory" | "spin" |
//! "panic"}`); without one it answers each row with the model's bytes'
//! length plus the row's first value.

use serde_json::Value;
use weft_model_sdk::{Model, Result, Table};

struct Hostile {
    size: usize,
}

impl Model for Hostile {
    fn load(bytes: &[u8]) -> Result<Self> {
        Ok(Hostile { size: bytes.len() })
    }

    fn predict(&self, table: &Table) -> Result<Value> {
        match table.params.get("attack").and_then(Value::as_str) {
            Some("memory") => {
                // Grows until the host refuses: 64 MiB at a time, touched.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 64 << 20]);
                    if hoard.len() > 1 << 20 {
                        break;
                    }
                }
                Ok(Value::from(hoard.len()))
            }
            Some("spin") => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            Some("panic") => panic!("asked to panic"),
            _ => {
                let rows = table.numeric_rows(None)?;
                Ok(rows
                    .iter()
                    .map(|r| Value::from(self.size as f64 + r.first().copied().unwrap_or(0.0)))
                    .collect())
            }
        }
    }
}

weft_model_sdk::export_model!(Hostile);
