-- A leaner log: fewer rows, index entries and checks per step, so a turn costs less.
--
-- A step's model calls move into its own row (`steps.calls`, NULL when it made none), and
-- `llm_calls` becomes a view over them with the same columns, so queries keep working. The
-- indexes nothing reads by are dropped: steps are read by thread, and threads are listed by a
-- scan (a deployment with millions of threads can add an index back). A thread's
-- `updated_at` now changes when a run starts on it, not again when it ends; and a run that
-- starts at once leaves `runs.input` empty, its input being its first log entry (step 0).
-- The log tables lose their foreign keys: every step is inserted by a statement that joins
-- its run (by id, thread and fence) first, so the checks only repeated that join, once per
-- row; pruning a thread deletes its log explicitly.

ALTER TABLE steps ADD COLUMN calls jsonb;

UPDATE steps s SET calls = c.calls
FROM (
    SELECT thread_id, seq,
           jsonb_agg(jsonb_build_object(
               'node', node, 'provider', provider, 'model', model, 'request', request,
               'response', response, 'prompt_tokens', prompt_tokens,
               'completion_tokens', completion_tokens, 'latency_ms', latency_ms) ORDER BY ordinal) AS calls
    FROM llm_calls GROUP BY thread_id, seq
) c
WHERE s.thread_id = c.thread_id AND s.seq = c.seq;

DROP TABLE llm_calls;

-- One row per model call: `ordinal` numbers the calls of a step from 0.
CREATE VIEW llm_calls AS
SELECT s.thread_id, s.seq, (c.ordinality - 1)::integer AS ordinal,
       c.call ->> 'node' AS node,
       c.call ->> 'provider' AS provider,
       c.call ->> 'model' AS model,
       c.call -> 'request' AS request,
       c.call ->> 'response' AS response,
       (c.call ->> 'prompt_tokens')::bigint AS prompt_tokens,
       (c.call ->> 'completion_tokens')::bigint AS completion_tokens,
       (c.call ->> 'latency_ms')::bigint AS latency_ms
FROM steps s
CROSS JOIN LATERAL jsonb_array_elements(s.calls) WITH ORDINALITY AS c(call, ordinality)
WHERE s.calls IS NOT NULL;

DROP INDEX steps_by_run;
DROP INDEX threads_by_update;

ALTER TABLE steps DROP CONSTRAINT steps_thread_id_fkey, DROP CONSTRAINT steps_run_id_fkey;
ALTER TABLE items DROP CONSTRAINT items_thread_id_fkey;
ALTER TABLE snapshots DROP CONSTRAINT snapshots_thread_id_fkey;
