-- Durable runs: graph versions, threads, runs, and each thread's append-only step log.
--
-- A thread's state is never stored whole at every step. Each step appends one row to `steps`
-- with what its nodes wrote; every few steps a row in `snapshots` holds the state's fields,
-- except those with the `append` reducer, whose items are stored once each in `items`. So
-- the bytes a step writes do not grow with the conversation, and the latest state is read
-- from one snapshot, the steps after it, and the items.

-- The exact files a graph ran with, by their SHA-256: older versions stay runnable.
CREATE TABLE graph_versions (
    id          text PRIMARY KEY,
    graph       text NOT NULL,
    files       jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX graph_versions_by_graph ON graph_versions (graph, created_at DESC);

-- A conversation: a state that runs of one graph version build up.
CREATE TABLE threads (
    id             uuid PRIMARY KEY,
    graph          text NOT NULL,
    graph_version  text NOT NULL REFERENCES graph_versions (id),
    metadata       jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX threads_by_update ON threads (updated_at DESC);

-- One run of a thread's graph. A running run is held by a worker until `lease_expires`;
-- `fence` grows with every new holder, and every commit checks it, so a worker that lost
-- its lease cannot write.
CREATE TABLE runs (
    id             uuid PRIMARY KEY,
    thread_id      uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    status         text NOT NULL CHECK (status IN ('pending', 'running', 'interrupted', 'succeeded', 'failed', 'cancelled')),
    input          jsonb NOT NULL DEFAULT '{}',
    context        jsonb NOT NULL DEFAULT '{}',
    error          text,
    lease_owner    text,
    lease_expires  timestamptz,
    fence          bigint NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_by_thread ON runs (thread_id, created_at);
-- At most one run per thread is running or waiting for an answer; pending runs queue.
CREATE UNIQUE INDEX runs_one_open_per_thread ON runs (thread_id) WHERE status IN ('running', 'interrupted');
CREATE INDEX runs_expired_leases ON runs (lease_expires) WHERE status = 'running';
CREATE INDEX runs_pending ON runs (created_at) WHERE status = 'pending';

-- The step log. `seq` numbers a thread's steps across its runs; `step` is the step within the
-- run (0 is the run's input). `writes` holds what each node wrote:
-- [{"node": "classify", "field": "route", "value": "chat"}, …]. `position` is where the run
-- stands after the step: the next nodes, joins waiting, visit counts, and, when it paused,
-- the finished results and what waits for an answer.
CREATE TABLE steps (
    thread_id   uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    run_id      uuid NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        integer NOT NULL,
    nodes       text[] NOT NULL,
    writes      jsonb NOT NULL,
    position    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (thread_id, seq)
);
CREATE INDEX steps_by_run ON steps (run_id, step);

-- The state after step `seq`, but for `append` fields, which hold their lengths instead.
CREATE TABLE snapshots (
    thread_id  uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq        bigint NOT NULL,
    state      jsonb NOT NULL,
    lengths    jsonb NOT NULL,
    PRIMARY KEY (thread_id, seq)
);

-- The items of `append` fields, each stored once, in order.
CREATE TABLE items (
    thread_id  uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    field      text NOT NULL,
    idx        integer NOT NULL,
    seq        bigint NOT NULL,
    value      jsonb NOT NULL,
    PRIMARY KEY (thread_id, field, idx)
);

-- Every model call, with what was sent and what came back, recorded with its step.
CREATE TABLE llm_calls (
    thread_id          uuid NOT NULL REFERENCES threads (id) ON DELETE CASCADE,
    seq                bigint NOT NULL,
    ordinal            integer NOT NULL,
    node               text NOT NULL,
    provider           text NOT NULL,
    model              text NOT NULL,
    request            jsonb NOT NULL,
    response           text NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    latency_ms         bigint NOT NULL,
    PRIMARY KEY (thread_id, seq, ordinal)
);
