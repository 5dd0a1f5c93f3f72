-- Metrics logged against a logged model (MLflow 3: a metric with a
-- model_id, optionally the dataset it was measured on).

CREATE TABLE logged_model_metrics (
    model_id        TEXT NOT NULL REFERENCES logged_models(model_id),
    key             TEXT NOT NULL,
    value           DOUBLE PRECISION NOT NULL,
    is_nan          BOOLEAN NOT NULL,
    timestamp       BIGINT NOT NULL,
    step            BIGINT NOT NULL,
    run_uuid        TEXT NOT NULL,
    dataset_name    TEXT NOT NULL,
    dataset_digest  TEXT NOT NULL,
    PRIMARY KEY (model_id, key, timestamp, step, run_uuid, dataset_name, dataset_digest)
);
