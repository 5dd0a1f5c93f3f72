-- Every call weft made to a plugin for a run: hooks (alerters), gates
-- (data validators), publishing (tracker sinks); with what the host
-- refused the plugin (HTTP requests to hosts it was not granted).
CREATE TABLE plugin_calls (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id),
    plugin       TEXT NOT NULL,
    -- e.g. on_failure, step train on_success, gate inputs.iris, publish
    purpose      TEXT NOT NULL,
    -- ok, failed, passed, rejected
    outcome      TEXT NOT NULL,
    message      TEXT,
    -- JSON array of refused requests
    refused      TEXT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    at           BIGINT NOT NULL
);
CREATE INDEX plugin_calls_by_run ON plugin_calls (run_id);
