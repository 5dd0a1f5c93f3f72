-- MLflow traces (the v3 trace API): one row per trace of an experiment,
-- with its tags and request metadata. The spans themselves are the
-- trace's `traces.json`, which the client uploads to the artifact store
-- under `<experiment>/traces/<trace id>/artifacts/`.

CREATE TABLE traces (
    trace_id            TEXT PRIMARY KEY,
    experiment_id       BIGINT NOT NULL REFERENCES experiments(experiment_id),
    client_request_id   TEXT,
    request_time        BIGINT NOT NULL,
    execution_duration  BIGINT,
    state               TEXT NOT NULL,
    request_preview     TEXT,
    response_preview    TEXT
);
CREATE INDEX traces_by_experiment ON traces (experiment_id, request_time DESC, trace_id);

CREATE TABLE trace_tags (
    trace_id  TEXT NOT NULL REFERENCES traces(trace_id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);

CREATE TABLE trace_metadata (
    trace_id  TEXT NOT NULL REFERENCES traces(trace_id) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (trace_id, key)
);
