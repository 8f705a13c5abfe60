package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cli runs one credvault command in-process, as main does, with an
// environment of its own (no CREDVAULT_* variable of the test process).
func cli(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	err = run(ctx, args, func(k string) string { return env[k] }, &out, &errb)
	return out.String(), errb.String(), err
}

// vaultArgs points a command at v's database and data directory (where its
// development master key is).
func vaultArgs(v *vaulttest.Vault, args ...string) []string {
	return append(args, "--database-url", v.DatabaseURL, "--data-dir", v.DataDir)
}

// newDatabaseURL returns the URL of a database that does not exist yet
// (SQLite: a path in a new directory; PostgreSQL: a new database without
// credvault's schema).
func newDatabaseURL(t *testing.T, engine string) string {
	if engine == sqlstore.Postgres {
		return pgtest.URL(t)
	}
	return filepath.Join(t.TempDir(), "credvault.db")
}

// wantNoDatabase fails unless dsn still holds no credvault database.
func wantNoDatabase(t *testing.T, dsn string) {
	t.Helper()
	db, err := sqlstore.OpenExisting(context.Background(), dsn)
	if err == nil {
		db.Close()
		t.Fatalf("a database was created at %s", dsn)
	}
	if !errors.Is(err, sqlstore.ErrNoDatabase) {
		t.Fatalf("checking %s: %v", dsn, err)
	}
}

// TestAdminCommandsRefuseMissingDatabase: every command but serve and
// restore fails clearly when pointed at a directory or database without a
// vault, and creates nothing there (hardening 8.11, reliability 9.6).
func TestAdminCommandsRefuseMissingDatabase(t *testing.T) {
	commands := [][]string{
		{"account", "list"},
		{"account", "create", "acme"},
		{"principal", "list"},
		{"principal", "create", "bot", "--account", "x"},
		{"principal", "grant", "p", "a"},
		{"apikey", "list", "p"},
		{"apikey", "create", "p"},
		{"apikey", "revoke", "k"},
		{"audit", "verify"},
		{"audit", "export"},
		{"backup", "--out", "BACKUP"},
		{"rekey", "--grace", "1ms"},
	}
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		for _, c := range commands {
			t.Run(strings.Join(c[:min(2, len(c))], "_"), func(t *testing.T) {
				dir := t.TempDir()
				backup := filepath.Join(dir, "out.cvbak")
				args := make([]string, len(c))
				for i, a := range c {
					args[i] = strings.ReplaceAll(a, "BACKUP", backup)
				}
				if engine == sqlstore.Postgres {
					dsn := newDatabaseURL(t, engine)
					// A key, so that only the missing database can fail.
					keyFile := filepath.Join(dir, "master-key.json")
					if _, _, err := cli(t, nil, "keygen", "--out", keyFile); err != nil {
						t.Fatal(err)
					}
					_, _, err := cli(t, nil, append(args, "--data-dir", dir, "--database-url", dsn)...)
					if err == nil || !strings.Contains(err.Error(), "no credvault database") || !strings.Contains(err.Error(), "--data-dir") {
						t.Fatalf("err = %v; want a refusal naming the missing database and --data-dir", err)
					}
					wantNoDatabase(t, dsn)
				} else {
					_, _, err := cli(t, nil, append(args, "--data-dir", dir)...)
					if err == nil || !strings.Contains(err.Error(), "no credvault database") || !strings.Contains(err.Error(), "--data-dir") {
						t.Fatalf("err = %v; want a refusal naming the missing database and --data-dir", err)
					}
					entries, _ := os.ReadDir(dir)
					for _, e := range entries {
						t.Errorf("the command left %s in the data directory", e.Name())
					}
				}
				if _, err := os.Stat(backup); err == nil {
					t.Error("backup created its output file for a missing database")
				}
			})
		}
	})
}

