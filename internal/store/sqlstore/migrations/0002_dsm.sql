-- Fortanix DSM dialect: groups, apps, sessions, security objects and
-- integration credentials. One schema for both engines (BLOB becomes BYTEA on
-- PostgreSQL); times are Unix microseconds.

CREATE TABLE dsm_groups (
    account_id      TEXT NOT NULL REFERENCES accounts (id),
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    custom_metadata TEXT NOT NULL,
    creator_kind    TEXT NOT NULL,
    creator_id      TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX dsm_groups_name ON dsm_groups (account_id, name);

-- An app is a core principal (kind "app") with the same id; its API key is
-- the api_keys row with that id too, created when the secret is first issued.
CREATE TABLE dsm_apps (
    account_id    TEXT NOT NULL REFERENCES accounts (id),
    id            TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL,
    app_type      TEXT NOT NULL,
    role          TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    default_group TEXT NOT NULL,
    creator_kind  TEXT NOT NULL,
    creator_id    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (account_id, id)
);
CREATE UNIQUE INDEX dsm_apps_id ON dsm_apps (id);
CREATE UNIQUE INDEX dsm_apps_name ON dsm_apps (account_id, name);

CREATE TABLE dsm_app_groups (
    account_id  TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    permissions TEXT NOT NULL,
    PRIMARY KEY (account_id, app_id, group_id),
    FOREIGN KEY (account_id, app_id) REFERENCES dsm_apps (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, group_id) REFERENCES dsm_groups (account_id, id) ON DELETE CASCADE
);
CREATE INDEX dsm_app_groups_group ON dsm_app_groups (account_id, group_id);

-- Sessions: only a SHA-256 hash of the bearer token is stored, so every
-- replica can check a token and none can recover it.
CREATE TABLE dsm_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   BLOB NOT NULL UNIQUE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts (id),
    key_id       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX dsm_sessions_principal ON dsm_sessions (principal_id);
CREATE INDEX dsm_sessions_expiry ON dsm_sessions (expires_at);

-- Security objects. Key material is only ever stored as envelope ciphertext
-- bound to (account, kid, version); pub_key is public material.
CREATE TABLE dsm_sobjects (
    account_id           TEXT NOT NULL,
    kid                  TEXT NOT NULL,
    group_id             TEXT NOT NULL,
    name                 TEXT NOT NULL,
    description          TEXT NOT NULL,
    obj_type             TEXT NOT NULL,
    key_size             BIGINT NOT NULL,
    elliptic_curve       TEXT NOT NULL,
    key_ops              TEXT NOT NULL,
    custom_metadata      TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL,
    state                TEXT NOT NULL,
    allow_credential_use BOOLEAN NOT NULL,
    origin               TEXT NOT NULL,
    public_only          BOOLEAN NOT NULL,
    never_exportable     BOOLEAN NOT NULL,
    creator_kind         TEXT NOT NULL,
    creator_id           TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    activation_date      BIGINT NOT NULL,
    deactivation_date    BIGINT,
    replaced             TEXT NOT NULL,
    replacement          TEXT NOT NULL,
    pub_key              BLOB,
    version              BIGINT NOT NULL,
    ciphertext           BLOB NOT NULL,
    PRIMARY KEY (account_id, kid),
    FOREIGN KEY (account_id, group_id) REFERENCES dsm_groups (account_id, id)
);
-- Names are unique per account, enforced here.
CREATE UNIQUE INDEX dsm_sobjects_name ON dsm_sobjects (account_id, name);
CREATE INDEX dsm_sobjects_group ON dsm_sobjects (account_id, group_id);

-- Integration credentials. credential_details holds only identifiers and
-- references to security objects (never secret material).
CREATE TABLE dsm_credentials (
    account_id   TEXT NOT NULL,
    id           TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT,
    details      TEXT NOT NULL,
    creator_kind TEXT NOT NULL,
    creator_id   TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (account_id, id),
    FOREIGN KEY (account_id, group_id) REFERENCES dsm_groups (account_id, id)
);
CREATE UNIQUE INDEX dsm_credentials_name ON dsm_credentials (account_id, name);
CREATE INDEX dsm_credentials_group ON dsm_credentials (account_id, group_id);

-- Which security objects a credential references: a referenced object
-- cannot be deleted (foreign key), and rotation finds its objects here.
CREATE TABLE dsm_credential_refs (
    account_id    TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    kid           TEXT NOT NULL,
    PRIMARY KEY (account_id, credential_id, kid),
    FOREIGN KEY (account_id, credential_id) REFERENCES dsm_credentials (account_id, id) ON DELETE CASCADE,
    FOREIGN KEY (account_id, kid) REFERENCES dsm_sobjects (account_id, kid)
);
CREATE INDEX dsm_credential_refs_kid ON dsm_credential_refs (account_id, kid);
