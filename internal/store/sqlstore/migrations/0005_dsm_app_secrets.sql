-- DSM app secrets. DSM shows an app's secret again on every
-- GET /sys/v1/apps/{id}/credential, so credvault keeps it: sealed with the
-- envelope encryption (associated data binds it to the account, the app
-- and the hash of the API key it belongs to), never in plaintext.
-- Authentication still compares only the SHA-256 hash in api_keys.
CREATE TABLE dsm_app_secrets (
    app_id     TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    ciphertext BLOB NOT NULL,
    FOREIGN KEY (account_id, app_id) REFERENCES dsm_apps (account_id, id) ON DELETE CASCADE
);
