-- Logged models (MLflow 3): a model logged from a run or on its own, with
-- its params and tags; its files live under its artifact location.

CREATE TABLE logged_models (
    model_id                   TEXT PRIMARY KEY,
    experiment_id              BIGINT NOT NULL REFERENCES experiments(experiment_id),
    name                       TEXT NOT NULL,
    artifact_location          TEXT NOT NULL,
    creation_timestamp_ms      BIGINT NOT NULL,
    last_updated_timestamp_ms  BIGINT NOT NULL,
    model_type                 TEXT,
    source_run_id              TEXT,
    status                     TEXT NOT NULL,
    status_message             TEXT,
    lifecycle_stage            TEXT NOT NULL
);
CREATE INDEX logged_models_by_experiment ON logged_models (experiment_id, creation_timestamp_ms);

CREATE TABLE logged_model_params (
    model_id  TEXT NOT NULL REFERENCES logged_models(model_id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

CREATE TABLE logged_model_tags (
    model_id  TEXT NOT NULL REFERENCES logged_models(model_id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (model_id, key)
);

-- Models a run produced (runs/outputs), at a step.
CREATE TABLE run_model_outputs (
    run_uuid  TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    model_id  TEXT NOT NULL REFERENCES logged_models(model_id),
    step      BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, model_id)
);
