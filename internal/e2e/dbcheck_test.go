package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // "pgx" driver, for the checks below
	_ "modernc.org/sqlite"             // "sqlite" driver
)

// openDirect opens the database behind a credvault URL directly (not
// through credvault): SQLite read-only, PostgreSQL as given.
func openDirect(dbURL string) (*sql.DB, string, error) {
	if strings.HasPrefix(dbURL, "postgres://") || strings.HasPrefix(dbURL, "postgresql://") {
		db, err := sql.Open("pgx", dbURL)
		return db, "postgres", err
	}
	db, err := sql.Open("sqlite", "file:"+dbURL+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, "", err
	}
	db.SetMaxOpenConns(1)
	return db, "sqlite", nil
}

// onDirect runs check on the database behind dbURL, opened directly
// (openDirect), with a context that ends after timeout.
func onDirect[T any](dbURL string, timeout time.Duration, check func(ctx context.Context, db *sql.DB, engine string) (T, error)) (T, error) {
	db, engine, err := openDirect(dbURL)
	if err != nil {
		var zero T
		return zero, err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return check(ctx, db, engine)
}

// integrityReport is what checkIntegrity found.
type integrityReport struct {
	Credentials int
	Tombstones  int
	Indexes     int // PostgreSQL: B-tree indexes verified by amcheck
	AmcheckUsed bool
}

// checkIntegrity verifies the database behind dbURL while no credvault
// writes to it (after a SIGKILL):
//
//   - SQLite: PRAGMA integrity_check = ok and PRAGMA foreign_key_check is
//     empty, on the file opened read-only.
//   - PostgreSQL: amcheck's bt_index_check(heapallindexed) on every B-tree
//     index of the schema when the extension is available.
//   - Both: the name index holds (no two live credentials share a name in an
//     account), the per-account counters equal the real row counts (they are
//     written in the same transaction as the rows), and no deleted
//     credential's id is live again.
func checkIntegrity(dbURL string) (integrityReport, error) {
	return onDirect(dbURL, 60*time.Second, func(ctx context.Context, db *sql.DB, engine string) (integrityReport, error) {
		var rep integrityReport
		if engine == "sqlite" {
			var res string
			if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&res); err != nil {
				return rep, fmt.Errorf("integrity_check: %w", err)
			}
			if res != "ok" {
				return rep, fmt.Errorf("PRAGMA integrity_check: %s", res)
			}
			rows, err := db.QueryContext(ctx, `PRAGMA foreign_key_check`)
			if err != nil {
				return rep, fmt.Errorf("foreign_key_check: %w", err)
			}
			bad := rows.Next()
			rows.Close()
			if bad {
				return rep, fmt.Errorf("PRAGMA foreign_key_check reports violations")
			}
		} else {
			if _, err := db.ExecContext(ctx, `CREATE EXTENSION IF NOT EXISTS amcheck`); err == nil {
				rep.AmcheckUsed = true
				rows, err := db.QueryContext(ctx, `SELECT c.relname FROM pg_index i
					JOIN pg_class c ON c.oid = i.indexrelid
					JOIN pg_am a ON a.oid = c.relam
					JOIN pg_namespace n ON n.oid = c.relnamespace
					WHERE a.amname = 'btree' AND n.nspname = current_schema()`)
				if err != nil {
					return rep, fmt.Errorf("listing indexes: %w", err)
				}
				var idx []string
				for rows.Next() {
					var name string
					if err := rows.Scan(&name); err != nil {
						rows.Close()
						return rep, err
					}
					idx = append(idx, name)
				}
				rows.Close()
				for _, name := range idx {
					if _, err := db.ExecContext(ctx, `SELECT bt_index_check($1::regclass, true)`, name); err != nil {
						return rep, fmt.Errorf("amcheck bt_index_check(%s): %w", name, err)
					}
					rep.Indexes++
				}
			}
		}

		var dups int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT account_id, name FROM credentials GROUP BY account_id, name HAVING COUNT(*) > 1) d`).Scan(&dups); err != nil {
			return rep, fmt.Errorf("duplicate names: %w", err)
		}
		if dups > 0 {
			return rep, fmt.Errorf("%d credential names occur more than once in an account", dups)
		}
		var badStats int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM (
				SELECT a.id FROM accounts a
				LEFT JOIN account_stats s ON s.account_id = a.id
				LEFT JOIN (SELECT account_id, COUNT(*) AS n FROM credentials GROUP BY account_id) c ON c.account_id = a.id
				WHERE COALESCE(s.credentials, 0) <> COALESCE(c.n, 0)) x`).Scan(&badStats); err != nil {
			return rep, fmt.Errorf("account counters: %w", err)
		}
		if badStats > 0 {
			return rep, fmt.Errorf("%d accounts' credential counters differ from their row counts (a half-applied transaction)", badStats)
		}
		var revived int
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM credentials c JOIN credential_tombstones t ON t.account_id = c.account_id AND t.id = c.id`).Scan(&revived); err != nil {
			return rep, fmt.Errorf("tombstones: %w", err)
		}
		if revived > 0 {
			return rep, fmt.Errorf("%d credentials are both live and tombstoned", revived)
		}
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM credentials`).Scan(&rep.Credentials); err != nil {
			return rep, err
		}
		if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM credential_tombstones`).Scan(&rep.Tombstones); err != nil {
			return rep, err
		}
		return rep, nil
	})
}

// countRows returns the number of rows in table (for "restored nothing").
func countRows(dbURL, table string) (int, error) {
	return onDirect(dbURL, 30*time.Second, func(ctx context.Context, db *sql.DB, _ string) (int, error) {
		var n int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+table).Scan(&n)
		return n, err
	})
}
