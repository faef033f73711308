-- The engine thread of each graph a conversation uses besides the assistant's own (the goal
-- maker's, …), and the run of it that waits for the user's confirmation, if any.
CREATE TABLE conversation_threads (
    user_id         bigint NOT NULL,
    conversation_id bigint NOT NULL,
    graph           text NOT NULL,
    thread_id       uuid NOT NULL,
    -- The run waiting for the user's answer, and the interrupt it waits at.
    pending_run     uuid,
    pending_interrupt text,
    PRIMARY KEY (conversation_id, graph),
    CONSTRAINT conversation_threads_conversation FOREIGN KEY (user_id, conversation_id)
        REFERENCES conversations (user_id, id) ON DELETE CASCADE
);

ALTER TABLE conversation_threads ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
    EXECUTE format('CREATE POLICY application ON conversation_threads TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;
CREATE POLICY sandbox_own_rows ON conversation_threads FOR SELECT TO finch_sql
    USING (user_id = current_setting('finch.user_id')::bigint);

SELECT sandbox_assert();
