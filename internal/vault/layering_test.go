package vault_test

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
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

// TestNoStoreCapabilityByAssertion: what a consumer needs from a store is
// in the interface it is given (vault.Store for the core, store.Engine for
// the binary), so that a new engine that compiles is complete. No non-test
// code in the module type-asserts a value to one of the interfaces those
// two are made of.
func TestNoStoreCapabilityByAssertion(t *testing.T) {
	fset := token.NewFileSet()
	files := map[string]*ast.File{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		files[path] = f
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The interfaces vault.Store and store.Engine embed, transitively.
	embeds := map[string][]string{}
	for path, f := range files {
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir != "../../internal/vault" && dir != "../../internal/store" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			if it, ok := ts.Type.(*ast.InterfaceType); ok {
				embeds[ts.Name.Name] = nil
				for _, m := range it.Methods.List {
					if len(m.Names) == 0 {
						embeds[ts.Name.Name] = append(embeds[ts.Name.Name], typeName(m.Type))
					}
				}
			}
			return false
		})
	}
	parts := map[string]bool{}
	var walk func(string)
	walk = func(name string) {
		if parts[name] {
			return
		}
		parts[name] = true
		for _, e := range embeds[name] {
			walk(e)
		}
	}
	walk("Store")
	walk("Engine")
	if !parts["CredentialStore"] || !parts["Backupper"] {
		t.Fatalf("did not find vault.Store and store.Engine's parts: %v", parts)
	}
	for _, f := range files {
		ast.Inspect(f, func(n ast.Node) bool {
			if ta, ok := n.(*ast.TypeAssertExpr); ok && ta.Type != nil && parts[typeName(ta.Type)] {
				t.Errorf("%s: a store capability reached by type assertion (.(%s)): put it in the interface the consumer is given", fset.Position(ta.Pos()), typeName(ta.Type))
			}
			return true
		})
	}
}

// typeName is the name of an interface type expression: X or pkg.X.
func typeName(e ast.Expr) string {
	switch e := e.(type) {
	case *ast.Ident:
		return e.Name
	case *ast.SelectorExpr:
		return e.Sel.Name
	}
	return ""
}
