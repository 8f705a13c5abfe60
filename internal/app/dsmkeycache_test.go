package app_test

import (
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestDSMKeyCache: security objects (key material sealed) are served from
// each server's row cache, yet a key disabled through one server stops
// signing there at once and on another replica within
// sqlstore.RevocationBound; and a master-key rotation by another process,
// which re-seals every key under a new master key and retires the old one,
// never makes a cached key fail: a cached row that does not open is read
// again from the database.
func TestDSMKeyCache(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		b := a.Replica(t)
		auth := "Basic " + a.AdminKey
		do := func(v *vaulttest.Vault, method, path string, body any) *vaulttest.Response {
			t.Helper()
			return v.Do(t, method, path, body, "Authorization", auth)
		}
		g := do(a, "POST", "/sys/v1/groups", map[string]any{"name": "keys"}).Object(t)["group_id"].(string)
		ec := do(a, "POST", "/crypto/v1/keys", map[string]any{"name": "ec", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g, "key_ops": []string{"SIGN", "VERIFY", "APPMANAGEABLE"}}).Object(t)["kid"].(string)
		aes := do(a, "POST", "/crypto/v1/keys", map[string]any{"name": "aes", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "DECRYPT", "APPMANAGEABLE"}}).Object(t)["kid"].(string)
		data := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
		// sign answers 200, or 400 for a disabled key; anything else (a
		// 409 integrity failure from a stale cached row) fails the test.
		sign := func(v *vaulttest.Vault) int {
			t.Helper()
			r := do(v, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": ec}, "hash_alg": "SHA256", "data": data})
			if r.Status != 200 && r.Status != 400 {
				t.Fatalf("sign: %d %s", r.Status, r.Body)
			}
			return r.Status
		}
		roundTrip := func(v *vaulttest.Vault) {
			t.Helper()
			r := do(v, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": aes}, "alg": "AES", "mode": "GCM", "tag_len": 128, "plain": data})
			if r.Status != 200 {
				t.Fatalf("encrypt: %d %s", r.Status, r.Body)
			}
			enc := r.Object(t)
			r = do(v, "POST", "/crypto/v1/decrypt", map[string]any{"key": map[string]any{"kid": aes}, "alg": "AES", "mode": "GCM", "tag_len": 128, "cipher": enc["cipher"], "iv": enc["iv"], "tag": enc["tag"]})
			if r.Status != 200 || r.Object(t)["plain"] != data {
				t.Fatalf("decrypt: %d %s", r.Status, r.Body)
			}
		}
		for _, v := range []*vaulttest.Vault{a, b} {
			for range 3 { // warm both caches
				if st := sign(v); st != 200 {
					t.Fatalf("sign: %d", st)
				}
				roundTrip(v)
			}
		}

		if a.Engine == sqlstore.SQLite { // app.Rekey acts on the database file, as `credvault rekey` does
			if _, err := app.Rekey(context.Background(), a.Config, app.RekeyOptions{Grace: 10 * time.Millisecond}); err != nil {
				t.Fatalf("rekey: %v", err)
			}
			for _, v := range []*vaulttest.Vault{a, b} {
				if st := sign(v); st != 200 {
					t.Fatalf("sign with a key re-sealed by a rotation elsewhere: %d", st)
				}
				roundTrip(v)
			}
		}

		if r := do(a, "PATCH", "/crypto/v1/keys/"+ec, map[string]any{"enabled": false}); r.Status != 200 {
			t.Fatalf("disable: %d %s", r.Status, r.Body)
		}
		start := time.Now()
		if st := sign(a); st == 200 {
			t.Fatal("a key disabled through this server still signed")
		}
		for {
			sent := time.Now()
			if sign(b) != 200 {
				break
			}
			if sent.Sub(start) > sqlstore.RevocationBound {
				t.Fatalf("the other replica still signed with a disabled key %v after it was disabled", sent.Sub(start))
			}
		}
	})
}
