package sqlstore

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/credvault/credvault/internal/testutil/dbtest"
	"github.com/credvault/credvault/internal/vault"
)

// TestCorruptionAtRunTime damages a page of a running SQLite store's
// credentials table: the read that meets it is Unavailable (503, not 500),
// and from then on the store refuses writes (without touching the file) and
// its readiness check fails, naming the damage.
func TestCorruptionAtRunTime(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/c.db"
	db, acct := storeWithCredentials(t, path, 200)
	t.Cleanup(func() { db.Close() })
	damagePage(t, db, path, "credentials") // under the running store
	if err := db.Ping(ctx); err != nil {
		t.Fatalf("ping before the damage is seen: %v", err)
	}

	_, err := db.ListCredentials(ctx, acct.ID, vault.CredentialQuery{SortBy: vault.SortName, Limit: 500})
	if vault.KindOf(err) != vault.KindUnavailable {
		t.Fatalf("list over a damaged page: kind %v (%v), want unavailable", vault.KindOf(err), err)
	}
	before := dbtest.FileHash(t, path)
	err = db.CreateCredential(ctx, testCredential(acct.ID, "after"))
	if vault.KindOf(err) != vault.KindUnavailable || !errors.Is(err, ErrCorrupt) {
		t.Errorf("create after the damage was seen: kind %v (%v), want unavailable wrapping ErrCorrupt", vault.KindOf(err), err)
	}
	err = db.Ping(ctx)
	var ve *vault.Error
	if !errors.As(err, &ve) || ve.Kind != vault.KindUnavailable || !errors.Is(err, ErrCorrupt) {
		t.Errorf("ping after the damage was seen: %v, want unavailable wrapping ErrCorrupt", err)
	}
	if !bytes.Equal(before, dbtest.FileHash(t, path)) {
		t.Error("the damaged file changed after the damage was seen")
	}
}

// storeWithCredentials opens a new SQLite store at path (QuickCheck on)
// with one account holding n credentials.
func storeWithCredentials(t *testing.T, path string, n int) (*DB, *vault.Account) {
	t.Helper()
	ctx := context.Background()
	db, err := OpenWith(ctx, path, Options{QuickCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	acct := newAccount(t, db, time.Now())
	for i := range n {
		if err := db.CreateCredential(ctx, testCredential(acct.ID, fmt.Sprintf("c-%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	return db, acct
}

// damagePage moves everything from db's WAL into the file at path, then
// overwrites the root page of the table or index name with garbage.
func damagePage(t *testing.T, db *DB, path, name string) {
	t.Helper()
	if _, err := db.w.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	dbtest.DamagePage(t, path, name)
}

// TestQuickCheckInBackground: a file larger than QuickCheckInline opens at
// once (its quick_check runs in the background, so a large vault restarts
// in milliseconds), and damage the check finds — here in an index no
// start-up query reads — is then handled like damage met at run time:
// writes are refused and readiness fails, naming ErrCorrupt. A file under
// the limit is still refused before it opens.
func TestQuickCheckInBackground(t *testing.T) {
	ctx := context.Background()
	path := t.TempDir() + "/c.db"
	db, acct := storeWithCredentials(t, path, 50)
	damagePage(t, db, path, "credentials_type")
	db.Close()

	if _, err := OpenWith(ctx, path, Options{QuickCheck: true}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of a small damaged file: %v, want ErrCorrupt before it opens", err)
	}
	db, err := OpenWith(ctx, path, Options{QuickCheck: true, QuickCheckInline: 1})
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

// TestOpenRefusesEmptyFile: an existing zero-length file is not initialised
// as a new database.
func TestOpenRefusesEmptyFile(t *testing.T) {
	path := t.TempDir() + "/e.db"
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open of an empty file: %v, want ErrCorrupt", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 0 {
		t.Fatalf("the empty file was changed (%v)", err)
	}
}

// TestConnectionLostIsUnavailable lists the connection-level failures the
// PostgreSQL driver reports, wrapped as they arrive, and checks each is
// Unavailable (503 with Retry-After), never Internal.
func TestConnectionLostIsUnavailable(t *testing.T) {
	db := &DB{d: postgresDialect, log: slog.New(slog.DiscardHandler)}
	cases := map[string]error{
		"unexpected EOF":      fmt.Errorf("read: %w", io.ErrUnexpectedEOF),
		"EOF":                 fmt.Errorf("receive message: %w", io.EOF),
		"reset":               &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
		"refused":             &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		"broken pipe":         fmt.Errorf("write: %w", syscall.EPIPE),
		"bad conn":            driver.ErrBadConn,
		"conn done":           sql.ErrConnDone,
		"conn closed":         fmt.Errorf("query: %w", pgconn.ErrConnClosed),
		"deadline":            fmt.Errorf("query: %w", context.DeadlineExceeded),
		"class 08":            &pgconn.PgError{Code: "08006"},
		"admin shutdown":      &pgconn.PgError{Code: "57P01"},
		"crash shutdown":      &pgconn.PgError{Code: "57P02"},
		"cannot connect now":  &pgconn.PgError{Code: "57P03"},
		"statement timeout":   &pgconn.PgError{Code: "57014"},
		"idle in transaction": &pgconn.PgError{Code: "25P03"},
		"disk full":           &pgconn.PgError{Code: "53100"},
	}
	for name, err := range cases {
		if got := vault.KindOf(db.translate(fmt.Errorf("op: %w", err))); got != vault.KindUnavailable {
			t.Errorf("%s: kind %v, want unavailable", name, got)
		}
	}
	if got := vault.KindOf(db.translate(&pgconn.PgError{Code: "22P02"})); got == vault.KindUnavailable {
		t.Errorf("invalid input syntax: unavailable, want another kind")
	}
}

func testCredential(accountID, name string) *vault.Credential {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &vault.Credential{AccountID: accountID, ID: vault.NewID(), Name: name, Type: "key", Metadata: []byte("{}"),
		CreatedBy: "p", CreatedByKind: vault.PrincipalUser, CreatedAt: now, UpdatedAt: now, Version: 1, Ciphertext: bytes.Repeat([]byte("x"), 300)}
}
