-- Comments and likes (issue 14) on items and albums, and the targets whose owner turned
-- comments off. A target is `item` or `album` with its id; rows go with their author.

CREATE TABLE comments (
    id           TEXT PRIMARY KEY,
    target_kind  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    author_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX comments_target ON comments (target_id, id);

CREATE TABLE likes (
    target_kind  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (target_id, user_id)
);

CREATE TABLE comments_off (
    target_id    TEXT PRIMARY KEY,
    target_kind  TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
