package audit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/cryptotest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on engine and a raw SQL handle for tampering.
func open(t *testing.T, engine string) (*sqlstore.DB, *sql.DB, string) {
	t.Helper()
	ctx := context.Background()
	dsn := t.TempDir() + "/a.db"
	if engine == sqlstore.Postgres {
		dsn = pgtest.URL(t)
	}
	db, err := sqlstore.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r := vaulttest.OpenRaw(t, engine, dsn)
	return db, r, dsn
}

// checkpointAt takes a checkpoint of tr and fails unless it is at seq.
func checkpointAt(t *testing.T, tr *audit.Trail, seq int64) audit.Checkpoint {
	t.Helper()
	cp, err := tr.Checkpoint(context.Background(), time.Now())
	if err != nil || cp.Seq != seq {
		t.Fatalf("checkpoint: %+v %v, want seq %d", cp, err, seq)
	}
	return cp
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
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
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

// TestGroupCommitChains checks that concurrent appends from two trails (two
// replicas on one database) still form one unbroken chain.
func TestGroupCommitChains(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
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

func newKeys(t *testing.T) *crypto.Keyring {
	t.Helper()
	kr, _ := cryptotest.NewKeyring(t)
	return kr
}

// TestHeadTruncation cuts the newest records off the trail and moves the
// head row back to the new last record — consistent, so the hash chain
// alone cannot tell — and checks that the head's MAC (a key derived from
// the master key) gives it away, that no appender extends such a head, and
// what a rollback to a genuine older head needs (an anchor).
func TestHeadTruncation(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		q := func(s string) string {
			if engine != sqlstore.Postgres {
				return s
			}
			for i := 1; strings.Contains(s, "?"); i++ {
				s = strings.Replace(s, "?", fmt.Sprintf("$%d", i), 1)
			}
			return s
		}
		setup := func(t *testing.T) (*sqlstore.DB, *sql.DB, *audit.Trail, *crypto.Keyring) {
			db, raw, _ := open(t, engine)
			kr := newKeys(t)
			tr := audit.New(db, nil)
			tr.SetKeys(kr)
			appendN(t, tr, 20)
			return db, raw, tr, kr
		}
		truncate := func(t *testing.T, raw *sql.DB, to int64) {
			t.Helper()
			var hash []byte
			if err := raw.QueryRow(q(`SELECT hash FROM audit_log WHERE seq = ?`), to).Scan(&hash); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(q(`DELETE FROM audit_log WHERE seq > ?`), to); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(q(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), to, hash); err != nil {
				t.Fatal(err)
			}
		}

		t.Run("tail-cut", func(t *testing.T) {
			db, raw, tr, kr := setup(t)
			defer tr.Close()
			truncate(t, raw, 17)
			// The chain alone is consistent (what verify saw before).
			if rep, err := audit.Verify(ctx, db, audit.VerifyOptions{}); err != nil || !rep.OK() {
				t.Fatalf("chain-only verify: %v %v", err, rep.Problems)
			}
			rep, err := audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.HeadAuthenticated || !strings.Contains(strings.Join(rep.Problems, "\n"), "MAC does not verify") {
				t.Fatalf("truncated tail not detected: %+v", rep)
			}
			// No append launders the forged head.
			err = tr.Append(ctx, vault.AuditEvent{Action: "credential.decrypt", Outcome: "success"})
			if !errors.Is(err, audit.ErrHeadUnauthenticated) {
				t.Fatalf("append on a forged head: %v", err)
			}
			if rep, _ := audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr}); rep.OK() || rep.Records != 17 {
				t.Fatalf("after the refused append: records %d, ok %v", rep.Records, rep.OK())
			}
		})

		t.Run("mac-removed", func(t *testing.T) {
			db, raw, tr, kr := setup(t)
			defer tr.Close()
			truncate(t, raw, 17)
			if _, err := raw.Exec(`UPDATE audit_head SET mac = NULL`); err != nil {
				t.Fatal(err)
			}
			rep, _ := audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr})
			if rep.OK() || !strings.Contains(strings.Join(rep.Problems, "\n"), "not authenticated") {
				t.Fatalf("removed MAC not detected: %+v", rep)
			}
			if err := tr.Append(ctx, vault.AuditEvent{Action: "x"}); !errors.Is(err, audit.ErrHeadUnauthenticated) {
				t.Fatalf("append on an unauthenticated head: %v", err)
			}
			// The operator adopts it deliberately (audit seal-head).
			if err := tr.SealHead(ctx, vault.AuditEvent{Action: "audit.seal_head", Outcome: "success"}); err != nil {
				t.Fatal(err)
			}
			if rep, _ := audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr}); !rep.OK() || !rep.HeadAuthenticated || rep.Records != 18 {
				t.Fatalf("after seal-head: %+v", rep)
			}
		})

		t.Run("another-master-key", func(t *testing.T) {
			db, _, tr, _ := setup(t)
			tr.Close()
			rep, _ := audit.Verify(ctx, db, audit.VerifyOptions{Keys: newKeys(t)})
			if rep.OK() {
				t.Fatal("a head authenticated under another master key verified")
			}
		})

		t.Run("rollback-needs-an-anchor", func(t *testing.T) {
			db, raw, tr, kr := setup(t)
			defer tr.Close()
			// Someone with database access keeps the head row of seq 12 ...
			old, err := db.AuditHead(ctx)
			if err != nil || old.Seq != 20 {
				t.Fatalf("head: %+v %v", old, err)
			}
			var hash12 []byte
			if err := raw.QueryRow(`SELECT hash FROM audit_log WHERE seq = 12`).Scan(&hash12); err != nil {
				t.Fatal(err)
			}
			cp := checkpointAt(t, tr, 20)
			if err := audit.VerifyCheckpoint(kr, cp); err != nil {
				t.Fatalf("checkpoint MAC: %v", err)
			}
			edited := cp
			edited.Seq = 12
			if audit.VerifyCheckpoint(kr, edited) == nil {
				t.Fatal("an edited checkpoint verified")
			}
			// ... and later rolls the trail back to an earlier genuine
			// state: here, records after 20 are appended and then cut off
			// with the head row of 20 put back.
			appendN(t, tr, 5)
			var mac []byte
			if err := raw.QueryRow(`SELECT mac FROM audit_head WHERE id = 1`).Scan(&mac); err != nil {
				t.Fatal(err)
			}
			cp25 := checkpointAt(t, tr, 25)
			if _, err := raw.Exec(`DELETE FROM audit_log WHERE seq > 20`); err != nil {
				t.Fatal(err)
			}
			if _, err := raw.Exec(q(`UPDATE audit_head SET seq = ?, hash = ?, mac = ? WHERE id = 1`), old.Seq, old.Hash, old.MAC); err != nil {
				t.Fatal(err)
			}
			// The head authenticates (it is genuine, only old): the MAC
			// alone cannot see a rollback ...
			rep, _ := audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr})
			if !rep.OK() {
				t.Fatalf("a genuine older head did not verify: %v", rep.Problems)
			}
			// ... an anchor recorded outside the database does.
			a25, err := cp25.Anchor()
			if err != nil {
				t.Fatal(err)
			}
			a12, err := audit.ParseAnchor(fmt.Sprintf("12:%x", hash12))
			if err != nil {
				t.Fatal(err)
			}
			rep, _ = audit.Verify(ctx, db, audit.VerifyOptions{Keys: kr, Anchors: []audit.Anchor{a12, a25}})
			if rep.OK() || rep.AnchorsChecked != 2 || !strings.Contains(strings.Join(rep.Problems, "\n"), "names record 25, but the trail ends at 20") {
				t.Fatalf("rollback not detected against the anchor: %+v", rep)
			}
		})
	})
}
