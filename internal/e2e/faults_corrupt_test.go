package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/dbtest"
)

// TestCorruptDatabaseRefused damages one page of the credentials table of a
// stopped vault (the file header stays intact): serve refuses to start,
// says the file is damaged and to restore a backup, and leaves the file
// exactly as it was.
func TestCorruptDatabaseRefused(t *testing.T) {
	wantEngine(t, "sqlite")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "credvault.db")
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: dbPath, DataDir: dir, BootstrapKey: key})
	c := newClient(p.URL, key)
	for i := range 200 {
		c.create(t, fmt.Sprintf("c-%03d", i), randomText("p-"))
	}
	p.stop(t)

	dbtest.DamagePage(t, dbPath, "credentials")
	before := dbtest.FileHash(t, dbPath)

	p2 := launch(t, "server-on-damaged-file", server{DatabaseURL: dbPath, DataDir: dir, BootstrapKey: key})
	code, err := p2.wait(startTimeout)
	if err != nil {
		t.Fatalf("serve on a damaged database: %v (want it to refuse to start)", err)
	}
	out := p2.stderr.String() + p2.stdout.String()
	if code == 0 || !strings.Contains(out, "is damaged") || !strings.Contains(out, "credvault restore") {
		t.Fatalf("serve on a damaged database: exit %d, output:\n%s\nwant a non-zero exit saying the file is damaged and to restore a backup", code, out)
	}
	t.Logf("serve on a damaged database: exit %d: %s", code, strings.TrimSpace(p2.stderr.String()))
	if after := dbtest.FileHash(t, dbPath); !bytes.Equal(before, after) {
		t.Error("the damaged database file changed")
	}
}

// TestEmptyDatabaseFileRefused: a zero-length credvault.db is not turned
// into a new, empty vault; serve refuses it and leaves it as it is.
func TestEmptyDatabaseFileRefused(t *testing.T) {
	wantEngine(t, "sqlite")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "credvault.db")
	if err := os.WriteFile(dbPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, "server-on-empty-file", server{DataDir: dir, DatabaseURL: dbPath, BootstrapKey: newBootstrapKey()})
	code, err := p.wait(startTimeout)
	if err != nil {
		t.Fatalf("serve on an empty database file: %v (want it to refuse to start)", err)
	}
	out := p.stderr.String() + p.stdout.String()
	if code == 0 || !strings.Contains(out, "exists but is empty") {
		t.Fatalf("serve on an empty database file: exit %d, output:\n%s", code, out)
	}
	fi, err := os.Stat(dbPath)
	if err != nil || fi.Size() != 0 {
		t.Fatalf("the empty database file: %v, size %d; want it left empty", err, fi.Size())
	}
	if _, err := os.Stat(dbPath + "-wal"); !os.IsNotExist(err) {
		t.Errorf("a WAL was created next to the empty file (%v)", err)
	}
}

// stop stops the server with SIGTERM (a clean close checkpoints the WAL
// into the database file) and waits for it to exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code, err := p.wait(exitTimeout); err != nil || code != 0 {
		t.Fatalf("%s: stop: exit %d, %v", p.name, code, err)
	}
}
