-- The transactional outbox (issue 10): events written in the transaction of the change
-- that causes them, read in stream order by durable subscribers and the live feed.
-- Readers order by (tx, id) and only read events of transactions older than the oldest
-- one still running, so one that took a lower id but commits later is never skipped
-- (see crates/server/src/kernel/outbox/mod.rs).

CREATE TABLE events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx           BIGINT NOT NULL DEFAULT (CAST(CAST(pg_current_xact_id() AS TEXT) AS BIGINT)),
    type         TEXT NOT NULL,
    aggregate_id TEXT NOT NULL,
    -- The user it concerns (who may see it besides admins); null: admins only.
    user_id      TEXT,
    payload      TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX events_position ON events (tx, id);
CREATE INDEX events_user ON events (user_id, tx, id);
CREATE INDEX events_created_at ON events (created_at);

-- Wakes LISTENing readers once per committing transaction that wrote events.
CREATE FUNCTION framehouse_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('framehouse_events', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION framehouse_events_notify();

-- One row per durable subscriber: how far it got, and which node runs it.
CREATE TABLE event_cursors (
    subscriber  TEXT PRIMARY KEY,
    tx          BIGINT NOT NULL DEFAULT 0,
    event_id    BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT,
    updated_at  BIGINT NOT NULL
);

-- Storage usage is kept on the user row by the transactions that create and delete
-- items, so quotas are checked atomically and identity need not read media's tables.
ALTER TABLE users ADD COLUMN used_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN item_count BIGINT NOT NULL DEFAULT 0;
UPDATE users SET
    used_bytes = COALESCE((SELECT SUM(b.size) FROM media m JOIN blobs b ON b.id = m.blob_id
                           WHERE m.owner_id = users.id), 0),
    item_count = (SELECT COUNT(*) FROM media m WHERE m.owner_id = users.id);
-- A deleted account is disabled and tombstoned at once; its row goes with its last item.
ALTER TABLE users ADD COLUMN deleted_at BIGINT;

-- The owner's default watermark for video renditions belongs to the video domain.
CREATE TABLE video_watermarks (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    settings   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO video_watermarks (user_id, settings, updated_at)
    SELECT id, watermark, created_at FROM users WHERE watermark IS NOT NULL;
ALTER TABLE users DROP COLUMN watermark;
