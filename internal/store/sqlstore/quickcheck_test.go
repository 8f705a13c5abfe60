package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// TestQuickCheckInBackground: a file larger than QuickCheckInline opens at
// once (its quick_check runs in the background, so a large vault restarts
// in milliseconds), and damage the check finds — here in an index no
// start-up query reads — is then handled like damage met at run time:
// writes are refused and readiness fails, naming ErrCorrupt. A file under
// the limit is still refused before it opens.
func TestQuickCheckInBackground(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/c.db"
	db, err := OpenWith(ctx, path, Options{QuickCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	acct := &vault.Account{ID: vault.NewID(), Name: "a", CreatedAt: time.Now()}
	if err := db.CreateAccount(ctx, acct); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if err := db.CreateCredential(ctx, testCredential(acct.ID, fmt.Sprintf("c-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	var root, pageSize int64
	if err := db.r.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_master WHERE name = 'credentials_type'`).Scan(&root); err != nil {
		t.Fatal(err)
	}
	if err := db.r.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	db.Close()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(pageSize)), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := OpenWith(ctx, path, Options{QuickCheck: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a small damaged file: %v, want ErrCorrupt before it opens", err)
	}

	db, err = OpenWith(ctx, path, Options{QuickCheck: true, QuickCheckInline: 1})
	if err != nil {
		t.Fatalf("open with the check in the background: %v", err)
	}
	defer db.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := db.Ping(ctx)
		if err != nil {
			if vault.KindOf(err) != vault.KindUnavailable || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ping after the background check: %v, want unavailable wrapping ErrCorrupt", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background quick_check did not report the damaged index")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = db.CreateCredential(ctx, testCredential(acct.ID, "after"))
	if vault.KindOf(err) != vault.KindUnavailable || !errors.Is(err, ErrCorrupt) {
		t.Errorf("create after the background check found damage: %v, want unavailable wrapping ErrCorrupt", err)
	}
}
