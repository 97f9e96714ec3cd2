-- Albums (issue 14): an owner's collection of items with members in roles. Adding an
-- item changes nothing of the item; the album grants its readers the items that their
-- owners put in it (`added_by` = the item's owner), while they are in it.

CREATE TABLE albums (
    id           TEXT PRIMARY KEY,
    owner_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title        TEXT NOT NULL,
    description  TEXT,
    -- An item of the album shown as its cover.
    cover_id     TEXT,
    -- `added_desc` (newest first) or `added_asc`.
    sort         TEXT NOT NULL DEFAULT 'added_desc',
    -- `private` (members), `friends` (also the owner's friends), `unlisted`, `public`.
    visibility   TEXT NOT NULL DEFAULT 'private',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE INDEX albums_owner ON albums (owner_id, id);

CREATE TABLE album_members (
    album_id     TEXT NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- `viewer`, `contributor` (adds own items) or `editor` (adds and removes any).
    role         TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (album_id, user_id)
);
CREATE INDEX album_members_user ON album_members (user_id, album_id);

CREATE TABLE album_items (
    album_id     TEXT NOT NULL REFERENCES albums(id) ON DELETE CASCADE,
    media_id     TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    added_by     TEXT NOT NULL,
    added_at     BIGINT NOT NULL,
    PRIMARY KEY (album_id, media_id)
);
CREATE INDEX album_items_media ON album_items (media_id, album_id);
CREATE INDEX album_items_order ON album_items (album_id, added_at, media_id);
