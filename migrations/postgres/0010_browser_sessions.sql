-- Browser sign-in: a session may be carried by an HttpOnly cookie, whose secret is kept
-- here as its SHA-256 (identity/browser.rs).
ALTER TABLE sessions ADD COLUMN cookie_hash TEXT;
CREATE UNIQUE INDEX sessions_cookie_hash ON sessions (cookie_hash);
