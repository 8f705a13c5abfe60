-- The data-key keyset, encrypted under a root key outside the process
-- (an HSM key named by --master-key-uri): Tink's EncryptedKeyset, which
-- reveals key ids but no key material. One row (id = 1) when the vault's
-- keys live under a root key; none when the keyset is a file. version
-- grows by one on every change (rotation), so that replicas re-read it
-- when it moves; root_key names the root key (URI without PIN).
CREATE TABLE master_keyset (
    id         INTEGER PRIMARY KEY,
    root_key   TEXT NOT NULL,
    keyset     BLOB NOT NULL,
    version    BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
