-- The inbox (issue 14): conversations between two or more users, their messages, and the
-- media items a message shares. A shared item is readable by the conversation's current
-- members while the message that shares it exists and its sender owns the item.

CREATE TABLE conversations (
    id               TEXT PRIMARY KEY,
    created_by       TEXT NOT NULL,
    title            TEXT,
    created_at       BIGINT NOT NULL,
    last_message_at  BIGINT NOT NULL
);

CREATE TABLE conversation_members (
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    user_id          TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at        BIGINT NOT NULL,
    -- The newest message id the member has read ('' before any).
    read_up_to       TEXT NOT NULL DEFAULT '',
    muted            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX conversation_members_user ON conversation_members (user_id, conversation_id);

CREATE TABLE messages (
    id               TEXT PRIMARY KEY,
    conversation_id  TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    sender_id        TEXT NOT NULL,
    body             TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
CREATE INDEX messages_sender ON messages (sender_id);

CREATE TABLE message_items (
    message_id       TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    media_id         TEXT NOT NULL REFERENCES media(id) ON DELETE CASCADE,
    conversation_id  TEXT NOT NULL,
    sender_id        TEXT NOT NULL,
    position         BIGINT NOT NULL,
    PRIMARY KEY (message_id, media_id)
);
CREATE INDEX message_items_media ON message_items (media_id, conversation_id);
