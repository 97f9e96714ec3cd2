-- The service registry: every process registers itself, heartbeats, and marks itself
-- draining on SIGTERM and stopped once it has drained. Times are epoch milliseconds
-- from the database's clock, so nodes with skewed clocks agree on who is late.
CREATE TABLE nodes (
    id           TEXT PRIMARY KEY,
    roles        TEXT NOT NULL,
    version      TEXT NOT NULL,
    address      TEXT NOT NULL,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    state        TEXT NOT NULL
);
CREATE INDEX nodes_by_heartbeat ON nodes (heartbeat_at);
