-- weft metadata, version 1. Portable SQL: runs on SQLite and PostgreSQL.
-- Times are milliseconds since the Unix epoch; ids are UUIDv7 strings.

CREATE TABLE pipelines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id),
    number       BIGINT NOT NULL,
    status       TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    ended_at     BIGINT,
    manifest     TEXT NOT NULL,
    error        TEXT,
    host         TEXT,
    pid          BIGINT,
    UNIQUE (pipeline_id, number)
);
CREATE INDEX runs_by_status ON runs (status);

CREATE TABLE step_runs (
    id                TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES runs(id),
    step_name         TEXT NOT NULL,
    status            TEXT NOT NULL,
    params            TEXT NOT NULL,
    started_at        BIGINT,
    ended_at          BIGINT,
    component_digest  TEXT,
    cache_key         TEXT,
    cached_from       TEXT REFERENCES step_runs(id),
    attempts          BIGINT NOT NULL DEFAULT 0,
    logs              TEXT,
    error             TEXT,
    UNIQUE (run_id, step_name)
);
CREATE INDEX step_runs_by_cache_key ON step_runs (cache_key, status);

CREATE TABLE artifacts (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL,
    version               BIGINT NOT NULL,
    digest                TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    media_type            TEXT NOT NULL,
    size                  BIGINT NOT NULL,
    producer_step_run_id  TEXT REFERENCES step_runs(id),
    source_uri            TEXT,
    created_at            BIGINT NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX artifacts_by_digest ON artifacts (digest);
CREATE INDEX artifacts_by_producer ON artifacts (producer_step_run_id);

-- Lineage edges: which artifacts a step run read and wrote.
CREATE TABLE step_run_inputs (
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    name         TEXT NOT NULL,
    artifact_id  TEXT NOT NULL REFERENCES artifacts(id),
    PRIMARY KEY (step_run_id, name)
);
CREATE INDEX step_run_inputs_by_artifact ON step_run_inputs (artifact_id);

CREATE TABLE step_run_outputs (
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    name         TEXT NOT NULL,
    artifact_id  TEXT NOT NULL REFERENCES artifacts(id),
    PRIMARY KEY (step_run_id, name)
);

-- External data a run ingested.
CREATE TABLE run_inputs (
    run_id       TEXT NOT NULL REFERENCES runs(id),
    name         TEXT NOT NULL,
    artifact_id  TEXT NOT NULL REFERENCES artifacts(id),
    PRIMARY KEY (run_id, name)
);

-- What steps logged through the tracker.
CREATE TABLE params (
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (step_run_id, key)
);

CREATE TABLE metrics (
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    key          TEXT NOT NULL,
    value        DOUBLE PRECISION NOT NULL,
    step         BIGINT,
    timestamp    BIGINT NOT NULL
);
CREATE INDEX metrics_by_step_run ON metrics (step_run_id, key);
CREATE INDEX metrics_by_run ON metrics (run_id, key);

CREATE TABLE tags (
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (step_run_id, key)
);

CREATE TABLE metadata (
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    key          TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (step_run_id, key)
);
