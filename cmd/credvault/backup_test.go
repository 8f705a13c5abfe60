package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// backupLines takes a backup of v through the CLI and returns its
// uncompressed lines.
func backupLines(t *testing.T, v *vaulttest.Vault) []string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "vault.cvbak")
	if out, errOut, err := cli(t, nil, vaultArgs(v, "backup", "--out", f)...); err != nil {
		t.Fatalf("backup: %v\n%s%s", err, out, errOut)
	}
	raw, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(plain), "\n"), "\n")
}

// writeBackup gzips lines into a new file.
func writeBackup(t *testing.T, lines []string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	zw.Close()
	f := filepath.Join(t.TempDir(), "edited.cvbak")
	if err := os.WriteFile(f, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// rowOf returns the index of the row of table that contains needle.
func rowOf(t *testing.T, lines []string, table, needle string) int {
	t.Helper()
	cur := ""
	for i, l := range lines {
		if strings.HasPrefix(l, `{"table":`) {
			var h struct{ Table string }
			json.Unmarshal([]byte(l), &h)
			cur = h.Table
			continue
		}
		if cur == table && strings.Contains(l, needle) {
			return i
		}
	}
	t.Fatalf("no %s row contains %q", table, needle)
	return -1
}

var trailerRows = regexp.MustCompile(`"rows":(\d+)`)

// TestBackupIsAuthenticated: a backup is MACed under a key derived from the
// master key; restore verifies the key and the MAC before anything is
// written (not even the target database is created), so an edited backup, a
// wrong master key and a missing one are each refused (9.6, 8.10).
func TestBackupIsAuthenticated(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		for _, n := range []string{"alpha", "beta", "gamma"} {
			if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": n, "payload": "payload-of-" + n}); r.Status != 200 {
				t.Fatalf("create %s: %d %s", n, r.Status, r.Body)
			}
		}
		lines := backupLines(t, v)
		keyFile := filepath.Join(v.DataDir, "master-key.json")

		restore := func(t *testing.T, file string, args ...string) (string, error) {
			t.Helper()
			dsn := newDatabaseURL(t, v.Engine)
			args = append([]string{"restore", "--in", file, "--database-url", dsn, "--data-dir", t.TempDir()}, args...)
			_, _, err := cli(t, nil, args...)
			return dsn, err
		}

		t.Run("ok", func(t *testing.T) {
			dsn, err := restore(t, writeBackup(t, lines), "--master-key-file", keyFile)
			if err != nil {
				t.Fatalf("restore of an intact backup: %v", err)
			}
			out, _, err := cli(t, nil, "account", "list", "--database-url", dsn, "--master-key-file", keyFile)
			if err != nil || !strings.Contains(out, v.AccountID) {
				t.Fatalf("restored database: %v\n%s", err, out)
			}
		})

		edits := map[string]func([]string) []string{
			"renamed credential": func(l []string) []string {
				i := rowOf(t, l, "credentials", `"alpha"`)
				l[i] = strings.Replace(l[i], `"alpha"`, `"alphx"`, 1)
				return l
			},
			"deleted row, trailer count adjusted": func(l []string) []string {
				i := rowOf(t, l, "credentials", `"beta"`)
				last := len(l) - 1
				m := trailerRows.FindStringSubmatch(l[last])
				var n int
				fmt.Sscan(m[1], &n)
				l[last] = trailerRows.ReplaceAllString(l[last], fmt.Sprintf(`"rows":%d`, n-1))
				return append(l[:i], l[i+1:]...)
			},
			"changed ciphertext": func(l []string) []string {
				i := rowOf(t, l, "credentials", `"gamma"`)
				l[i] = flip(l[i], strings.LastIndex(l[i], `{"b64":"`)+len(`{"b64":"`)+20, 'A', 'B')
				return l
			},
			"changed MAC": func(l []string) []string {
				last := len(l) - 1
				l[last] = flip(l[last], strings.Index(l[last], `"mac":"`)+len(`"mac":"`), '0', '1')
				return l
			},
			"line appended after the trailer": func(l []string) []string {
				return append(l, l[len(l)-2])
			},
			"header downgraded to unauthenticated version 1": func(l []string) []string {
				l[0] = strings.Replace(l[0], `"version":2`, `"version":1`, 1)
				return l
			},
			"header names another master key": func(l []string) []string {
				l[0] = regexp.MustCompile(`"mac_key_id":\d+`).ReplaceAllString(l[0], `"mac_key_id":1`)
				return l
			},
		}
		for name, edit := range edits {
			t.Run("err/"+name, func(t *testing.T) {
				edited := edit(append([]string(nil), lines...))
				dsn, err := restore(t, writeBackup(t, edited), "--master-key-file", keyFile)
				if err == nil {
					t.Fatal("an edited backup was restored")
				}
				t.Logf("refused: %v", err)
				wantNoDatabase(t, dsn)
			})
		}

		t.Run("err/wrong-master-key", func(t *testing.T) {
			other := newKeyFile(t)
			dsn, err := restore(t, writeBackup(t, lines), "--master-key-file", other)
			if err == nil || !strings.Contains(err.Error(), "master key is not the one") {
				t.Fatalf("err = %v; want a wrong-key refusal", err)
			}
			wantNoDatabase(t, dsn)
		})

		t.Run("err/backup-with-wrong-master-key", func(t *testing.T) {
			other := newKeyFile(t)
			out := filepath.Join(t.TempDir(), "b.cvbak")
			_, _, err := cli(t, nil, "backup", "--out", out, "--database-url", v.DatabaseURL, "--data-dir", v.DataDir, "--master-key-file", other)
			if err == nil || !strings.Contains(err.Error(), "does not match") {
				t.Fatalf("err = %v; want a wrong-key refusal", err)
			}
			if _, err := os.Stat(out); err == nil {
				t.Error("a refused backup left its output file")
			}
		})

		t.Run("err/no-master-key", func(t *testing.T) {
			dir := t.TempDir()
			dsn := newDatabaseURL(t, v.Engine)
			_, _, err := cli(t, nil, "restore", "--in", writeBackup(t, lines), "--database-url", dsn, "--data-dir", dir)
			if err == nil || !strings.Contains(err.Error(), "no master key configured") {
				t.Fatalf("err = %v; want a missing-key refusal", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "master-key.json")); err == nil {
				t.Error("restore generated a master key")
			}
			wantNoDatabase(t, dsn)
		})
	})
}

// newKeyFile writes a new master key file with credvault keygen and returns
// its path.
func newKeyFile(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "other.json")
	if _, _, err := cli(t, nil, "keygen", "--out", f); err != nil {
		t.Fatal(err)
	}
	return f
}

// flip changes the character at j of s to a (to b if it is a).
func flip(s string, j int, a, b byte) string {
	c := a
	if s[j] == a {
		c = b
	}
	return s[:j] + string(c) + s[j+1:]
}
