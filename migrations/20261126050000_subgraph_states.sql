-- The state each subgraph run of a step ended with ([{"node": "ask", "state": {...}}]), so
-- that a thread can be read inside its subgraphs at every step (a paused subgraph's state is
-- in `position` already). NULL when the step ran no subgraph.
ALTER TABLE steps ADD COLUMN subgraphs jsonb;
