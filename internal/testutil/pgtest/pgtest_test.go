package pgtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestURLGivesSeparateEmptyDatabases(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u1, u2 := URL(t), URL(t)
	if u1 == u2 {
		t.Fatalf("URL returned the same database twice: %s", u1)
	}
	c1, c2 := connect(t, u1), connect(t, u2)

	var db1, db2 string
	if err := c1.QueryRow(ctx, "SELECT current_database()").Scan(&db1); err != nil {
		t.Fatal(err)
	}
	if err := c2.QueryRow(ctx, "SELECT current_database()").Scan(&db2); err != nil {
		t.Fatal(err)
	}
	if db1 == db2 || !strings.HasPrefix(db1, "cvtest_") {
		t.Fatalf("databases: %q and %q", db1, db2)
	}

	var n int
	if err := c1.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("new database has %d user tables, want 0", n)
	}

	if _, err := c1.Exec(ctx, "CREATE TABLE only_in_one (id int PRIMARY KEY); INSERT INTO only_in_one VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var seen1, seen2 *string
	if err := c1.QueryRow(ctx, "SELECT to_regclass('public.only_in_one')::text").Scan(&seen1); err != nil {
		t.Fatal(err)
	}
	if err := c2.QueryRow(ctx, "SELECT to_regclass('public.only_in_one')::text").Scan(&seen2); err != nil {
		t.Fatal(err)
	}
	if seen1 == nil {
		t.Fatal("table not visible in the database that created it")
	}
	if seen2 != nil {
		t.Fatalf("table created in %s is visible in %s", db1, db2)
	}
	if _, err := c2.Exec(ctx, "SELECT * FROM only_in_one"); err == nil {
		t.Fatal("querying the other database's table succeeded")
	}
}

func TestServerDoesNotRunAsRoot(t *testing.T) {
	c := NewCluster(t)
	pid := postmasterPID(t, c)
	fi, err := os.Stat("/proc/" + strconv.Itoa(pid))
	if err != nil {
		t.Fatal(err)
	}
	uid := fi.Sys().(*syscall.Stat_t).Uid
	if uid == 0 {
		t.Fatalf("postmaster %d runs as root", pid)
	}
	t.Logf("postmaster %d runs as uid %d (we are uid %d); data dir %s", pid, uid, os.Geteuid(), c.data)
}

func TestClusterStopStart(t *testing.T) {
	c := NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.CreateDB(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	url := c.URL("app")
	conn := connect(t, url)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	port := c.Port()

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("ping succeeded on a connection to a stopped server")
	}
	dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
	if c2, err := pgx.Connect(dctx, url); err == nil {
		c2.Close(context.Background())
		dcancel()
		t.Fatal("connecting to a stopped server succeeded")
	}
	dcancel()
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if c.Port() != port {
		t.Fatalf("port changed across restart: %d -> %d", port, c.Port())
	}
	conn2 := connect(t, url)
	var v string
	if err := conn2.QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "kept" {
		t.Fatalf("after restart got %q", v)
	}
	if err := c.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
}

// TestCrashedTestProcessLeavesNothing runs a child test process that starts a
// cluster and then SIGKILLs itself (no cleanup runs), and checks that the
// watchdog stops the server and removes its directory.
func TestCrashedTestProcessLeavesNothing(t *testing.T) {
	if os.Getenv("PGTEST_CRASH_CHILD") == "1" {
		c := NewCluster(t)
		os.Stdout.WriteString("CLUSTER " + c.root + " " + strconv.Itoa(c.Port()) + "\n")
		os.Stdout.Sync()
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	if testing.Short() {
		t.Skip("short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestCrashedTestProcessLeavesNothing$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PGTEST_CRASH_CHILD=1")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("child: want to be killed, got err=%v\n%s", err, out)
	}
	var root string
	var port int
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 3 && f[0] == "CLUSTER" {
			root = f[1]
			port, _ = strconv.Atoi(f[2])
		}
	}
	if root == "" || port == 0 {
		t.Fatalf("child did not report its cluster:\n%s", out)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, statErr := os.Stat(root)
		conn, dialErr := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
		if dialErr == nil {
			conn.Close()
		}
		if os.IsNotExist(statErr) && dialErr != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("60s after the test process died: dir %s stat err=%v, port %d dial err=%v", root, statErr, port, dialErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func postmasterPID(t *testing.T, c *Cluster) int {
	t.Helper()
	b, err := os.ReadFile(c.data + "/postmaster.pid")
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

type recordTB struct {
	testing.TB
	skipped, fatal string
}

func (r *recordTB) Helper()                          {}
func (r *recordTB) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }
func (r *recordTB) Fatalf(format string, args ...any) {
	r.fatal = fmt.Sprintf(format, args...)
}

func TestMissingBinariesMessage(t *testing.T) {
	err := errors.New("PostgreSQL server programs initdb and pg_ctl not found")

	t.Setenv("CREDVAULT_TEST_SKIP_POSTGRES", "")
	r := &recordTB{TB: t}
	missingBinaries(r, err)
	if r.skipped != "" || !strings.Contains(r.fatal, "apt-get install -y postgresql") {
		t.Errorf("without CREDVAULT_TEST_SKIP_POSTGRES: skipped=%q fatal=%q", r.skipped, r.fatal)
	}

	t.Setenv("CREDVAULT_TEST_SKIP_POSTGRES", "1")
	r = &recordTB{TB: t}
	missingBinaries(r, err)
	if r.skipped == "" {
		t.Errorf("with CREDVAULT_TEST_SKIP_POSTGRES=1: not skipped (fatal=%q)", r.fatal)
	}
}
