package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Deadlines for the slow steps. Every wait in this package is bounded by one
// of these; nothing sleeps blindly.
const (
	initdbTimeout  = 2 * time.Minute
	startTimeout   = 60 * time.Second // pg_ctl -w -t, plus the first connection
	stopTimeout    = 60 * time.Second
	connectTimeout = 30 * time.Second
)

// superuser is the bootstrap superuser initdb creates (-U). Authentication on
// loopback is "trust", so the URL carries no password.
const superuser = "postgres"

// Cluster is a private, throwaway PostgreSQL cluster: its own data directory
// in a temporary directory, listening only on 127.0.0.1 (and a unix socket
// inside that directory), started and stopped with pg_ctl.
//
// A Cluster from NewCluster belongs to one test, which may Stop and Start it
// (same port, same data). Its methods are safe for concurrent use.
type Cluster struct {
	bins   binaries
	runAs  *syscall.Credential // nil: run the PostgreSQL programs as ourselves
	root   string              // temp dir holding everything below
	data   string              // PGDATA
	sock   string              // unix_socket_directories
	log    string              // server log (pg_ctl -l)
	port   int
	reaper *reaper

	mu      sync.Mutex
	running bool
	removed bool
}

// NewCluster starts a private cluster for a test that needs to control the
// server itself (stop it under load, start it again). It is stopped and its
// directory removed by tb.Cleanup. Databases are created with CreateDB and
// reached with URL.
//
// When no PostgreSQL server binaries are found the test fails with install
// instructions, or is skipped if CREDVAULT_TEST_SKIP_POSTGRES=1.
func NewCluster(tb testing.TB) *Cluster {
	tb.Helper()
	bins, err := findBinaries()
	if err != nil {
		missingBinaries(tb, err)
		return nil
	}
	c, err := startCluster(bins)
	if err != nil {
		tb.Fatalf("pgtest: starting a private PostgreSQL cluster: %v", err)
		return nil
	}
	tb.Cleanup(func() {
		if err := c.destroy(); err != nil {
			tb.Errorf("pgtest: removing private PostgreSQL cluster: %v", err)
		}
	})
	return c
}

// URL returns a postgres:// URL for database dbname on this cluster, as the
// superuser over TCP on 127.0.0.1 (trust authentication, no TLS).
func (c *Cluster) URL(dbname string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(superuser),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + dbname,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the TCP port the cluster listens on (127.0.0.1 only). It does not
// change across Stop and Start.
func (c *Cluster) Port() int { return c.port }

// CreateDB creates an empty database named name (from template1). The cluster
// must be running.
func (c *Cluster) CreateDB(ctx context.Context, name string) error {
	return createDatabase(ctx, c.URL("postgres"), name)
}

// Stop shuts the server down with pg_ctl's fast mode (open sessions are
// terminated, clean checkpoint) and waits until it has exited. Stopping a
// stopped cluster is a no-op.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return errors.New("pgtest: cluster already removed")
	}
	if !c.running {
		return nil
	}
	if err := c.pgctl(stopTimeout+10*time.Second, "stop", "-D", c.data, "-m", "fast", "-w", "-t", secs(stopTimeout)); err != nil {
		return err
	}
	c.running = false
	return nil
}

// Start starts a stopped cluster again on the same port and data directory
// and waits until it accepts connections. Starting a running cluster is a
// no-op.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return errors.New("pgtest: cluster already removed")
	}
	if c.running {
		return nil
	}
	return c.startLocked()
}

func (c *Cluster) startLocked() error {
	if err := c.pgctl(startTimeout+10*time.Second, "start", "-D", c.data, "-l", c.log, "-w", "-t", secs(startTimeout)); err != nil {
		return err
	}
	c.running = true
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := waitReady(ctx, c.URL("postgres")); err != nil {
		return fmt.Errorf("server started but does not accept connections: %w%s", err, c.logTail())
	}
	return nil
}

// startCluster creates and starts a new cluster: temp dir, initdb, config,
// pg_ctl start on a free loopback port (retrying with another port if the one
// picked was taken in the meantime).
func startCluster(bins binaries) (_ *Cluster, err error) {
	c := &Cluster{bins: bins}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		if c.runAs, err = unprivilegedUser(); err != nil {
			return nil, err
		}
	}
	if c.root, err = makeRoot(c.runAs); err != nil {
		return nil, err
	}
	c.data = filepath.Join(c.root, "data")
	c.sock = filepath.Join(c.root, "sock")
	c.log = filepath.Join(c.root, "postgres.log")
	defer func() {
		if err != nil {
			_ = c.destroy()
		}
	}()
	// From here on a crash of the test process cannot leak the server: the
	// reaper stops it and removes the directory when we go away.
	if c.reaper, err = startReaper(c.root, c.data); err != nil {
		return nil, err
	}
	if err = c.mkdirOwned(c.sock); err != nil {
		return nil, err
	}
	if err = c.initdb(); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			return nil, err
		}
		if err = c.writeConfig(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		err = c.startLocked()
		c.mu.Unlock()
		if err == nil {
			return c, nil
		}
		if attempt == 2 || !strings.Contains(err.Error(), "in use") {
			return nil, err
		}
		// Someone took the port between freePort and the bind; the failed
		// postmaster has exited (pg_ctl -w saw it die). Try another port.
		c.mu.Lock()
		c.running = false
		c.mu.Unlock()
	}
}

