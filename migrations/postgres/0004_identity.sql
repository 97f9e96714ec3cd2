-- Identity (issue 5): sessions with rotating refresh tokens, API keys, external
-- OpenID Connect identities, password resets, account state and the audit log.

ALTER TABLE users ADD COLUMN disabled_at BIGINT;
-- Bytes of originals the user may own; null means no limit.
ALTER TABLE users ADD COLUMN quota_bytes BIGINT;
ALTER TABLE users ADD COLUMN failed_logins BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until BIGINT;
-- Whether the email was confirmed by someone other than the registrant (an OpenID
-- provider's verified claim, or an operator); only such accounts are linked by email.
ALTER TABLE users ADD COLUMN email_verified BIGINT NOT NULL DEFAULT 0;
CREATE INDEX users_email ON users (lower(email));

-- A session is one signed-in device: the family of refresh tokens issued from one
-- login. Access tokens name their session (`sid`), so revoking it stops them too.
CREATE TABLE sessions (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method         TEXT NOT NULL,
    user_agent     TEXT,
    ip             TEXT,
    created_at     BIGINT NOT NULL,
    last_used_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id, id);

-- Refresh tokens are stored as SHA-256 of the token. A used token stays (used_at set)
-- so that presenting it again is recognised as reuse and revokes the family.
CREATE TABLE refresh_tokens (
    hash       TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    -- The first characters of the key, shown in listings so a key can be recognised.
    hint         TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_user_id ON api_keys (user_id, id);

-- An account at an external OpenID provider, linked to a local user.
CREATE TABLE identities (
    provider      TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email         TEXT,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX identities_user_id ON identities (user_id);

-- Authorization requests sent to a provider and not yet answered (single use).
CREATE TABLE oidc_logins (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    redirect      TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX oidc_logins_created_at ON oidc_logins (created_at);

-- One-time codes a redirect-mode OpenID sign-in hands to the page (single use, 60 s),
-- so that tokens never appear in a URL.
CREATE TABLE login_codes (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    method     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE password_resets (
    hash       TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user_id ON password_resets (user_id);

-- Security events. No foreign keys: the log outlives the accounts it mentions.
CREATE TABLE audit_log (
    id       TEXT PRIMARY KEY,
    at       BIGINT NOT NULL,
    kind     TEXT NOT NULL,
    actor_id TEXT,
    user_id  TEXT,
    ip       TEXT,
    detail   TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_user_id ON audit_log (user_id, id);
CREATE INDEX audit_log_kind ON audit_log (kind, id);
CREATE INDEX audit_log_at ON audit_log (at);
