package sqlstore

import (
	"context"
	"testing"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/storetest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
)

// openDB opens a fresh, empty, migrated database on engine (a SQLite file
// in a temp dir, or a new PostgreSQL database), closed when the test ends.
func openDB(t *testing.T, engine string) *DB {
	t.Helper()
	dsn := t.TempDir() + "/s.db"
	if engine == Postgres {
		dsn = pgtest.URL(t)
	}
	db, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openEngine is openDB as storetest.Run's open function.
func openEngine(engine string) func(t *testing.T) store.Engine {
	return func(t *testing.T) store.Engine { return openDB(t, engine) }
}

// TestConformance runs the store contract on every engine of this package.
func TestConformance(t *testing.T) {
	t.Run(SQLite, func(t *testing.T) { storetest.Run(t, openEngine(SQLite)) })
	t.Run(Postgres, func(t *testing.T) { storetest.Run(t, openEngine(Postgres)) })
}
