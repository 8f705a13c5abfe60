package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupRestore takes `credvault backup` of a serving database while a
// client keeps writing, restores it into a fresh database (same engine, and
// SQLite → PostgreSQL), serves the restored database with the same master
// key and checks that:
//
//   - every credential acknowledged before the backup started is there and
//     decrypts to the same bytes, and the admin key still works;
//   - the backup is a consistent snapshot: of the credentials the writer
//     created one after another, the restored ones are exactly a prefix of
//     that sequence, including everything acknowledged before the backup
//     started and nothing the writer sent after it finished;
//   - the backup file holds no payload plaintext (gunzipped and searched);
//   - a restore into a non-empty database is refused and changes nothing;
//   - a truncated backup (cut mid-stream, or at a line boundary without its
//     trailer) restores nothing (edited backups: cmd/credvault's
//     TestBackupIsAuthenticated).
func TestBackupRestore(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"sqlite", "sqlite"},
		{"postgres", "postgres"},
		{"sqlite", "postgres"},
	} {
		t.Run(tc.from+"_to_"+tc.to, func(t *testing.T) {
			wantEngine(t, tc.from)
			wantEngine(t, tc.to)
			runBackupRestore(t, tc.from, tc.to)
		})
	}
}

func runBackupRestore(t *testing.T, from, to string) {
	srcURL := newDatabase(t, from)
	key := newBootstrapKey()
	src := start(t, "source", server{DatabaseURL: srcURL, BootstrapKey: key})
	c := newClient(src.URL, key)

	// Acknowledged before the backup starts. Payloads carry a marker that
	// must never appear in the backup file.
	const marker = "PLAINTEXT-MARKER-"
	want := map[string]string{} // name → payload
	for i := range 150 {
		name := fmt.Sprintf("pre-%03d", i)
		payload := randomText(marker)
		c.create(t, name, payload)
		want[name] = payload
	}
	// Some of them updated (the new payload must be in the restore) and
	// some deleted (must stay deleted).
	ids := c.listAll(t)
	for i := range 20 {
		name := fmt.Sprintf("pre-%03d", i)
		payload := randomText(marker)
		c.must(t, 200, "PATCH", "/v5/credentials/"+ids[name], map[string]any{"payload": payload})
		want[name] = payload
	}
	var deleted []string
	for i := 20; i < 30; i++ {
		name := fmt.Sprintf("pre-%03d", i)
		c.must(t, 200, "DELETE", "/v5/credentials/"+ids[name], nil)
		delete(want, name)
		deleted = append(deleted, name)
	}

	// A writer creates live-000000, live-000001, … one after another
	// during the backup. sent = creates started; acked = creates acknowledged.
	var (
		sent, acked atomic.Int64
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		livePayload sync.Map // name → payload
		writerErr   atomic.Value
	)
	wc := newClient(src.URL, key)
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("live-%06d", i)
			payload := randomText(marker)
			livePayload.Store(name, payload)
			sent.Store(int64(i + 1))
			ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
			r, err := wc.do(ctx, "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": payload})
			cancel()
			if err != nil || r.Status != 200 {
				writerErr.Store(fmt.Sprintf("create %s: %v %v", name, err, r))
				return
			}
			acked.Store(int64(i + 1))
		}
	})
	defer stopAndWait(stop, &wg)
	// Let the writer get going, so that the backup overlaps writes.
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load() < 20 {
		if time.Now().After(deadline) {
			t.Fatalf("writer made no progress: %v", writerErr.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}

	backup := filepath.Join(t.TempDir(), "credvault.backup")
	ackedAtStart := acked.Load()
	out, errOut, code := runCLI(t, 2*time.Minute, nil, "backup", "--out", backup, "--database-url", srcURL, "--data-dir", t.TempDir())
	sentAtEnd := sent.Load()
	if code != 0 {
		t.Fatalf("backup: exit %d: %s%s", code, out, errOut)
	}
	stopAndWait(stop, &wg)
	if e := writerErr.Load(); e != nil {
		t.Fatalf("writer: %v", e)
	}
	t.Logf("backup: %s (writer: %d creates acknowledged when it started, %d sent when it ended, %d in all)",
		strings.TrimSpace(out), ackedAtStart, sentAtEnd, acked.Load())

	// No plaintext in the file.
	raw, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	plain := gunzip(t, raw)
	if bytes.Contains(plain, []byte(marker)) {
		t.Fatalf("the backup contains payload plaintext (marker %q found)", marker)
	}
	for _, p := range want {
		if bytes.Contains(plain, []byte(p)) {
			t.Fatalf("the backup contains the payload %q", p)
		}
	}
	if bytes.Contains(plain, []byte(key)) {
		t.Fatal("the backup contains the admin API key")
	}

	// Restore into a fresh database and serve it with the same master key.
	dstURL := newDatabase(t, to)
	out, errOut, code = runCLI(t, 2*time.Minute, nil, "restore", "--in", backup, "--database-url", dstURL, "--data-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("restore: exit %d: %s%s", code, out, errOut)
	}
	t.Logf("restore (%s → %s): %s", from, to, strings.TrimSpace(out))
	if rep, err := checkIntegrity(dstURL); err != nil {
		t.Fatalf("restored database: %v", err)
	} else if rep.Credentials == 0 {
		t.Fatal("restored database has no credentials")
	}
	if out, errOut, code := runCLI(t, time.Minute, nil, "audit", "verify", "--database-url", dstURL, "--data-dir", t.TempDir()); code != 0 {
		t.Errorf("audit verify on the restored database: exit %d: %s%s", code, out, errOut)
	}
	dst := start(t, "restored", server{DatabaseURL: dstURL})
	rc := newClient(dst.URL, key) // the admin key came with the backup
	restored := rc.listAll(t)
	for name, payload := range want {
		id, ok := restored[name]
		if !ok {
			t.Errorf("%s (acknowledged before the backup) is missing after restore", name)
			continue
		}
		if got := rc.secret(t, id); got != payload {
			t.Errorf("%s decrypts to %q after restore, want %q", name, got, payload)
		}
	}
	for _, name := range deleted {
		if _, ok := restored[name]; ok {
			t.Errorf("%s was deleted before the backup but is back after restore", name)
		}
	}
	// Snapshot consistency of the writer's sequence.
	var live int64
	for name := range restored {
		if strings.HasPrefix(name, "live-") {
			live++
		}
	}
	for i := range live {
		name := fmt.Sprintf("live-%06d", i)
		id, ok := restored[name]
		if !ok {
			t.Errorf("restored %d of the writer's credentials but %s is missing: not a consistent snapshot", live, name)
			break
		}
		p, _ := livePayload.Load(name)
		if got := rc.secret(t, id); got != p {
			t.Errorf("%s decrypts to %q after restore, want %q", name, got, p)
		}
	}
	if live < ackedAtStart || live > sentAtEnd {
		t.Errorf("restored %d of the writer's credentials; want between %d (acknowledged before the backup) and %d (sent before it ended)", live, ackedAtStart, sentAtEnd)
	}
	t.Logf("restored database serves %d credentials (%d written before the backup by the setup, %d of the writer's); all decrypt with the master key",
		len(restored), len(want), live)

	// Restoring into a non-empty database is refused and changes nothing.
	before, err := countRows(dstURL, "credentials")
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code = runCLI(t, time.Minute, nil, "restore", "--in", backup, "--database-url", dstURL, "--data-dir", t.TempDir())
	if code == 0 || !strings.Contains(errOut, "not empty") {
		t.Errorf("restore into a non-empty database: exit %d, stderr %q; want a refusal naming it", code, errOut)
	}
	if after, err := countRows(dstURL, "credentials"); err != nil || after != before {
		t.Errorf("refused restore changed the database: %d credentials before, %d after (%v)", before, after, err)
	}

	// Truncated backups restore nothing.
	truncated := map[string][]byte{
		"cut in the middle of the gzip stream": raw[:len(raw)/2],
		"cut at a line boundary, no trailer":   gzipBytes(t, plain[:bytes.LastIndexByte(plain[:len(plain)-1], '\n')+1]),
	}
	for what, b := range truncated {
		f := filepath.Join(t.TempDir(), "truncated.backup")
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
		u := newDatabase(t, to)
		_, errOut, code := runCLI(t, time.Minute, nil, "restore", "--in", f, "--database-url", u, "--data-dir", t.TempDir())
		if code == 0 {
			t.Errorf("%s: restore succeeded", what)
			continue
		}
		// The backup is verified before the database is even created, so
		// there is either no table at all or an empty one.
		for _, table := range []string{"accounts", "credentials", "api_keys"} {
			if n, err := countRows(u, table); (err != nil && !isNoSuchTable(err)) || n != 0 {
				t.Errorf("%s: %s has %d rows after the failed restore (%v); want none", what, table, n, err)
			}
		}
		t.Logf("%s: refused: %s", what, strings.TrimSpace(errOut))
	}
}

// isNoSuchTable reports whether err says the table does not exist (SQLite
// or PostgreSQL).
func isNoSuchTable(err error) bool {
	s := err.Error()
	return strings.Contains(s, "no such table") || strings.Contains(s, "does not exist") || strings.Contains(s, "unable to open database file")
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("backup is not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip backup: %v", err)
	}
	return out
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
