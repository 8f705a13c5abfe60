-- Credential lifecycle (issue 15): versions, recoverable delete, expiry,
-- change events and webhooks.

-- Every payload version of a credential, current one included, each sealed
-- with its own data key and bound (associated data) to its account,
-- credential and version number. Only the last N per credential are kept
-- (account_lifecycle.max_versions, default 10); older ones are deleted.
CREATE TABLE credential_versions (
    account_id    TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    ciphertext    BLOB NOT NULL,
    PRIMARY KEY (account_id, credential_id, version)
);
INSERT INTO credential_versions (account_id, credential_id, version, created_at, created_by, ciphertext)
    SELECT account_id, id, version, updated_at, created_by, ciphertext FROM credentials;

-- Per-account lifecycle settings.
CREATE TABLE account_lifecycle (
    account_id   TEXT PRIMARY KEY,
    max_versions BIGINT NOT NULL
);

-- When a credential expires (NULL: never).
ALTER TABLE credentials ADD COLUMN expires_at BIGINT;

-- Deleted credentials, recoverable until the retention window ends. Their
-- versions stay in credential_versions until the purge.
CREATE TABLE credential_trash (
    account_id      TEXT NOT NULL,
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
    expires_at      BIGINT,
    deleted_at      BIGINT NOT NULL,
    deleted_by      TEXT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE INDEX credential_trash_deleted ON credential_trash (deleted_at, account_id, id);
CREATE INDEX credential_trash_list ON credential_trash (account_id, deleted_at, id);

-- Expiry notices already raised, so that each is raised once (by one replica).
CREATE TABLE credential_expiry_notices (
    account_id    TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    stage         TEXT NOT NULL,
    PRIMARY KEY (account_id, credential_id, expires_at, stage)
);
CREATE INDEX credentials_expires ON credentials (expires_at);

-- Webhooks. The signing secret is sealed (associated data: account, webhook).
CREATE TABLE webhooks (
    account_id  TEXT NOT NULL,
    id          TEXT NOT NULL,
    url         TEXT NOT NULL,
    events      TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    secret      BLOB NOT NULL,
    PRIMARY KEY (account_id, id)
);

-- The outbox: events, written in the transaction of the change they
-- describe, and one delivery per matching webhook.
CREATE TABLE events (
    id         TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    body       TEXT NOT NULL
);

CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    account_id    TEXT NOT NULL,
    webhook_id    TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    event_type    TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    next_at       BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    lock_token    TEXT NOT NULL,
    last_at       BIGINT,
    last_status   BIGINT,
    last_error    TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_at);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (account_id, webhook_id, created_at, id);
