-- Management plane (issue 12): unique account names, principal names unique
-- within their account, users' email and password (an argon2id PHC string,
-- never the password), disabled principals, and login sessions (only a
-- SHA-256 hash of the token is kept).

-- Names that were duplicated before names had to be unique keep working:
-- every duplicate but the oldest gets its id appended.
UPDATE accounts SET name = name || '-' || id
WHERE EXISTS (SELECT 1 FROM accounts a2 WHERE a2.name = accounts.name AND a2.id < accounts.id);
CREATE UNIQUE INDEX accounts_name ON accounts (name);

ALTER TABLE principals ADD COLUMN email TEXT;
ALTER TABLE principals ADD COLUMN password_hash TEXT;
ALTER TABLE principals ADD COLUMN disabled_at BIGINT;
ALTER TABLE principals ADD COLUMN last_login_at BIGINT;

-- DSM apps have their own unique names (dsm_apps_name); users and service
-- accounts are unique within their account.
UPDATE principals SET name = name || '-' || id
WHERE kind <> 'app' AND EXISTS (SELECT 1 FROM principals p2 WHERE p2.kind <> 'app'
    AND p2.default_account_id = principals.default_account_id AND p2.name = principals.name AND p2.id < principals.id);
CREATE UNIQUE INDEX principals_name ON principals (default_account_id, name) WHERE kind <> 'app';
CREATE UNIQUE INDEX principals_email ON principals (email) WHERE email IS NOT NULL;

CREATE TABLE user_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX user_sessions_principal ON user_sessions (principal_id);
