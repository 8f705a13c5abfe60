package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
	engine  string // "sqlite" or "postgres" for NNNN_x.<engine>.sql; "" for both
}

// migrationEngine is the engine a migration file is for: SQLite for
// NNNN_x.sqlite.sql, Postgres for NNNN_x.postgres.sql, "" (every engine)
// otherwise.
func migrationEngine(name string) string {
	for _, e := range []string{SQLite, Postgres} {
		if strings.HasSuffix(name, "."+e+".sql") {
			return e
		}
	}
	return ""
}

// forEngine reports whether m applies to the named engine.
func (m migration) forEngine(engine string) bool { return m.engine == "" || m.engine == engine }

func loadMigrations() ([]migration, error) {
	entries, err := migrations.ReadDir("migrations")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a number", e.Name())
		}
		b, err := migrations.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b), engine: migrationEngine(e.Name())})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	if err := uniqueVersions(ms); err != nil {
		return nil, err
	}
	return ms, nil
}

// uniqueVersions refuses two migrations with one number (unless they are the
// SQLite and PostgreSQL variants of one migration, NNNN_x.sqlite.sql and
// NNNN_x.postgres.sql): the runner records versions, so the second would be
// skipped silently wherever the first was applied.
func uniqueVersions(ms []migration) error {
	for i := 1; i < len(ms); i++ {
		a, b := ms[i-1], ms[i]
		if a.version == b.version && (a.engine == "" || b.engine == "" || a.engine == b.engine) {
			return fmt.Errorf("migrations %s and %s share version %d", a.name, b.name, a.version)
		}
	}
	return nil
}

// migrate applies pending migrations, each in its own transaction. On
// PostgreSQL an advisory lock makes concurrent start-ups of several replicas
// safe: one migrates, the others wait and then find nothing to do.
func (db *DB) migrate(ctx context.Context) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	unlock, err := db.d.lock(ctx, db.w)
	if err != nil {
		return db.translate(err)
	}
	defer unlock()
	if _, err := db.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return db.translate(fmt.Errorf("migrate: %w", err))
	}
	for _, m := range ms {
		if !m.forEngine(db.d.name) {
			continue
		}
		err := db.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), m.version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range splitStatements(db.d.expand(m.sql)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
			}
			_, err := tx.ExecContext(ctx, db.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`), m.version, m.name, time.Now().UnixMicro())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
	}
	return nil
}

// splitStatements splits a migration on semicolons at line ends and drops
// comment-only lines. Migrations are ours, so this need not handle quotes.
func splitStatements(s string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(t, ";") {
			out = append(out, strings.TrimSpace(cur.String()))
			cur.Reset()
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, strings.TrimSpace(cur.String()))
	}
	return out
}
