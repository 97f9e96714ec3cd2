-- The social graph (issue 14): profiles, friend requests, friendships, one-way follows
-- and blocks. A friendship is kept as two rows (a→b and b→a) so "is b a friend of a"
-- and "a's friends" are each one primary-key range, and the feed joins one way.

CREATE TABLE profiles (
    user_id        TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    display_name   TEXT,
    bio            TEXT,
    -- A public or unlisted image item of the user's own, shown as the avatar.
    avatar_id      TEXT,
    -- Who may start a conversation with the user: `friends` or `anyone`.
    messages_from  TEXT NOT NULL DEFAULT 'friends',
    updated_at     BIGINT NOT NULL
);

CREATE TABLE friend_requests (
    id          TEXT PRIMARY KEY,
    from_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    to_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message     TEXT,
    created_at  BIGINT NOT NULL,
    UNIQUE (from_id, to_id)
);
CREATE INDEX friend_requests_to ON friend_requests (to_id, id);

CREATE TABLE friendships (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    friend_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE follows (
    follower_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followee_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id)
);
CREATE INDEX follows_followee ON follows (followee_id, follower_id);

CREATE TABLE blocks (
    blocker_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id, blocker_id);
