-- Stored on-the-fly transform results, for removing those not requested for a while.
-- Objects live under derivatives/{blob_id}/t/, so blob GC removes them with the blob.
CREATE TABLE transform_results (
    key            TEXT PRIMARY KEY,
    blob_id        TEXT NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
    size           BIGINT NOT NULL,
    created_at     BIGINT NOT NULL,
    last_access_at BIGINT NOT NULL
);
CREATE INDEX transform_results_access ON transform_results(last_access_at);
CREATE INDEX transform_results_blob ON transform_results(blob_id);

