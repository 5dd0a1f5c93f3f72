-- One tracking model: what pipeline steps log (params, tags, metrics) is
-- kept once, in the tracking tables the MLflow API serves, under the step
-- run's own run (its run_uuid is the step run's id); the ledger's copies
-- (params, tags, metrics) go. Until now the tracking rows were a view the
-- store wrote beside the ledger's; everything in the ledger's tables is
-- folded in first, so nothing is lost:
--   - a param a step logged wins over the step's configured param of the
--     same key (which stays in step_runs.params);
--   - a point logged without a step index keeps that fact (has_step).

ALTER TABLE tracking_metrics ADD COLUMN has_step BOOLEAN NOT NULL DEFAULT TRUE;

-- Points logged without a step index, in the step run that logged them and
-- in every cache hit that shows them.
UPDATE tracking_metrics SET has_step = FALSE
WHERE step = 0 AND EXISTS (
    SELECT 1 FROM step_runs s JOIN metrics m ON m.step_run_id = COALESCE(s.cached_from, s.id)
    WHERE s.id = tracking_metrics.run_uuid AND m.key = tracking_metrics.key
      AND m.timestamp = tracking_metrics.timestamp AND m.step IS NULL
);

-- Whatever the view lacks (it has always been written in the same
-- transactions, so normally nothing).
INSERT INTO tracking_params (run_uuid, key, value)
SELECT s.id, p.key, p.value FROM step_runs s JOIN params p ON p.step_run_id = COALESCE(s.cached_from, s.id)
WHERE EXISTS (SELECT 1 FROM tracking_runs r WHERE r.run_uuid = s.id)
ON CONFLICT (run_uuid, key) DO UPDATE SET value = excluded.value;

INSERT INTO tracking_tags (run_uuid, key, value)
SELECT s.id, t.key, t.value FROM step_runs s JOIN tags t ON t.step_run_id = COALESCE(s.cached_from, s.id)
WHERE EXISTS (SELECT 1 FROM tracking_runs r WHERE r.run_uuid = s.id)
ON CONFLICT (run_uuid, key) DO NOTHING;

INSERT INTO tracking_metrics (run_uuid, key, value, is_nan, timestamp, step, has_step)
SELECT s.id, m.key, m.value, FALSE, m.timestamp, COALESCE(m.step, 0), m.step IS NOT NULL
FROM step_runs s JOIN metrics m ON m.step_run_id = COALESCE(s.cached_from, s.id)
WHERE EXISTS (SELECT 1 FROM tracking_runs r WHERE r.run_uuid = s.id)
ON CONFLICT (run_uuid, key, timestamp, step, value, is_nan) DO NOTHING;

DROP TABLE params;
DROP TABLE metrics;
DROP TABLE tags;
