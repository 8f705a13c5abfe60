// Package pgtest gives tests real PostgreSQL databases.
//
// URL returns the URL of a brand-new, empty database for one test. The server
// is the one named by CREDVAULT_TEST_POSTGRES_URL (./scripts/test.sh starts
// one throwaway cluster and sets it for the whole run); without it, the first
// URL call starts a private throwaway cluster for the test process (initdb +
// pg_ctl into a temp dir, 127.0.0.1 on a free port, trust auth).
//
// A package using URL should stop that cluster when its tests end:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// (If it does not, or the test process dies — a panic, a -timeout, SIGKILL —
// a small watchdog process stops the cluster and removes its directory as soon
// as the test process is gone.)
//
// NewCluster starts a private cluster owned by one test, which can Stop and
// Start it, e.g. to take the database away under load.
//
// Running as root: initdb and postgres refuse to run as root, so when the
// effective uid is 0 they are run as the "postgres" system user (created by
// Debian's postgresql packages; "nobody" if it does not exist) through
// SysProcAttr.Credential, in a temp dir owned by that user.
//
// Environment:
//
//	CREDVAULT_TEST_POSTGRES_URL   server to create test databases on (superuser or CREATEDB role)
//	CREDVAULT_TEST_SKIP_POSTGRES=1  skip instead of failing when no server programs are installed
//	CREDVAULT_TEST_PG_BINDIR      directory with initdb and pg_ctl (else pg_config, /usr/lib/postgresql/*/bin, $PATH)
//	CREDVAULT_TEST_KEEP_DB=1      do not drop test databases at the end of each test
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
)

// EnvURL names the variable that points the tests at an existing server.
const EnvURL = "CREDVAULT_TEST_POSTGRES_URL"

var shared struct {
	once    sync.Once
	mu      sync.Mutex
	cluster *Cluster
	err     error
	missing bool // err is "no server programs"
}

// URL returns a postgres:// URL for a new, empty database created for this
// test (CREATE DATABASE with a random name), on the server named by
// CREDVAULT_TEST_POSTGRES_URL or else on this test process's private
// throwaway cluster, started on first use. The database is dropped (WITH
// FORCE) when the test ends, after the test's own cleanups.
func URL(tb testing.TB) string {
	tb.Helper()
	adminURL := os.Getenv(EnvURL)
	if adminURL != "" {
		u, err := url.Parse(adminURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			tb.Fatalf("pgtest: %s must be a postgres:// URL, got %q", EnvURL, redact(adminURL))
		}
	} else {
		c, err, missing := sharedCluster()
		if missing {
			missingBinaries(tb, err)
			return ""
		}
		if err != nil {
			tb.Fatalf("pgtest: starting the shared throwaway PostgreSQL cluster: %v", err)
			return ""
		}
		adminURL = c.URL("postgres")
	}

	name := "cvtest_" + randomHex(8)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := createDatabase(ctx, adminURL, name); err != nil {
		tb.Fatalf("pgtest: %v", err)
		return ""
	}
	if os.Getenv("CREDVAULT_TEST_KEEP_DB") != "1" {
		tb.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
			defer cancel()
			if err := dropDatabase(ctx, adminURL, name); err != nil {
				tb.Logf("pgtest: dropping test database %s: %v", name, err)
			}
		})
	}
	return withDatabase(adminURL, name)
}

// Main runs the tests, stops the shared throwaway cluster (if URL started
// one) whether or not the tests passed, and exits with the tests' code. Call
// it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping the shared PostgreSQL cluster: %v\n", err)
	}
	os.Exit(code)
}

// StopShared stops and removes the shared cluster started by URL, if any.
// Main calls it; a TestMain that needs its own shape can call it after m.Run.
// URL must not be called afterwards.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.cluster == nil {
		return nil
	}
	err := shared.cluster.destroy()
	shared.cluster = nil
	return err
}

func sharedCluster() (*Cluster, error, bool) {
	shared.once.Do(func() {
		bins, err := findBinaries()
		if err != nil {
			shared.err, shared.missing = err, true
			return
		}
		c, err := startCluster(bins)
		shared.mu.Lock()
		shared.cluster, shared.err = c, err
		shared.mu.Unlock()
	})
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.err == nil && shared.cluster == nil {
		return nil, fmt.Errorf("the shared cluster was already stopped (URL called after pgtest.Main/StopShared)"), false
	}
	return shared.cluster, shared.err, shared.missing
}

// withDatabase replaces the database name in a postgres:// URL.
func withDatabase(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err) // validated by the caller
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
