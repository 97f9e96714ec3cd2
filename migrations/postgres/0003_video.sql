-- Video and audio (issue 4). A blob is an image, a video or an audio file; its
-- streams and files are published rows that appear only once every object they name
-- is stored, so a half-written rendition is never served.

ALTER TABLE blobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'image';
-- Length of a video or audio blob, in milliseconds.
ALTER TABLE blobs ADD COLUMN duration_ms BIGINT;
-- What ffprobe found (codecs, frame rate, rotation), as JSON.
ALTER TABLE blobs ADD COLUMN media_info TEXT;
-- The watermark burned into this blob's derivatives, as JSON (null: none). Uploads
-- that ask for a watermark get their own blob (the dedup key includes it).
ALTER TABLE blobs ADD COLUMN watermark TEXT;
-- The content hash when `sha256` holds such a watermarked dedup key instead.
ALTER TABLE blobs ADD COLUMN content_sha256 TEXT;
-- The owner's default watermark for video renditions, as JSON (null: none).
ALTER TABLE users ADD COLUMN watermark TEXT;

-- One HLS rendition of a blob: its playlist and segments live under `prefix`.
CREATE TABLE renditions (
    blob_id           TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    prefix            TEXT NOT NULL,
    width             BIGINT NOT NULL,
    height            BIGINT NOT NULL,
    bandwidth         BIGINT NOT NULL,
    average_bandwidth BIGINT NOT NULL,
    codecs            TEXT NOT NULL,
    frame_rate        TEXT,
    -- JSON object: file name → size in bytes, for every object under `prefix`.
    files             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    PRIMARY KEY (blob_id, name)
);

-- Other published files of a blob: the storyboard sprite, the progressive MP4, the
-- extracted audio. `meta` holds what a file needs to be described (storyboard grid).
CREATE TABLE blob_files (
    blob_id    TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    object_key TEXT NOT NULL,
    mime       TEXT NOT NULL,
    size       BIGINT NOT NULL,
    etag       TEXT NOT NULL,
    meta       TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blob_id, name)
);

ALTER TABLE media ADD COLUMN views BIGINT NOT NULL DEFAULT 0;

-- Where each signed-in user stopped watching an item.
CREATE TABLE playback_positions (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    media_id    TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    position_ms BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, media_id)
);

-- Play time per viewer (a user id or a hash of address and agent), to count a view
-- once per viewer per hour after a few seconds of real play.
CREATE TABLE view_sessions (
    media_id         TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    viewer           TEXT NOT NULL,
    last_position_ms BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    watched_ms       BIGINT NOT NULL,
    counted_at       BIGINT,
    PRIMARY KEY (media_id, viewer)
);
