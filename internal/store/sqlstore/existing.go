package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
)

// ErrNoDatabase is returned by OpenExisting when dsn names no credvault
// database: a SQLite file that does not exist (or is empty), or a
// PostgreSQL database without credvault's schema.
var ErrNoDatabase = errors.New("no credvault database")

// OpenExisting opens a credvault database that already exists, applying
// pending migrations like Open, but never creates one: the admin commands
// use it, so that a mistyped --data-dir or --database-url fails instead of
// silently starting a new, empty vault. Only serve, restore and load create
// databases (through Open).
func OpenExisting(ctx context.Context, dsn string) (*DB, error) {
	var (
		db  *DB
		err error
	)
	if EngineOf(dsn) == Postgres {
		db, err = openPostgres(ctx, dsn, Options{})
	} else {
		path := strings.TrimPrefix(dsn, "sqlite://")
		// Check before opening: opening a missing SQLite file creates it.
		fi, serr := os.Stat(path)
		switch {
		case errors.Is(serr, os.ErrNotExist):
			return nil, fmt.Errorf("%w at %s (the file does not exist)", ErrNoDatabase, path)
		case serr != nil:
			return nil, fmt.Errorf("sqlite: %w", serr)
		case fi.IsDir():
			return nil, fmt.Errorf("%w at %s (it is a directory)", ErrNoDatabase, path)
		case fi.Size() == 0:
			return nil, fmt.Errorf("%w at %s (the file is empty)", ErrNoDatabase, path)
		}
		db, err = openSQLite(ctx, path, Options{})
	}
	if err != nil {
		return nil, err
	}
	ok, err := db.hasSchema(ctx)
	if err != nil {
		db.Close()
		return nil, db.translate(fmt.Errorf("open: %w", err))
	}
	if !ok {
		db.Close()
		return nil, fmt.Errorf("%w in %s (it has no credvault schema)", ErrNoDatabase, redactDSN(dsn))
	}
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// hasSchema reports whether the database holds credvault's migration table.
func (db *DB) hasSchema(ctx context.Context) (bool, error) {
	query := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`
	if db.d.name == Postgres {
		query = `SELECT COUNT(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relname = 'schema_migrations' AND c.relkind = 'r' AND n.nspname = current_schema()`
	}
	var n int
	if err := db.w.QueryRowContext(ctx, query).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}
