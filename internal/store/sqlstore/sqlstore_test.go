package sqlstore

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openEach(t *testing.T, fn func(t *testing.T, db *DB)) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) { fn(t, openDB(t, engine)) })
	}
}

// notSealed are the binary columns that hold no ciphertext: hashes and
// public keys. Every other binary column must be listed in sealedColumns,
// or master-key rotation would leave it wrapped by a retired key.
var notSealed = map[string]bool{
	"api_keys.hash": true, "dsm_sessions.token_hash": true, "user_sessions.token_hash": true, "dsm_sobjects.pub_key": true,
	"audit_log.prev_hash": true, "audit_log.hash": true, "audit_head.hash": true, "audit_head.mac": true,
	"master_keyset.keyset": true, // encrypted under the root key (HSM), not the keyring
}

func TestSealedColumnsComplete(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		tables, err := db.tables(ctx, db.r)
		if err != nil {
			t.Fatal(err)
		}
		sealed := map[string]bool{}
		for _, sc := range sealedColumns {
			sealed[sc.table+"."+sc.col] = true
		}
		found := 0
		for _, tbl := range tables {
			rows, err := db.r.QueryContext(ctx, `SELECT * FROM `+quoteIdent(tbl)+` WHERE 1 = 0`)
			if err != nil {
				t.Fatal(err)
			}
			cts, _ := rows.ColumnTypes()
			rows.Close()
			for _, ct := range cts {
				name := tbl + "." + ct.Name()
				if typ := ct.DatabaseTypeName(); typ == "BLOB" || typ == "BYTEA" {
					found++
					if !sealed[name] && !notSealed[name] {
						t.Errorf("binary column %s is neither in sealedColumns nor known to hold no ciphertext", name)
					}
				}
			}
		}
		if found < 8 {
			t.Fatalf("found only %d binary columns; is the schema query broken?", found)
		}
	})
}

// TestMigrationsConcurrent opens the same database from several goroutines
// at once: migrations must run exactly once (PostgreSQL: advisory lock;
// SQLite: immediate transactions).
func TestMigrationsConcurrent(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			dsn := newDSN(t, engine)
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for i := 0; i < 4; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					db, err := Open(context.Background(), dsn)
					if err == nil {
						db.Close()
					}
					errs <- err
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatalf("concurrent open: %v", err)
				}
			}
			db, err := Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			ms, _ := loadMigrations()
			ms = slices.DeleteFunc(ms, func(m migration) bool { return !m.forEngine(engine) })
			var n int
			if err := db.r.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&n); err != nil || n != len(ms) {
				t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(ms))
			}
		})
	}
}

// TestErrorTranslation checks that driver errors reach the core as kinds.
func TestErrorTranslation(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		a := &vault.Account{ID: vault.NewID(), Name: "a"}
		if err := db.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		if err := db.CreateAccount(ctx, a); vault.KindOf(err) != vault.KindConflict {
			t.Errorf("duplicate id: kind %v (%v)", vault.KindOf(err), err)
		}
		if _, err := db.GetAccount(ctx, "nope"); vault.KindOf(err) != vault.KindNotFound {
			t.Errorf("missing row: kind %v (%v)", vault.KindOf(err), err)
		}
		db.Close()
		if err := db.Ping(ctx); err == nil {
			t.Errorf("ping on a closed store succeeded")
		}
	})
}

func TestRebind(t *testing.T) {
	db := &DB{d: postgresDialect}
	got := db.q(`SELECT a FROM t WHERE b = ? AND (c, d) > (?, ?)`)
	if want := `SELECT a FROM t WHERE b = $1 AND (c, d) > ($2, $3)`; got != want {
		t.Fatalf("rebind: %s", got)
	}
	if s := (&DB{d: sqliteDialect}).q("x = ?"); s != "x = ?" {
		t.Fatalf("sqlite must not rebind: %s", s)
	}
	if !slices.Contains([]string{"INTEGER PRIMARY KEY"}, sqliteDialect.expand("SEQ_PK")) || postgresDialect.expand("a BLOB, b SEQ_PK") != "a BYTEA, b BIGINT PRIMARY KEY" {
		t.Fatalf("expand: %q %q", sqliteDialect.expand("SEQ_PK"), postgresDialect.expand("a BLOB, b SEQ_PK"))
	}
}
