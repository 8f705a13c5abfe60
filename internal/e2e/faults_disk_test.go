package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDiskFull runs the server on a small tmpfs volume and fills it: reads
// that need no write (list, get) go on, including with an API key whose
// first use would record its last use; writes and secret reads (which must
// be audited) are 503 with Retry-After; /readyz says writes fail; and once
// space is freed, readiness and writes come back without a restart.
// Mounting needs root (CAP_SYS_ADMIN); TestWritesFail covers the same
// behaviour with an injected write failure and always runs.
func TestDiskFull(t *testing.T) {
	wantEngine(t, "sqlite")
	vol := smallVolume(t, "8m")
	filler := filepath.Join(vol, "filler")
	writesFailScenario(t, vol,
		func(*proc) { fillVolume(t, filler) },
		func(*proc) {
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
		})
}

// TestDiskFullByWAL lets the vault's own WAL fill a small volume (it is
// below SQLite's 32 MB automatic checkpoint, so it never shrinks by
// itself), then frees some room, as an operator would: enough for the
// database to take in the WAL's pages. The vault checkpoints the WAL into
// the database and truncates it, which gives the volume the WAL's room
// back, and writes go on.
func TestDiskFullByWAL(t *testing.T) {
	wantEngine(t, "sqlite")
	vol := smallVolume(t, "12m")
	reserve := filepath.Join(vol, "reserve")
	if err := os.WriteFile(reserve, make([]byte, 4<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(vol, "credvault.db")
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: dbPath, DataDir: vol, BootstrapKey: key, Args: []string{"--db-timeout", "2s"}})
	c := newClient(p.URL, key)
	payload := strings.Repeat("p", 16<<10)
	created := 0
	for ; ; created++ {
		if created == 2000 {
			t.Fatalf("the WAL did not fill a 12 MB volume after %d creates", created)
		}
		r, _, err := c.doH("POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("c-%04d", created), "payload": payload})
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == 503 {
			break
		}
		if r.Status != 200 {
			t.Fatalf("create %d: %d %s", created, r.Status, r.Body)
		}
	}
	wal := fileSize(t, dbPath+"-wal")
	t.Logf("volume full after %d creates; WAL %d KiB, database %d KiB", created, wal>>10, fileSize(t, dbPath)>>10)
	if st, _ := readyz(t, p.URL); st != 503 {
		t.Fatalf("/readyz with a full volume: %d, want 503\n%s", st, tail(p.stdout.String(), 3000))
	}
	c.must(t, 200, "GET", "/v5/credentials?limit=5", nil)

	if err := os.Remove(reserve); err != nil {
		t.Fatal(err)
	}
	waitReadyz(t, p.URL, 200, 15*time.Second)
	if after := fileSize(t, dbPath+"-wal"); after > wal/4 {
		t.Errorf("WAL %d KiB after recovery, want it checkpointed and truncated (was %d KiB)", after>>10, wal>>10)
	}
	for i := range 20 {
		c.create(t, fmt.Sprintf("after-%02d", i), payload)
	}
	if n := len(c.listAll(t)); n != created+20 {
		t.Errorf("%d credentials listed, want %d", n, created+20)
	}
}

// smallVolume mounts a tmpfs of the given size in a temporary directory for
// the test, or skips the test if mounting is not possible.
func smallVolume(t *testing.T, size string) string {
	t.Helper()
	vol := filepath.Join(t.TempDir(), "vol")
	if err := os.Mkdir(vol, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", vol, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		t.Skipf("cannot mount a small tmpfs volume (%v): this needs root with CAP_SYS_ADMIN; TestWritesFail covers writes failing with an injected failure", err)
	}
	// Registered after t.TempDir, so it runs before the directory's
	// removal; servers started later are killed before it runs.
	t.Cleanup(func() {
		if err := syscall.Unmount(vol, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", vol, err)
		}
	})
	return vol
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestWritesFail is TestDiskFull with the failure injected at the system
// call: the server's file size limit (RLIMIT_FSIZE) is lowered to one byte,
// so every write SQLite makes to the database or its WAL fails (EFBIG, an
// I/O error to SQLite) while reads go on; raising it again frees the
// "disk".
func TestWritesFail(t *testing.T) {
	wantEngine(t, "sqlite")
	setLimit := func(p *proc, cur uint64) {
		lim := &unix.Rlimit{Cur: cur, Max: unix.RLIM_INFINITY}
		if err := unix.Prlimit(p.cmd.Process.Pid, unix.RLIMIT_FSIZE, lim, nil); err != nil {
			t.Fatalf("prlimit: %v", err)
		}
	}
	writesFailScenario(t, t.TempDir(),
		func(p *proc) { setLimit(p, 1) },
		func(p *proc) { setLimit(p, unix.RLIM_INFINITY) })
}

// writesFailScenario serves a SQLite vault from dir, makes its writes fail
// with fail, checks what must go on and what must not, then calls recover
// and checks that the vault recovers by itself.
func writesFailScenario(t *testing.T, dir string, fail, recover func(*proc)) {
	dbPath := filepath.Join(dir, "credvault.db")
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: dbPath, DataDir: dir, BootstrapKey: key, Args: []string{"--db-timeout", "2s"}})
	c := newClient(p.URL, key)
	payloads, ids := c.createBefore(t, 10)
	// A key used for the first time while writes fail: authentication wants
	// to record its last use.
	fresh := newClient(p.URL, newAPIKey(t, dbPath, dir))

	fail(p)

	for _, cl := range []*client{fresh, c} {
		cl.must(t, 200, "GET", "/v5/credentials?limit=5", nil)
		cl.must(t, 200, "GET", "/v5/credentials/"+ids[0], nil)
	}
	r, _, err := c.doH("POST", "/v5/credentials", map[string]any{"type": "key", "name": "while-failing", "payload": "x"})
	if err != nil || r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("create while writes fail: %v %+v, want 503 with Retry-After", err, r)
	}
	// A secret read must be audited first: no record, no plaintext.
	r, _, err = c.doH("POST", "/v5/credentials/"+ids[1]+"/secret", nil)
	if err != nil || r.Status != 503 || strings.Contains(string(r.Body), payloads[ids[1]]) {
		t.Fatalf("decrypt while writes fail: %v %+v, want 503 without the payload", err, r)
	}
	if st, reason := readyz(t, p.URL); st != 503 || reason != "writes to the database fail" {
		t.Fatalf("/readyz while writes fail: %d %q, want 503 \"writes to the database fail\"", st, reason)
	}
	fresh.must(t, 200, "GET", "/v5/credentials?limit=5", nil) // still

	recover(p)

	took := waitReadyz(t, p.URL, 200, 15*time.Second)
	t.Logf("/readyz 200 %s after writes could succeed again", took.Round(time.Millisecond))
	id := c.create(t, "after-recovery", "y")
	if got := c.secret(t, id); got != "y" {
		t.Fatalf("after recovery: decrypt %q, want y", got)
	}
	for id, payload := range payloads {
		if got := c.secret(t, id); got != payload {
			t.Errorf("after recovery %s decrypts to %q, want %q", id, got, payload)
		}
	}
	if names := c.listAll(t); len(names) != len(payloads)+1 {
		t.Errorf("after recovery %d credentials listed, want %d (the refused create must not exist)", len(names), len(payloads)+1)
	}
}

