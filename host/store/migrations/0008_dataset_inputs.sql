-- Datasets that runs read (MLflow's runs/log-inputs): one row per dataset
-- of an experiment (name and digest), and which runs used it, with the
-- input's tags (e.g. mlflow.data.context) as a JSON list of [key, value].

CREATE TABLE tracking_datasets (
    dataset_id     TEXT PRIMARY KEY,
    experiment_id  BIGINT NOT NULL REFERENCES experiments(experiment_id),
    name           TEXT NOT NULL,
    digest         TEXT NOT NULL,
    source_type    TEXT NOT NULL,
    source         TEXT NOT NULL,
    schema         TEXT,
    profile        TEXT,
    UNIQUE (experiment_id, name, digest)
);

CREATE TABLE tracking_run_inputs (
    run_uuid    TEXT NOT NULL REFERENCES tracking_runs(run_uuid),
    dataset_id  TEXT NOT NULL REFERENCES tracking_datasets(dataset_id),
    position    BIGINT NOT NULL,
    tags        TEXT NOT NULL,
    PRIMARY KEY (run_uuid, dataset_id)
);
