// Package dbtest looks at a database directly, below the store, for tests
// that check what is stored or how damage is met: one column of a query, a
// SQLite page overwritten with garbage, a file's fingerprint. It imports no
// credvault package, so the store's own tests use it as well as the
// end-to-end ones.
package dbtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"os"
	"testing"
	"time"

	_ "modernc.org/sqlite" // "sqlite" driver, to find the page to damage
)

// Column runs q on db and returns its single column, each row scanned into
// a T. Any error fails the test.
func Column[T any](ctx context.Context, t testing.TB, db *sql.DB, q string, args ...any) []T {
	t.Helper()
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return out
}

// DamagePage overwrites the root page of the table or index name in the
// SQLite file at path with garbage, leaving the file header (page 1)
// intact. The file's WAL, if any, must be empty (else newer pages would
// hide the damage): stop the server first, or checkpoint it.
func DamagePage(t testing.TB, path, name string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var root, pageSize int64
	err = db.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_master WHERE name = ?`, name).Scan(&root)
	if err == nil {
		err = db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&pageSize)
	}
	db.Close()
	if err != nil {
		t.Fatalf("find the root page of %s: %v", name, err)
	}
	if root <= 1 {
		t.Fatalf("%s has root page %d", name, root)
	}
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		t.Fatalf("%s-wal is not empty: the damage would be hidden by newer pages", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, int(pageSize)), (root-1)*pageSize); err != nil {
		t.Fatal(err)
	}
}

// FileHash returns the SHA-256 of the file at path, to tell whether the
// file changed.
func FileHash(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	return h[:]
}
