-- Hermetic steps: what fed each step's sandbox, where a step run came
-- from, re-executions that checked it, and cache hits with lineage of their
-- own.

-- The sandbox a step run was given (weft_pipeline::StepSpec as JSON: the
-- component digest, params, inputs, outputs, grants, determinism, limits);
-- its hash is the cache key. `determinism` is 'virtual' or 'real'.
ALTER TABLE step_runs ADD COLUMN sandbox TEXT;
ALTER TABLE step_runs ADD COLUMN determinism TEXT;
-- 'local' (run by this store's users) or 'imported' (received through the
-- sync API): an imported step run serves no cache hit until it is verified.
ALTER TABLE step_runs ADD COLUMN origin TEXT NOT NULL DEFAULT 'local';

-- `weft verify`: a step run executed again from its archived component and
-- recorded inputs, and whether every output came out the same.
CREATE TABLE verifications (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT NOT NULL REFERENCES step_runs(id),
    -- match, mismatch, or error (could not re-execute)
    outcome      TEXT NOT NULL,
    -- JSON: {"message": ..., "outputs": [{"name", "recorded", "now"}]}
    detail       TEXT NOT NULL,
    verified_at  BIGINT NOT NULL,
    host         TEXT
);
CREATE INDEX verifications_by_step_run ON verifications (step_run_id, outcome);
CREATE INDEX verifications_by_run ON verifications (run_id);

-- A cache hit used to borrow the lineage of the step run it was served
-- from; now it has links of its own. Give the old ones theirs: the same
-- artifacts their originals read and wrote.
INSERT INTO step_run_inputs (step_run_id, name, artifact_id)
SELECT s.id, l.name, l.artifact_id FROM step_runs s JOIN step_run_inputs l ON l.step_run_id = s.cached_from
WHERE s.cached_from IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM step_run_inputs x WHERE x.step_run_id = s.id);
INSERT INTO step_run_outputs (step_run_id, name, artifact_id)
SELECT s.id, l.name, l.artifact_id FROM step_runs s JOIN step_run_outputs l ON l.step_run_id = s.cached_from
WHERE s.cached_from IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM step_run_outputs x WHERE x.step_run_id = s.id);
