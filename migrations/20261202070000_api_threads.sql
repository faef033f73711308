-- Threads created over the HTTP API (`/api/threads`), and whose they are: every route on a
-- thread finds it through this table with the caller's id, so another user's thread is 404.
-- (The assistant's own threads are in `conversations` and `conversation_threads`.)
CREATE TABLE api_threads (
    thread_id  uuid PRIMARY KEY REFERENCES threads (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_threads_by_user ON api_threads (user_id, thread_id DESC);

ALTER TABLE api_threads ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY application ON api_threads TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;
CREATE POLICY sandbox_own_rows ON api_threads FOR SELECT TO finch_sql
    USING (user_id = current_setting('finch.user_id')::bigint);

SELECT sandbox_assert();
