package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// TestAnalyze_SQLiteKeepsNoStat4: after a bulk load's ANALYZE, SQLite has
// sqlite_stat1 statistics and no sqlite_stat4 samples (with samples, every
// cached statement is re-prepared whenever a bound value changes: 23-29 %
// of a decrypt's CPU), and a database analysed with samples by an older
// version loses them when a server opens it.
func TestAnalyze_SQLiteKeepsNoStat4(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/s.db"
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	acct := newAccount(t, db, time.Now())
	var cs []*vault.Credential
	for i := range 5000 {
		cs = append(cs, &vault.Credential{AccountID: acct.ID, ID: vault.NewID(), Name: fmt.Sprintf("c%05d", i), Type: "key",
			Metadata: []byte("{}"), CreatedAt: time.Now(), UpdatedAt: time.Now(), Version: 1, Ciphertext: []byte{1}})
	}
	if err := db.CreateCredentials(ctx, cs); err != nil {
		t.Fatal(err)
	}
	count := func(table string) int {
		t.Helper()
		var n int
		if err := db.w.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := db.Analyze(ctx); err != nil {
		t.Fatal(err)
	}
	if n1, n4 := count("sqlite_stat1"), count("sqlite_stat4"); n1 == 0 || n4 != 0 {
		t.Fatalf("after Analyze: %d sqlite_stat1 rows, %d sqlite_stat4 rows; want some and none", n1, n4)
	}

	// An older version's full ANALYZE left samples behind.
	if _, err := db.w.ExecContext(ctx, `ANALYZE`); err != nil {
		t.Fatal(err)
	}
	if count("sqlite_stat4") == 0 {
		t.Fatal("a full ANALYZE wrote no sqlite_stat4 rows: this test no longer shows anything")
	}
	db.Close()
	if db, err = Open(ctx, path); err != nil {
		t.Fatal(err)
	}
	if n1, n4 := count("sqlite_stat1"), count("sqlite_stat4"); n1 == 0 || n4 != 0 {
		t.Fatalf("after reopening: %d sqlite_stat1 rows, %d sqlite_stat4 rows; want some and none", n1, n4)
	}
}
