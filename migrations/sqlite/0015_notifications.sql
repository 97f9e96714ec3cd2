-- Notifications (issue 14): what the social subscriber made of events for their
-- recipient, and each user's channel per notification type.

CREATE TABLE notifications (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- `friend.requested`, `friend.accepted`, `user.followed`, `album.invited`,
    -- `album.items_added`, `friend.uploaded`.
    type        TEXT NOT NULL,
    -- Who caused it, when a user did.
    actor_id    TEXT,
    -- The request, album or item it is about.
    subject_id  TEXT NOT NULL,
    -- The event's data, as the API shows it.
    data        TEXT NOT NULL,
    -- The outbox event it came from: a redelivered event makes no second row.
    event_id    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    read_at     BIGINT,
    UNIQUE (user_id, event_id)
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, read_at);

CREATE TABLE notification_settings (
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type        TEXT NOT NULL,
    -- `in_app` (kept and shown; also sent to webhooks), `webhook` (sent to webhooks
    -- only), `none`.
    channel     TEXT NOT NULL,
    PRIMARY KEY (user_id, type)
);
