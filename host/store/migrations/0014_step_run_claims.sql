-- The worker that claimed a step run (`weft step exec`): a token written
-- by the claim and required by the worker's record, so a worker whose
-- step run was taken back (its job was lost and the step handed out
-- again) cannot record over its successor.
ALTER TABLE step_runs ADD COLUMN claim TEXT;
