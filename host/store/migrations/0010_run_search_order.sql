-- Runs are searched in the order (start time newest first, then id): with
-- that whole order in the index, a search walks the runs of an experiment
-- in order and stops at its page size instead of filtering and sorting
-- every run. Replaces the index on (experiment_id, start_time).

DROP INDEX tracking_runs_by_experiment;
CREATE INDEX tracking_runs_by_experiment ON tracking_runs (experiment_id, start_time DESC, run_uuid);
