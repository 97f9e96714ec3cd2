-- Webhooks (issue 10): endpoints, one delivery per event and endpoint, and the attempts
-- of each delivery.

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY,
    owner_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url             TEXT NOT NULL,
    description     TEXT,
    -- JSON list of types or families (`media.*`); empty: every type.
    event_types     TEXT NOT NULL DEFAULT '[]',
    -- Administrators' endpoints only: every user's events.
    all_users       BIGINT NOT NULL DEFAULT 0,
    enabled         BIGINT NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    -- `whsec_…`; kept to sign with, never shown after creation.
    secret          TEXT NOT NULL,
    -- The secret before the last rotation, signing too until `previous_until`.
    previous_secret TEXT,
    previous_until  BIGINT,
    -- When deliveries began failing without a success since (null: healthy).
    failing_since   BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhooks_owner ON webhooks (owner_id, id);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    -- The event delivered; null for pings.
    event_id        BIGINT,
    event_type      TEXT NOT NULL,
    -- `webhook-id`: the same for every attempt, for receivers to dedupe on.
    message_id      TEXT NOT NULL,
    -- The exact body signed and sent.
    body            TEXT NOT NULL,
    -- pending, succeeded or failed.
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    retry_until     BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

CREATE TABLE webhook_attempts (
    id               TEXT PRIMARY KEY,
    delivery_id      TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempted_at     BIGINT NOT NULL,
    status_code      BIGINT,
    latency_ms       BIGINT NOT NULL,
    -- The first 1 KiB of the answer.
    response_excerpt TEXT,
    error            TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempted_at);
