-- Workload identity: trust policies (issue 17). A policy trusts one
-- issuer's JWTs for a role in one account; keys issued through it are
-- ordinary rows of api_keys whose principal is the policy's service
-- principal (principals.id = trust_policies.id). Audiences and claim
-- rules are JSON; the JWKS document, if pasted, holds only public keys.
CREATE TABLE trust_policies (
    id          TEXT PRIMARY KEY REFERENCES principals (id),
    account_id  TEXT NOT NULL REFERENCES accounts (id),
    name        TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    key_source  TEXT NOT NULL,
    jwks_url    TEXT NOT NULL,
    jwks        TEXT NOT NULL,
    audiences   TEXT NOT NULL,
    claims      TEXT NOT NULL,
    role        TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (account_id, name)
);
CREATE INDEX trust_policies_issuer ON trust_policies (issuer);
