package sqlstore

import (
	"context"
	"fmt"
)

// sqliteAnalysisLimit bounds the rows SQLite's ANALYZE examines per index.
// Any non-zero limit also makes SQLite skip sqlite_stat4 (and clear the rows
// already there), which is the point: with STAT4 samples the planner marks
// every cached statement whose bound value is compared with a sampled index
// column as expired on each new binding, and sqlite3_step then re-prepares
// it — 23–29 % of all CPU of a decrypt or get after a bulk load's ANALYZE
// (profile in docs/benchmarks.md). sqlite_stat1 (rows per key prefix) is
// enough for credvault's queries, which all walk an index chosen by their
// equality and range terms; a thousand rows per index estimates it well.
const sqliteAnalysisLimit = 1000

// analyzeSQLite is ANALYZE restricted to sqlite_stat1 statistics.
func (db *DB) analyzeSQLite(ctx context.Context) error {
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return db.translate(fmt.Errorf("analyze: %w", err))
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, fmt.Sprintf(`PRAGMA analysis_limit = %d`, sqliteAnalysisLimit)); err != nil {
		return db.translate(fmt.Errorf("analyze: %w", err))
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `PRAGMA analysis_limit = 0`) //nolint:errcheck // a connection setting
	if _, err := conn.ExecContext(ctx, `ANALYZE`); err != nil {
		return db.translate(fmt.Errorf("analyze: %w", err))
	}
	return nil
}

// dropSQLiteStat4 replaces the statistics of a database analysed by an
// older version (with sqlite_stat4 samples) by stat1-only ones, before any
// read connection loads them. Best effort: a database that cannot be
// written now keeps its statistics, which cost speed, not correctness.
func (db *DB) dropSQLiteStat4(ctx context.Context) {
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_stat4`).Scan(&n); err != nil || n == 0 {
		return // no such table (never analysed) or already stat1-only
	}
	if err := db.analyzeSQLite(ctx); err != nil {
		db.log.Warn("could not refresh the query planner's statistics", "err", err)
	}
}
