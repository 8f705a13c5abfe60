-- Online master-key rotations started through POST /admin/v1/rekey. The
-- job's state lives here rather than in the server's memory, so that every
-- replica reports the same job and at most one runs at a time: running is 1
-- while the job runs and NULL otherwise, and its unique index admits one
-- running job. updated_at is the runner's heartbeat; a running job whose
-- heartbeat stopped (its server died) is taken over as interrupted.
CREATE TABLE rekey_jobs (
    id          TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    running     INTEGER UNIQUE,
    resume      INTEGER NOT NULL,
    started_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    finished_at BIGINT,
    new_primary BIGINT NOT NULL,
    report      TEXT NOT NULL,
    error       TEXT NOT NULL
);
CREATE INDEX rekey_jobs_started ON rekey_jobs (started_at);
