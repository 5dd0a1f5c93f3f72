-- Experiment tracking (the MLflow model): experiments and runs logged by
-- clients, with their params, tags and metric histories.

CREATE TABLE experiments (
    experiment_id      BIGINT PRIMARY KEY,
    name               TEXT NOT NULL UNIQUE,
    artifact_location  TEXT NOT NULL,
    lifecycle_stage    TEXT NOT NULL,
    creation_time      BIGINT NOT NULL,
    last_update_time   BIGINT NOT NULL
);
INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time)
VALUES (0, 'Default', 'mlflow-artifacts:/0', 'active', 0, 0);

CREATE TABLE experiment_tags (
    experiment_id  BIGINT NOT NULL REFERENCES experiments(experiment_id),
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    PRIMARY KEY (experiment_id, key)
);

CREATE TABLE tracking_runs (
    run_uuid         TEXT PRIMARY KEY,
    experiment_id    BIGINT NOT NULL REFERENCES experiments(experiment_id),
    name             TEXT NOT NULL,
    user_id          TEXT NOT NULL,
    status           TEXT NOT NULL,
    start_time       BIGINT NOT NULL,
    end_time         BIGINT,
    lifecycle_stage  TEXT NOT NULL,
    artifact_uri     TEXT NOT NULL
);
CREATE INDEX tracking_runs_by_experiment ON tracking_runs (experiment_id, start_time);

CREATE TABLE tracking_params (
    run_uuid  TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

CREATE TABLE tracking_tags (
    run_uuid  TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);

-- Every point; an exact duplicate (same key, value, timestamp, step) is
-- stored once. NaN is kept as is_nan = 1 (SQL has no NaN).
CREATE TABLE tracking_metrics (
    run_uuid   TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    key        TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    is_nan     BOOLEAN NOT NULL,
    timestamp  BIGINT NOT NULL,
    step       BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key, timestamp, step, value, is_nan)
);

-- The latest point of each metric (highest step, then timestamp, then
-- value), kept up to date on every write: what run data and search read.
CREATE TABLE tracking_latest_metrics (
    run_uuid   TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    key        TEXT NOT NULL,
    value      DOUBLE PRECISION NOT NULL,
    is_nan     BOOLEAN NOT NULL,
    timestamp  BIGINT NOT NULL,
    step       BIGINT NOT NULL,
    PRIMARY KEY (run_uuid, key)
);
