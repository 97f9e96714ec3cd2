-- Share links (issue 14): a secret slug that opens one item or one album to anyone who
-- has it, without an account, until it expires or is revoked.

CREATE TABLE share_links (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- `item` or `album`.
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    slug            TEXT NOT NULL UNIQUE,
    -- Argon2id (PHC string) when the link asks for a password.
    password_hash   TEXT,
    allow_download  BIGINT NOT NULL DEFAULT 0,
    show_metadata   BIGINT NOT NULL DEFAULT 1,
    expires_at      BIGINT,
    revoked_at      BIGINT,
    views           BIGINT NOT NULL DEFAULT 0,
    last_viewed_at  BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX share_links_owner ON share_links (owner_id, id);
CREATE INDEX share_links_target ON share_links (target_id);
