-- The graph version each run ran, so that a thread moved to a newer version by
-- `finch thread migrate` still replays each earlier run with the version it had. Set when the
-- run starts (a queued run, when a worker starts it); NULL for runs from before this column,
-- which replays take to have run the thread's current version.
ALTER TABLE runs ADD COLUMN graph_version text REFERENCES graph_versions (id);