func (c *Cluster) initdb() error {
	args := []string{
		"-D", c.data,
		"-U", superuser,
		"-A", "trust",
		"-E", "UTF8",
		"--locale=C",
		"--no-sync", // the cluster is thrown away; skip initdb's final fsync
		"--no-instructions",
	}
	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	out, err := c.command(ctx, c.bins.initdb, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", c.bins.initdb, strings.Join(args, " "), errOr(ctx, err), out)
	}
	return nil
}

// writeConfig appends our settings to postgresql.conf (later lines win, so
// rewriting the port on a retry works).
func (c *Cluster) writeConfig() error {
	conf := fmt.Sprintf(`
# --- pgtest (throwaway test cluster) ---
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 300
shared_buffers = 64MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
`, c.port, strings.ReplaceAll(c.sock, "'", "''"))
	f, err := os.OpenFile(filepath.Join(c.data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *Cluster) pgctl(timeout time.Duration, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.command(ctx, c.bins.pgctl, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl %s: %w\n%s%s", args[0], errOr(ctx, err), bytes.TrimSpace(out), c.logTail())
	}
	return nil
}

// command prepares a PostgreSQL program: as the unprivileged user when we are
// root, in our temp dir, without PG* variables from the environment.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = c.root
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if c.runAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.runAs}
		env = append(env, "HOME="+c.root)
	}
	cmd.Env = env
	// pg_ctl start leaves the postmaster running with its output redirected
	// to the log file; never wait long for stray pipe holders.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

func (c *Cluster) mkdirOwned(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if c.runAs != nil {
		return os.Chown(dir, int(c.runAs.Uid), int(c.runAs.Gid))
	}
	return nil
}

// logTail is the end of the server log, for error messages.
func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.log)
	if err != nil || len(b) == 0 {
		return ""
	}
	const max = 3000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "\n--- server log (" + c.log + ") ---\n" + string(b)
}

// destroy stops the server (fast, then immediate) and removes the directory.
func (c *Cluster) destroy() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed {
		return nil
	}
	c.removed = true
	var errs []error
	if c.data != "" {
		if _, err := os.Stat(filepath.Join(c.data, "postmaster.pid")); err == nil {
			if err := c.pgctl(stopTimeout+10*time.Second, "stop", "-D", c.data, "-m", "fast", "-w", "-t", secs(stopTimeout)); err != nil {
				if err2 := c.pgctl(stopTimeout+10*time.Second, "stop", "-D", c.data, "-m", "immediate", "-w", "-t", secs(stopTimeout)); err2 != nil {
					errs = append(errs, err, err2)
				}
			}
		}
	}
	c.running = false
	if c.root != "" {
		if err := os.RemoveAll(c.root); err != nil {
			errs = append(errs, err)
		}
	}
	if c.reaper != nil {
		c.reaper.release()
	}
	return errors.Join(errs...)
}

// unprivilegedUser picks the account PostgreSQL runs as when we are root: the
// "postgres" system user the Debian package creates, else "nobody".
func unprivilegedUser() (*syscall.Credential, error) {
	var tried []string
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			tried = append(tried, name+": "+err.Error())
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			tried = append(tried, name+": unusable uid/gid "+u.Uid+"/"+u.Gid)
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
	}
	return nil, fmt.Errorf("running as root, and initdb/postgres refuse to run as root; no unprivileged user to run them as (%s); create one, e.g. `useradd --system postgres`", strings.Join(tried, "; "))
}

// makeRoot creates the cluster's temp dir, owned by runAs if set. The
// directory (and every parent) must be reachable by that user, and short
// enough for a unix socket path (~107 bytes), so when running as root we fall
// back to /tmp if TMPDIR is unsuitable.
func makeRoot(runAs *syscall.Credential) (string, error) {
	base := os.TempDir()
	if len(base) > 60 || (runAs != nil && !traversableByOthers(base)) {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return "", err
	}
	if runAs != nil {
		if err := os.Chown(dir, int(runAs.Uid), int(runAs.Gid)); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func traversableByOthers(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls until a connection to url succeeds or ctx ends.
func waitReady(ctx context.Context, url string) error {
	var last error
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attemptCtx, url)
		cancel()
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		last = err
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// createDatabase connects to adminURL (retrying until ctx ends, in case the
// server is still starting) and creates database name.
func createDatabase(ctx context.Context, adminURL, name string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, connectTimeout)
		defer cancel()
	}
	if err := waitReady(ctx, adminURL); err != nil {
		return fmt.Errorf("connecting to %s: %w", redact(adminURL), err)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connecting to %s: %w", redact(adminURL), err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return fmt.Errorf("CREATE DATABASE %s: %w", name, err)
	}
	return nil
}

// dropDatabase drops name, terminating its remaining sessions.
func dropDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func secs(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }

// errOr reports a context deadline instead of the bare "signal: killed".
func errOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}
