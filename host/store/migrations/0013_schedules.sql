-- Runs started by something other than `weft run`: a registered pipeline
-- (its weft.toml with every component and external input pinned by
-- digest), started through the API or by a cron schedule.

-- `weft pipeline register`: one version per registration; a triggered run
-- uses the newest.
CREATE TABLE pipeline_definitions (
    id           TEXT PRIMARY KEY,
    pipeline_id  TEXT NOT NULL REFERENCES pipelines(id),
    version      BIGINT NOT NULL,
    -- the weft.toml text as registered
    manifest     TEXT NOT NULL,
    -- JSON: {"components": {step: digest}, "inputs": {name: {"digest", "kind"}}}
    pins         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (pipeline_id, version)
);

CREATE TABLE schedules (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    pipeline_id    TEXT NOT NULL REFERENCES pipelines(id),
    -- cron expression, 5 fields or 6 with seconds first, UTC
    cron           TEXT NOT NULL,
    -- JSON object {"step.param": value} applied on top of the definition
    params         TEXT NOT NULL,
    -- what a server does with the times it missed while down: skip or catch-up
    missed         TEXT NOT NULL,
    paused         BOOLEAN NOT NULL,
    -- the next due time (ms); a server owns a due time by moving this
    -- forward with a conditional UPDATE, so two servers never both fire it
    next_due_at    BIGINT NOT NULL,
    created_at     BIGINT NOT NULL
);

-- What a schedule fired (or skipped): one row per due time, never two.
CREATE TABLE schedule_firings (
    id           TEXT PRIMARY KEY,
    schedule_id  TEXT NOT NULL REFERENCES schedules(id) ON DELETE CASCADE,
    due_at       BIGINT NOT NULL,
    fired_at     BIGINT NOT NULL,
    -- fired, caught-up (a missed time run late), skipped (missed times
    -- not run, per the policy), failed (the run could not start)
    outcome      TEXT NOT NULL,
    run_id       TEXT REFERENCES runs(id),
    -- how many due times this row stands for (skipped ones), and why it failed
    missed       BIGINT NOT NULL,
    error        TEXT,
    host         TEXT,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX schedule_firings_by_schedule ON schedule_firings (schedule_id, fired_at);
