package sqlstore

import (
	"context"
	"testing"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/storetest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
)

// openEngine returns an open func for storetest.Run: a fresh database on
// engine each call (a SQLite file in a temp dir, or a new PostgreSQL
// database), closed when the test ends.
func openEngine(engine string) func(t *testing.T) store.Engine {
	return func(t *testing.T) store.Engine {
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
}

// TestConformance runs the store contract on every engine of this package.
func TestConformance(t *testing.T) {
	t.Run(SQLite, func(t *testing.T) { storetest.Run(t, openEngine(SQLite)) })
	t.Run(Postgres, func(t *testing.T) { storetest.Run(t, openEngine(Postgres)) })
}
