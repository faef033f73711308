-- What the nodes inside subgraphs and maps that reach outside the graph (`sql`, the `now`
-- tool) wrote, kept with their top-level step ([{"node": "sub/fetch", "writes": [...]}]), so
-- that a replay can give them back instead of running them. NULL when there were none;
-- top-level nodes' writes are in `writes` already.
ALTER TABLE steps ADD COLUMN effects jsonb;
