-- The runs list sorts by start time.
CREATE INDEX runs_by_started ON runs (started_at);
