package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type binaries struct {
	initdb string
	pgctl  string
}

var (
	findOnce sync.Once
	found    binaries
	findErr  error
)

// findBinaries locates initdb and pg_ctl, in this order:
//  1. $CREDVAULT_TEST_PG_BINDIR
//  2. `pg_config --bindir` (only if the server programs are really there:
//     Debian's pg_config comes with libpq-dev, which does not need the server)
//  3. /usr/lib/postgresql/<version>/bin, newest version first (Debian/Ubuntu)
//  4. $PATH
func findBinaries() (binaries, error) {
	findOnce.Do(func() { found, findErr = searchBinaries() })
	return found, findErr
}

func searchBinaries() (binaries, error) {
	var looked []string
	try := func(dir string) (binaries, bool) {
		if dir == "" {
			return binaries{}, false
		}
		looked = append(looked, dir)
		b := binaries{initdb: filepath.Join(dir, "initdb"), pgctl: filepath.Join(dir, "pg_ctl")}
		return b, isExecutable(b.initdb) && isExecutable(b.pgctl)
	}
	if b, ok := try(os.Getenv("CREDVAULT_TEST_PG_BINDIR")); ok {
		return b, nil
	}
	if pgConfig, err := exec.LookPath("pg_config"); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := exec.CommandContext(ctx, pgConfig, "--bindir").Output()
		cancel()
		if err == nil {
			if b, ok := try(strings.TrimSpace(string(out))); ok {
				return b, nil
			}
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, dir := range dirs {
		if b, ok := try(dir); ok {
			return b, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	pgctl, err2 := exec.LookPath("pg_ctl")
	looked = append(looked, "$PATH")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, pgctl: pgctl}, nil
	}
	return binaries{}, fmt.Errorf("PostgreSQL server programs initdb and pg_ctl not found (looked in %s)", strings.Join(looked, ", "))
}

// versionOf turns /usr/lib/postgresql/15/bin into 15000, 9.6 into 9006.
func versionOf(dir string) int {
	v := filepath.Base(filepath.Dir(dir))
	major, minor, _ := strings.Cut(v, ".")
	a, err := strconv.Atoi(major)
	if err != nil {
		return -1
	}
	b, _ := strconv.Atoi(minor)
	return a*1000 + b
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// missingBinaries ends the test when no server programs exist: skipped with
// CREDVAULT_TEST_SKIP_POSTGRES=1, failed with install instructions otherwise.
func missingBinaries(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CREDVAULT_TEST_SKIP_POSTGRES") == "1" {
		tb.Skipf("pgtest: %v; skipping (CREDVAULT_TEST_SKIP_POSTGRES=1)", err)
	}
	tb.Fatalf("pgtest: %v.\n"+
		"This test needs a real PostgreSQL server. Either:\n"+
		"  - install the server programs: apt-get install -y postgresql  (Debian/Ubuntu; ./scripts/test.sh does this itself), or\n"+
		"  - point CREDVAULT_TEST_POSTGRES_URL at a server where the test may CREATE DATABASE\n"+
		"    (e.g. postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable), or\n"+
		"  - set CREDVAULT_TEST_PG_BINDIR to the directory holding initdb and pg_ctl, or\n"+
		"  - set CREDVAULT_TEST_SKIP_POSTGRES=1 to skip the database tests.", err)
}