// newAPIKey creates a second API key for the admin principal through the
// CLI (acting on the database directly) and returns it.
func newAPIKey(t *testing.T, dbURL, dataDir string) string {
	t.Helper()
	flags := []string{"--database-url", dbURL, "--data-dir", dataDir}
	out, stderr, code := runCLI(t, 30*time.Second, nil, append([]string{"principal", "list"}, flags...)...)
	if code != 0 {
		t.Fatalf("principal list: exit %d: %s", code, stderr)
	}
	var admin string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[2] == "admin" {
			admin = f[0]
		}
	}
	if admin == "" {
		t.Fatalf("principal list: no admin principal in\n%s", out)
	}
	out, stderr, code = runCLI(t, 30*time.Second, nil, append([]string{"apikey", "create", admin, "--name", "fresh"}, flags...)...)
	if code != 0 {
		t.Fatalf("apikey create: exit %d: %s", code, stderr)
	}
	// stdout holds the key alone (details go to stderr).
	k := strings.TrimSpace(out)
	if k == "" || strings.ContainsAny(k, " \n") {
		t.Fatalf("apikey create: want the key alone on stdout, got\n%s", out)
	}
	return k
}

// fillVolume writes path until the file system holding it is full.
func fillVolume(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 512, 1} {
		buf := make([]byte, size)
		for {
			if _, err := f.Write(buf); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("filling the volume: %v", err)
				}
				break
			}
		}
	}
}

// TestSQLiteWriteLockHeld: while another process holds the SQLite write
// lock (a long restore or admin command), writes wait at most half of
// --db-timeout and are then 503 with Retry-After; reads go on; /readyz stays
// 200 (nothing is wrong with the database); writes resume when the lock is
// released.
func TestSQLiteWriteLockHeld(t *testing.T) {
	wantEngine(t, "sqlite")
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "credvault.db")
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: dbPath, DataDir: dir, BootstrapKey: key, Args: []string{"--db-timeout", "2s"}})
	c := newClient(p.URL, key)
	id := c.create(t, "before", "x")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	other, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	r, took, err := c.doH("POST", "/v5/credentials", map[string]any{"type": "key", "name": "while-locked", "payload": "y"})
	if err != nil || r.Status != 503 || r.Header.Get("Retry-After") == "" || took > 3*time.Second {
		t.Fatalf("create while another process holds the write lock: %v %+v after %s, want 503 with Retry-After within 3s", err, r, took)
	}
	c.must(t, 200, "GET", "/v5/credentials/"+id, nil)
	c.must(t, 200, "GET", "/v5/credentials?limit=5", nil)
	if st, reason := readyz(t, p.URL); st != 200 {
		t.Errorf("/readyz while another process holds the write lock: %d %s, want 200", st, reason)
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	c.create(t, "after", "z")
}
