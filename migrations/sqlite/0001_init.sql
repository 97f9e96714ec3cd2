-- Foundation schema. Timestamps are Unix epoch milliseconds (BIGINT) and ids are
-- UUIDv7 text, so the same SQL and Rust types serve SQLite and PostgreSQL.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT,
    password_hash TEXT NOT NULL,
    is_admin      BIGINT NOT NULL DEFAULT 0,
    created_at    BIGINT NOT NULL
);

-- One row per distinct content (SHA-256). Objects are keyed by the blob id, not the
-- hash, so a blob re-created after garbage collection never shares a key with the
-- one being deleted.
CREATE TABLE blobs (
    id           TEXT PRIMARY KEY,
    sha256       TEXT NOT NULL UNIQUE,
    size         BIGINT NOT NULL,
    format       TEXT NOT NULL,
    width        BIGINT NOT NULL,
    height       BIGINT NOT NULL,
    frames       BIGINT NOT NULL,
    status       TEXT NOT NULL,
    error        TEXT,
    phash        BIGINT,
    created_at   BIGINT NOT NULL,
    processed_at BIGINT
);

CREATE TABLE variants (
    blob_id TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    preset  TEXT NOT NULL,
    format  TEXT NOT NULL,
    width   BIGINT NOT NULL,
    height  BIGINT NOT NULL,
    size    BIGINT NOT NULL,
    etag    TEXT NOT NULL,
    PRIMARY KEY (blob_id, preset, format)
);

CREATE TABLE media (
    id          TEXT PRIMARY KEY,
    owner_id    TEXT NOT NULL REFERENCES users(id),
    blob_id     TEXT NOT NULL REFERENCES blobs(id),
    title       TEXT,
    description TEXT,
    tags        TEXT NOT NULL DEFAULT '[]',
    visibility  TEXT NOT NULL DEFAULT 'private',
    deduplicated BIGINT NOT NULL DEFAULT 0,
    -- The processing job this item's upload started (null when its bytes were
    -- already stored): job visibility follows the item, not the shared blob.
    job_id      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX media_owner_id ON media(owner_id, id);
CREATE INDEX media_blob_id ON media(blob_id);

-- The durable job queue (crates/queue).
CREATE TABLE jobs (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    priority     BIGINT NOT NULL DEFAULT 0,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at       BIGINT NOT NULL,
    lease_until  BIGINT,
    locked_by    TEXT,
    -- Fresh random token per claim: the fencing token that every worker write must
    -- present, so a worker whose lease expired (or was released) can no longer
    -- touch the job even if the same worker id claims it again.
    lease_token  TEXT,
    unique_key   TEXT,
    last_error   TEXT,
    progress     BIGINT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    finished_at  BIGINT
);
CREATE UNIQUE INDEX jobs_unique_active ON jobs(unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('queued', 'running');
-- Periodic jobs (unique_key 'periodic:{name}:{slot}') stay unique in every state, so a
-- slot that already ran is never enqueued again by a second scheduler node.
CREATE UNIQUE INDEX jobs_unique_periodic ON jobs(unique_key)
    WHERE substr(unique_key, 1, 9) = 'periodic:';
CREATE INDEX jobs_claim ON jobs(state, priority, run_at);