// TestAPIKeyCreate: the key alone goes to stdout (so $(…) captures it) and
// works; a non-positive --ttl is refused and creates nothing (8.9, 8.16).
func TestAPIKeyCreate(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		for _, ttl := range []string{"-1h", "0", "-1ns", "0s"} {
			_, _, err := cli(t, nil, vaultArgs(v, "apikey", "create", v.PrincipalID, "--ttl", ttl)...)
			if err == nil || !strings.Contains(err.Error(), "--ttl must be positive") {
				t.Errorf("--ttl %s: err = %v; want a refusal", ttl, err)
			}
		}
		keys, err := v.App.Store.ListAPIKeys(context.Background(), v.PrincipalID)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 1 {
			t.Fatalf("the principal has %d keys after refused creates; want only the bootstrap key", len(keys))
		}

		out, errOut, err := cli(t, nil, vaultArgs(v, "apikey", "create", v.PrincipalID, "--ttl", "1h", "--name", "ci")...)
		if err != nil {
			t.Fatal(err)
		}
		key := strings.TrimSuffix(out, "\n")
		if key == "" || strings.ContainsAny(key, " \n") {
			t.Fatalf("stdout = %q; want the key alone", out)
		}
		if !strings.Contains(errOut, "key id:") || !strings.Contains(errOut, "expires:") || strings.Contains(errOut, key) {
			t.Errorf("stderr = %q; want the key id and expiry, not the key", errOut)
		}
		if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
			t.Errorf("the printed key does not authenticate: %d %s", r.Status, r.Body)
		}
		keys, _ = v.App.Store.ListAPIKeys(context.Background(), v.PrincipalID)
		for _, k := range keys {
			if k.Name == "ci" && (k.ExpiresAt == nil || time.Until(*k.ExpiresAt) > time.Hour || time.Until(*k.ExpiresAt) < 50*time.Minute) {
				t.Errorf("key with --ttl 1h expires at %v", k.ExpiresAt)
			}
		}
	})
}

// TestCreateCommandsPrintIDAlone: account create and principal create print
// the new id alone on stdout, as the README's $(…) examples need (8.16).
func TestCreateCommandsPrintIDAlone(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		out, errOut, err := cli(t, nil, vaultArgs(v, "account", "create", "acme")...)
		if err != nil {
			t.Fatal(err)
		}
		acct := strings.TrimSuffix(out, "\n")
		if _, err := v.App.Store.GetAccount(context.Background(), acct); err != nil {
			t.Fatalf("stdout %q is not the new account's id: %v", out, err)
		}
		if !strings.Contains(errOut, "created") {
			t.Errorf("stderr = %q; want the human-readable summary", errOut)
		}
		out, _, err = cli(t, nil, vaultArgs(v, "principal", "create", "bot", "--account", acct, "--role", "reader")...)
		if err != nil {
			t.Fatal(err)
		}
		p := strings.TrimSuffix(out, "\n")
		pr, err := v.App.Store.GetPrincipal(context.Background(), p)
		if err != nil || pr.DefaultAccountID != acct {
			t.Fatalf("stdout %q is not the new principal's id: %v %+v", out, err, pr)
		}
		out, _, err = cli(t, nil, vaultArgs(v, "apikey", "create", p)...)
		if err != nil {
			t.Fatal(err)
		}
		if r := v.SGP(t, strings.TrimSpace(out), "", "GET", "/v5/credentials", nil); r.Status != 200 {
			t.Errorf("key of the new principal: %d %s", r.Status, r.Body)
		}
	})
}

// TestKeygen: --out writes the key with mode 0600 and never overwrites one
// without --force; printing to a redirected stdout warns (8.14).
func TestKeygen(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "key.json")
	if _, _, err := cli(t, nil, "keygen", "--out", f); err != nil {
		t.Fatal(err)
	}
	first, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.ParseKEK(first); err != nil {
		t.Fatalf("the written key does not parse: %v", err)
	}
	wantMode(t, f, 0o600)

	_, _, err = cli(t, nil, "keygen", "--out", f)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second keygen --out: err = %v; want a refusal", err)
	}
	if b, _ := os.ReadFile(f); !bytes.Equal(b, first) {
		t.Fatal("a refused keygen changed the key file")
	}
	if err := os.Chmod(f, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cli(t, nil, "keygen", "--out", f, "--force"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(f); bytes.Equal(b, first) {
		t.Fatal("--force did not replace the key")
	}
	wantMode(t, f, 0o600)

	out, errOut, err := cli(t, nil, "keygen")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := crypto.ParseKEK([]byte(out)); err != nil {
		t.Fatalf("stdout is not a keyset: %v", err)
	}
	if !strings.Contains(errOut, "warning") || !strings.Contains(errOut, "--out") {
		t.Errorf("stderr = %q; want a warning about the redirected stdout naming --out", errOut)
	}
	if strings.Contains(errOut, strings.TrimSpace(out)) {
		t.Error("the key was written to stderr")
	}
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s has mode %v, want %v", path, got, want)
	}
}
