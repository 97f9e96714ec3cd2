-- Resumable (tus) uploads. `received` is the durable offset: bytes up to it are in the
-- part file (local store) or in the recorded multipart parts plus the tail object (S3).
-- `concat` is none | partial | final; a final upload lists its partial uploads in
-- `parts`. `state` is receiving | done | expired (an expired row answers 410 for a
-- week, then goes). `kinds` (JSON) limits what the item may be (a direct upload's). `lock_token`/`lock_until` are the lease of the PATCH writing to it
-- (any node), `lock_wanted` asks its holder to let go.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL,
    concat       TEXT NOT NULL,
    length       BIGINT,
    received     BIGINT NOT NULL DEFAULT 0,
    metadata     TEXT NOT NULL,
    raw_metadata TEXT,
    parts        TEXT,
    state        TEXT NOT NULL,
    blob_id      TEXT,
    multipart_id TEXT,
    etags        TEXT NOT NULL DEFAULT '[]',
    tail         BIGINT NOT NULL DEFAULT 0,
    item_id      TEXT,
    kinds        TEXT,
    lock_token   TEXT,
    lock_until   BIGINT,
    lock_wanted  BIGINT NOT NULL DEFAULT 0,
    expires_at   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX uploads_by_expiry ON uploads (state, expires_at);
CREATE INDEX uploads_by_owner ON uploads (owner_id, state);

-- Blob ids promised to an object being assembled in the store (a resumable upload's
-- multipart target): the orphan sweep leaves their originals alone until the blob row
-- exists or the reservation is dropped.
CREATE TABLE blob_reservations (
    blob_id    TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

-- One-time upload URLs an app hands to a browser (Mux and Cloudflare style): the item's
-- owner and fields, a size limit and the allowed kinds are fixed here; the URL carries a
-- secret whose SHA-256 is `token_hash`. `state` is waiting | uploading | done.
CREATE TABLE direct_uploads (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    metadata   TEXT NOT NULL,
    max_bytes  BIGINT NOT NULL,
    kinds      TEXT,
    state      TEXT NOT NULL,
    upload_id  TEXT,
    item_id    TEXT,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX direct_uploads_by_owner ON direct_uploads (owner_id, created_at);

-- Imports by URL: fetched by an `import_url` job through the SSRF guard, then made an
-- item as an upload is. `state` is queued | done | failed; `error` is the API error
-- body of a failure.
CREATE TABLE imports (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL,
    url        TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    state      TEXT NOT NULL,
    error      TEXT,
    item_id    TEXT,
    job_id     TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX imports_by_owner ON imports (owner_id, created_at);
