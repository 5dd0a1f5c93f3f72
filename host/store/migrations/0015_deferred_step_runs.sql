-- A step run handed to a worker before its upstream step runs finished
-- (a Slurm job held by `--dependency=afterok`): what the worker needs to
-- complete its sandbox spec from their outputs (JSON, written by
-- weft-pipeline). Its sandbox, cache key and inputs are recorded by the
-- worker that claims it.
ALTER TABLE step_runs ADD COLUMN deferred TEXT;
