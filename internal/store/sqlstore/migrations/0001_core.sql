-- Core schema: accounts, principals, API keys, SGP credentials.
-- Written once for both engines: BLOB becomes BYTEA on PostgreSQL.
-- Times are Unix microseconds (BIGINT), booleans BOOLEAN.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE accounts (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE principals (
    id                 TEXT PRIMARY KEY,
    kind               TEXT NOT NULL,
    name               TEXT NOT NULL,
    default_account_id TEXT NOT NULL REFERENCES accounts (id),
    created_at         BIGINT NOT NULL
);

CREATE TABLE memberships (
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    role         TEXT NOT NULL,
    PRIMARY KEY (principal_id, account_id)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_keys_principal ON api_keys (principal_id);

CREATE TABLE credentials (
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    type            TEXT NOT NULL,
    description     TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    created_by      TEXT NOT NULL,
    created_by_kind TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    ciphertext      BLOB NOT NULL,
    PRIMARY KEY (account_id, id)
);
-- Names are unique per account, enforced here.
CREATE UNIQUE INDEX credentials_name ON credentials (account_id, name);
-- Keyset pagination indexes: (account, sort column, id).
CREATE INDEX credentials_created ON credentials (account_id, created_at, id);
CREATE INDEX credentials_updated ON credentials (account_id, updated_at, id);
CREATE INDEX credentials_type ON credentials (account_id, type, id);

-- Where deleted credentials stood, so their ids keep working as cursors.
CREATE TABLE credential_tombstones (
    account_id TEXT NOT NULL,
    id         TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- Per-account counters, kept in the same transaction as the rows they count,
-- so that list totals cost O(1) instead of a COUNT over the account.
CREATE TABLE account_stats (
    account_id  TEXT PRIMARY KEY,
    credentials BIGINT NOT NULL
);
