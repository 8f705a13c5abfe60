package app_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// openEmpty opens a vault on a fresh database without bootstrapping it, and
// a raw handle on the same database.
func openEmpty(t *testing.T, engine string) (*app.App, *sql.DB) {
	t.Helper()
	dir := t.TempDir()
	dbURL := filepath.Join(dir, "credvault.db")
	if engine == sqlstore.Postgres {
		dbURL = pgtest.URL(t)
	}
	a, err := app.Open(context.Background(), app.Config{DataDir: dir, DatabaseURL: dbURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, vaulttest.OpenRaw(t, engine, dbURL)
}

// TestBootstrapIsOneTransaction makes bootstrap's last write (the API key)
// fail inside the database: before, the account, the system-account record
// and the admin principal stayed behind — a non-empty store that never
// bootstraps again and has no usable key. Now nothing is left, and the next
// start bootstraps a working vault, with its audit record.
func TestBootstrapIsOneTransaction(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		a, raw := openEmpty(t, engine)
		restore := vaulttest.FailInserts(t, raw, engine, "api_keys")
		if boot, err := a.Bootstrap(ctx, ""); err == nil {
			t.Fatalf("bootstrap with a failing key insert succeeded: %+v", boot)
		}
		// The failure itself is recorded; no success is.
		for table, want := range map[string]int{"accounts": 0, "principals": 0, "memberships": 0, "api_keys": 0, "audit_log WHERE outcome = 'success'": 0, "audit_log": 1} {
			var n int
			if err := raw.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil || n != want {
				t.Errorf("%s after a failed bootstrap: %d rows (%v), want %d", table, n, err, want)
			}
		}
		var n int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM meta WHERE key = 'system_account'`).Scan(&n); err != nil || n != 0 {
			t.Errorf("system account recorded by a failed bootstrap (%d, %v)", n, err)
		}
		if empty, err := a.Store.IsEmpty(ctx); err != nil || !empty {
			t.Fatalf("store after a failed bootstrap: empty=%v %v", empty, err)
		}

		restore()
		boot, err := a.Bootstrap(ctx, "")
		if err != nil || boot == nil {
			t.Fatalf("bootstrap after the failure: %+v %v", boot, err)
		}
		id, err := a.Service.Authenticate(ctx, boot.APIKey, "")
		if err != nil || id.Role != vault.RoleAdmin {
			t.Fatalf("bootstrap key: %+v %v", id, err)
		}
		if sys, err := a.Service.SystemAccountID(ctx); err != nil || sys != boot.Account.ID {
			t.Fatalf("system account %q, %v; want %s", sys, err, boot.Account.ID)
		}
		rep, err := audit.Verify(ctx, a.Store, audit.VerifyOptions{Keys: a.Keyring})
		if err != nil || !rep.OK() || rep.Records != 2 || !rep.HeadAuthenticated {
			t.Fatalf("audit after bootstrap: %+v %v", rep, err)
		}
		if again, err := a.Bootstrap(ctx, ""); err != nil || again != nil {
			t.Fatalf("second bootstrap: %+v %v", again, err)
		}
	})
}

// TestBootstrapKeyMustBeRandom: a supplied bootstrap key is stored as a fast
// hash, safe only for random keys, so it must have the generated form
// (key id + a 256-bit secret) and visible entropy; a refused key leaves the
// store empty.
func TestBootstrapKeyMustBeRandom(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		ctx := context.Background()
		a, _ := openEmpty(t, engine)
		id := vault.NewID()
		enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
		for name, key := range map[string]string{
			"long-but-constant":     strings.Repeat("a", 64),
			"printable-passphrase":  "correct horse battery staple 1234567",
			"generated-form-aaaa":   enc(id + ":" + strings.Repeat("a", 43)),
			"generated-form-short":  enc(id + ":" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef"))),
			"not-a-uuid-key-id":     enc("admin:" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqrstuvwxyz"))),
			"pattern-secret-2bytes": enc(id + ":" + base64.RawURLEncoding.EncodeToString([]byte(strings.Repeat("ab", 16)))),
		} {
			boot, err := a.Bootstrap(ctx, key)
			if vault.KindOf(err) != vault.KindInvalid || boot != nil {
				t.Errorf("%s: bootstrap key accepted (%v, %+v)", name, err, boot)
			}
			if strings.Contains(vault.Message(err), key) {
				t.Errorf("%s: the refusal echoes the key", name)
			}
		}
		if empty, err := a.Store.IsEmpty(ctx); err != nil || !empty {
			t.Fatalf("a refused key left the store non-empty (%v)", err)
		}
		key := vault.NewAPIKeySecret(id)
		boot, err := a.Bootstrap(ctx, key)
		if err != nil || boot == nil || boot.KeyID != id {
			t.Fatalf("generated-form key refused: %+v %v", boot, err)
		}
		if _, err := a.Service.Authenticate(ctx, key, ""); err != nil {
			t.Fatalf("supplied key does not authenticate: %v", err)
		}
	})
}
