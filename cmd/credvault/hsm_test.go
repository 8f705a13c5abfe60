//go:build cgo

package main

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/crypto/pkcs11kms/softhsmtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestHSMCommands: keygen, serve and rekey with --master-key-uri, and the
// move of a file-keyed vault under the HSM and back, through the CLI.
func TestHSMCommands(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		tk := softhsmtest.New(t, "cv-cli")
		uri := tk.URI("root")

		out, _, err := cli(t, nil, "keygen", "--master-key-uri", uri)
		if err != nil || !strings.Contains(out, "generated the root key pkcs11:token=cv-cli;object=root inside the HSM") {
			t.Fatalf("keygen: %q %v", out, err)
		}
		out, _, err = cli(t, nil, "keygen", "--master-key-uri", uri)
		if err != nil || !strings.Contains(out, "exists already") {
			t.Fatalf("second keygen: %q %v", out, err)
		}

		dsn := newDatabaseURL(t, engine)
		env := map[string]string{"CREDVAULT_MASTER_KEY_URI": uri, "CREDVAULT_DATABASE_URL": dsn}
		addr, stderr, stop := startServe(t, env)
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		resp.Body.Close()
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stderr.String(), "pin-value") || strings.Contains(stderr.String(), "GENERATED A NEW MASTER KEY") {
			t.Fatalf("serve output: %s", stderr)
		}
		dataDir := t.TempDir()
		out, _, err = cli(t, env, "rekey", "--grace", "10ms", "--data-dir", dataDir)
		if err != nil || !strings.Contains(out, "master key rotated") {
			t.Fatalf("rekey: %q %v", out, err)
		}
		if _, err := os.Stat(filepath.Join(dataDir, "master-key.json")); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("a key file was written")
		}

		// A file-keyed vault moves under the HSM, and back.
		v := vaulttest.New(t, engine)
		v.App.Close()
		out, _, err = cli(t, nil, vaultArgs(v, "rekey", "--to-master-key-uri", tk.URI("second"))...)
		if err != nil || !strings.Contains(out, "WARNING: "+filepath.Join(v.DataDir, "master-key.json")+" still holds the keyset in the clear") {
			t.Fatalf("rekey --to-master-key-uri: %q %v", out, err)
		}
		if _, _, err := cli(t, nil, vaultArgs(v, "backup", "--out", filepath.Join(t.TempDir(), "b"))...); err == nil || !strings.Contains(err.Error(), "--master-key-uri") {
			t.Fatalf("backup with the old key file: %v", err)
		}
		back := filepath.Join(t.TempDir(), "back.json")
		out, _, err = cli(t, nil, vaultArgs(v, "rekey", "--master-key-uri", tk.URI("second"), "--to-master-key-file", back)...)
		if err != nil || !strings.Contains(out, "no longer in the database") {
			t.Fatalf("rekey --to-master-key-file: %q %v", out, err)
		}
		if _, _, err := cli(t, nil, vaultArgs(v, "rekey", "--grace", "10ms", "--master-key-file", back)...); err != nil {
			t.Fatalf("rekey with the moved-back file: %v", err)
		}
	})
}
