-- The audit trail: append-only and hash-chained. Each record's hash covers
-- its fields and the previous record's hash; audit_head holds the newest
-- (seq, hash) and serialises appends across replicas (row lock).
-- Appends are on the hot path of every secret access, so the table carries
-- as few B-trees as possible: seq is the row id on SQLite (SEQ_PK), record
-- ids encode their seq (no index needed to resolve one), and only the
-- per-account index needed to read an account's trail exists.

CREATE TABLE audit_log (
    seq            SEQ_PK,
    id             TEXT NOT NULL,
    time           BIGINT NOT NULL,
    account_id     TEXT NOT NULL,
    principal_id   TEXT NOT NULL,
    principal_kind TEXT NOT NULL,
    action         TEXT NOT NULL,
    object_type    TEXT NOT NULL,
    object_id      TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    request_id     TEXT NOT NULL,
    client_addr    TEXT NOT NULL,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL
);
CREATE INDEX audit_log_account ON audit_log (account_id, seq);

CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY,
    seq  BIGINT NOT NULL,
    hash BLOB NOT NULL
);
