-- The answers a run was resumed with, kept with the step that took them, so that a replay
-- can resume the run the same way. NULL for every other step.
ALTER TABLE steps ADD COLUMN answers jsonb;
