package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// writeOtherKey writes a master key that is not the vault's.
func writeOtherKey(t *testing.T) string {
	t.Helper()
	h, err := crypto.NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "other-key.json")
	if err := (&crypto.FileProvider{Path: f}).Save(h); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestRekeyRefusesWrongKeyFile: rekey with a key file that is not the
// database's changes nothing — neither the file nor the database — with or
// without --resume (9.7).
func TestRekeyRefusesWrongKeyFile(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "a", "payload": "kept"})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id := r.Object(t)["id"].(string)
		other := writeOtherKey(t)
		before, _ := os.ReadFile(other)
		cfg := v.Config
		cfg.MasterKeyFile = other
		for _, resume := range []bool{false, true} {
			_, err := app.Rekey(context.Background(), cfg, app.RekeyOptions{Resume: resume, Grace: time.Millisecond})
			if err == nil || !strings.Contains(err.Error(), "does not match") || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("resume=%v: err = %v; want a refusal", resume, err)
			}
			if after, _ := os.ReadFile(other); !bytes.Equal(before, after) {
				t.Fatalf("resume=%v: the wrong key file was changed", resume)
			}
		}
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil); r.Status != 200 || r.Object(t)["result"] != "kept" {
			t.Fatalf("after the refused rekeys: %d %s", r.Status, r.Body)
		}
	})
}

// TestServeRefusesToGenerateKeyForExistingDatabase: opening an existing
// database with no master key configured fails with a clear message and
// writes no master-key.json (9.7).
func TestServeRefusesToGenerateKeyForExistingDatabase(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		cfg := v.Config
		cfg.DataDir = t.TempDir() // no master-key.json here
		a, err := app.Open(context.Background(), cfg)
		if err == nil {
			a.Close()
			t.Fatal("opened an existing database with a newly generated key")
		}
		if !strings.Contains(err.Error(), "no master key configured for an existing database") {
			t.Fatalf("err = %v", err)
		}
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "master-key.json")); err == nil {
			t.Fatal("a master key file was written")
		}
		// A new database still gets a development key.
		fresh := app.Config{DataDir: t.TempDir()}
		a, err = app.Open(context.Background(), fresh)
		if err != nil {
			t.Fatalf("new database: %v", err)
		}
		a.Close()
		if !a.KeyGenerated {
			t.Error("no development key generated for a new database")
		}
	})
}
