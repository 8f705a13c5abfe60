package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// StartRekeyJob records j as the running rekey job (see store.RekeyJobStore).
func (db *DB) StartRekeyJob(ctx context.Context, j *store.RekeyJob, staleBefore time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`UPDATE rekey_jobs SET state = ?, running = NULL, finished_at = ?, error = ?
			WHERE running = 1 AND updated_at < ?`),
			store.RekeyInterrupted, ts(db.now()), "the server running it stopped", ts(staleBefore)); err != nil {
			return fmt.Errorf("rekey job: %w", err)
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM rekey_jobs WHERE running = 1`).Scan(&n); err != nil {
			return fmt.Errorf("rekey job: %w", err)
		}
		if n > 0 {
			return vault.Errorf(vault.KindConflict, "a master-key rotation is already running")
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO rekey_jobs (id, state, running, resume, started_at, updated_at, finished_at, new_primary, report, error)
			VALUES (?, ?, 1, ?, ?, ?, NULL, ?, ?, ?)`),
			j.ID, store.RekeyRunning, boolInt(j.Resume), ts(j.StartedAt), ts(j.UpdatedAt), int64(j.NewPrimary), string(j.Report), j.Error)
		if err != nil {
			// Two replicas starting at once: the unique index on running
			// admits one of them.
			if db.d.isUnique(err) {
				return vault.Errorf(vault.KindConflict, "a master-key rotation is already running")
			}
			return fmt.Errorf("rekey job: %w", err)
		}
		j.State = store.RekeyRunning
		return nil
	})
}

// UpdateRekeyJob writes j (see store.RekeyJobStore).
func (db *DB) UpdateRekeyJob(ctx context.Context, j *store.RekeyJob) error {
	var running any
	if j.State == store.RekeyRunning {
		running = 1
	}
	var finished any
	if !j.FinishedAt.IsZero() {
		finished = ts(j.FinishedAt)
	}
	res, err := db.write(ctx, `UPDATE rekey_jobs SET state = ?, running = ?, updated_at = ?, finished_at = ?, new_primary = ?, report = ?, error = ? WHERE id = ?`,
		j.State, running, ts(j.UpdatedAt), finished, int64(j.NewPrimary), string(j.Report), j.Error, j.ID)
	if err != nil {
		return db.translate(fmt.Errorf("rekey job: %w", err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return vault.ErrNotFound
	}
	return nil
}

// LatestRekeyJob returns the most recently started rekey job.
func (db *DB) LatestRekeyJob(ctx context.Context) (*store.RekeyJob, error) {
	var (
		j                store.RekeyJob
		resume           int
		started, updated int64
		finished         sql.NullInt64
		primary          int64
		report           string
	)
	err := db.w.QueryRowContext(ctx, `SELECT id, state, resume, started_at, updated_at, finished_at, new_primary, report, error
		FROM rekey_jobs ORDER BY started_at DESC, id DESC LIMIT 1`).
		Scan(&j.ID, &j.State, &resume, &started, &updated, &finished, &primary, &report, &j.Error)
	if err != nil {
		return nil, db.translate(err)
	}
	j.Resume, j.StartedAt, j.UpdatedAt, j.NewPrimary = resume == 1, fromTS(started), fromTS(updated), uint32(primary)
	if t := fromNullTS(finished); t != nil {
		j.FinishedAt = *t
	}
	if report != "" {
		j.Report = []byte(report)
	}
	return &j, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// DB is an engine as the binary uses it (see internal/store).
var _ store.Engine = (*DB)(nil)
