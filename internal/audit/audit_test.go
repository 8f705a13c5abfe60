package audit_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on engine and a raw SQL handle for tampering.
func open(t *testing.T, engine string) (*sqlstore.DB, *sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	var dsn, driver, raw string
	switch engine {
	case sqlstore.SQLite:
		dsn = t.TempDir() + "/a.db"
		driver, raw = "sqlite", dsn
	default:
		dsn = pgtest.URL(t)
		driver, raw = "pgx", dsn
	}
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r, err := sql.Open(driver, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return db, r, dsn
}

func appendN(t *testing.T, tr *audit.Trail, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			errs <- tr.Append(context.Background(), vault.AuditEvent{
				AccountID: "acct", PrincipalID: "p", Action: "credential.decrypt",
				ObjectType: "credential", ObjectID: fmt.Sprintf("obj-%d", i), Outcome: "success",
			})
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("append: %v", err)
		}
	}
}

func TestVerify(t *testing.T) {
	for _, engine := range vaulttest.Engines() {
		t.Run(engine, func(t *testing.T) {
			cases := []struct {
				name   string
				tamper string // SQL run against the trail of 20 records
				want   string // substring of a reported problem ("" = intact)
			}{
				{"intact", "", ""},
				{"edited", `UPDATE audit_log SET outcome = 'permission_denied' WHERE seq = 7`, "record 7"},
				{"deleted", `DELETE FROM audit_log WHERE seq = 5`, "records 5..5 are missing"},
				{"deleted-newest", `DELETE FROM audit_log WHERE seq = 20`, "head says the newest record is 20"},
				{"inserted", `INSERT INTO audit_log SELECT seq + 1000, id || 'x', time, account_id, principal_id, principal_kind, action, object_type, object_id, outcome, request_id, client_addr, prev_hash, hash FROM audit_log WHERE seq = 3`, "record 1003"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					db, raw, _ := open(t, engine)
					tr := audit.New(db, nil)
					appendN(t, tr, 20)
					tr.Close()
					if tc.tamper != "" {
						if _, err := raw.Exec(tc.tamper); err != nil {
							t.Fatalf("tamper: %v", err)
						}
					}
					rep, err := audit.Verify(context.Background(), db, audit.VerifyOptions{})
					if err != nil {
						t.Fatal(err)
					}
					if tc.want == "" {
						if !rep.OK() || rep.Records != 20 || rep.HeadSeq != 20 {
							t.Fatalf("intact trail: ok=%v records=%d head=%d problems=%v", rep.OK(), rep.Records, rep.HeadSeq, rep.Problems)
						}
						return
					}
					if rep.OK() {
						t.Fatalf("tampering (%s) not detected", tc.tamper)
					}
					if !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
						t.Fatalf("problems %q do not mention %q", rep.Problems, tc.want)
					}
				})
			}
		})
	}
}

// TestGroupCommitChains checks that concurrent appends from two trails (two
// replicas on one database) still form one unbroken chain.
func TestGroupCommitChains(t *testing.T) {
	for _, engine := range vaulttest.Engines() {
		t.Run(engine, func(t *testing.T) {
			db, _, dsn := open(t, engine)
			var db2 vault.AuditStore = db
			if engine == sqlstore.Postgres {
				other, err := sqlstore.Open(context.Background(), dsn)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { other.Close() })
				db2 = other
			}
			a, b := audit.New(db, nil), audit.New(db2, nil)
			var wg sync.WaitGroup
			wg.Add(2)
			go func() { defer wg.Done(); appendN(t, a, 100) }()
			go func() { defer wg.Done(); appendN(t, b, 100) }()
			wg.Wait()
			a.Close()
			b.Close()
			rep, err := audit.Verify(context.Background(), db, audit.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.OK() || rep.Records != 200 {
				t.Fatalf("records=%d problems=%v", rep.Records, rep.Problems)
			}
		})
	}
}
