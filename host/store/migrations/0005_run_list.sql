-- The runs list sorts by start time.
CREATE INDEX runs_by_started ON runs (started_at);

-- A metric's history in chart order, read from the index alone (charts of
-- 100,000 points, final values by the highest step).
DROP INDEX metrics_by_step_run;
CREATE INDEX metrics_history ON metrics (step_run_id, key, step, timestamp, value);
