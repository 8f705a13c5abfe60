-- Per-group counters of security objects and integration credentials,
-- kept in the same transaction as the rows they count, so that a DSM
-- listing's total is a sum over the groups in reach instead of a COUNT over
-- the account (numbered 9: main already holds 8, and 6 and 7 may be taken
-- by branches in flight).
CREATE TABLE dsm_group_stats (
    account_id  TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    sobjects    BIGINT NOT NULL,
    credentials BIGINT NOT NULL,
    PRIMARY KEY (account_id, group_id)
);
INSERT INTO dsm_group_stats (account_id, group_id, sobjects, credentials)
SELECT g.account_id, g.id,
       (SELECT COUNT(*) FROM dsm_sobjects o WHERE o.account_id = g.account_id AND o.group_id = g.id),
       (SELECT COUNT(*) FROM dsm_credentials c WHERE c.account_id = g.account_id AND c.group_id = g.id)
FROM dsm_groups g;
