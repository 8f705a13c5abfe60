-- Web console sessions (internal/console). Only the SHA-256 hash of the
-- session token (the cookie), in hex, is stored, so a database reader cannot sign
-- in with it. A session acts as principal_id in account_id; key_id is the
-- API key it was opened with ('' for a password sign-in), checked on every
-- request so that revoking the key ends its console sessions. Times are
-- unix microseconds: last_seen_at drives the idle timeout, expires_at is
-- the absolute one.
CREATE TABLE console_sessions (
    token_hash   TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL,
    account_id   TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX console_sessions_expires ON console_sessions (expires_at);
