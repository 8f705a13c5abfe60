package vault_test

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/credvault/credvault"

// deps lists the packages pattern depends on, as `go list -deps -json`
// reports them: package → what imports it (the first importer seen).
func deps(t *testing.T, pattern string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", pattern)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list -deps %s: %v\n%s", pattern, err, ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v", pattern, err)
	}
	by := map[string]string{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if _, ok := by[p.ImportPath]; !ok {
			by[p.ImportPath] = ""
		}
		for _, imp := range p.Imports {
			if by[imp] == "" {
				by[imp] = p.ImportPath
			}
		}
	}
	return by
}

// forbidden reports whether pkg matches one of the rules: a package path,
// or a path ending in "/" for everything under it.
func forbidden(pkg string, rules []string) bool {
	for _, r := range rules {
		if pkg == r || (strings.HasSuffix(r, "/") && (strings.HasPrefix(pkg, r) || pkg == strings.TrimSuffix(r, "/"))) {
			return true
		}
	}
	return false
}

// TestLayering guards who may import whom (in the manner of Tailscale's
// deptest), transitively: the core speaks neither HTTP nor SQL and knows no
// dialect or storage engine; a dialect knows the core, not the store; the
// web console is given its stores, it knows no engine.
func TestLayering(t *testing.T) {
	storage := []string{"database/sql", module + "/internal/store/", "modernc.org/sqlite/", "github.com/jackc/pgx/"}
	for _, c := range []struct {
		pattern string
		rules   []string
	}{
		{"./internal/vault", append([]string{"net/http", module + "/internal/api/", module + "/internal/httpx", module + "/internal/server/"}, storage...)},
		{"./internal/api/...", storage},
		{"./internal/console", []string{module + "/internal/store/sqlstore/", module + "/internal/crypto/", module + "/internal/api/", "modernc.org/sqlite/", "github.com/jackc/pgx/"}},
	} {
		t.Run(c.pattern, func(t *testing.T) {
			for pkg, importer := range deps(t, c.pattern) {
				if forbidden(pkg, c.rules) {
					t.Errorf("%s depends on %s (imported by %s)", c.pattern, pkg, importer)
				}
			}
		})
	}
}

// TestNoWireVocabulary: the core names fields, cursors and times in domain
// terms; no dialect's paths, wire field names or formats appear in it (each
// dialect renders the core's terms in its own).
func TestNoWireVocabulary(t *testing.T) {
	words := []string{"/sys/v1", "/crypto/v1", "credential_details", "starting_after", "ending_before", "20060102T150405Z"}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		n++
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, w := range words {
				if strings.Contains(line, w) {
					t.Errorf("%s:%d: dialect vocabulary %q in the core: %s", f, i+1, w, strings.TrimSpace(line))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no source files read")
	}
}
