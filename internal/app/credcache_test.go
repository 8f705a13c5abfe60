package app_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestCredentialCache_Coherent: credential rows are cached in each server
// (ciphertext only), yet a decrypt right after an update's 200 on the same
// server returns the new payload, a deleted credential is gone at once
// there, and another replica follows within sqlstore.RevocationBound.
func TestCredentialCache_Coherent(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		b := a.Replica(t)
		// get reads the metadata and secret decrypts, both from the row
		// cache when it holds the row.
		get := func(v *vaulttest.Vault, id string) (int, string) {
			r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+id, nil)
			if r.Status != 200 {
				return r.Status, ""
			}
			d, _ := r.Object(t)["description"].(string)
			return r.Status, d
		}
		secret := func(v *vaulttest.Vault, id string) (int, string) {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
			if r.Status != 200 {
				return r.Status, ""
			}
			s, _ := r.Object(t)["result"].(string)
			return r.Status, s
		}
		r := a.SGP(t, a.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "cached", "payload": "v1", "description": "v1"})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id, _ := r.Object(t)["id"].(string)

		cur := "v1"
		for i := range 2 {
			next := "v2"
			for _, v := range []*vaulttest.Vault{a, b} {
				for range 3 { // warm both caches
					if st, got := secret(v, id); st != 200 || got != cur {
						t.Fatalf("warm-up %d: %d %q", i, st, got)
					}
					if st, got := get(v, id); st != 200 || got != cur {
						t.Fatalf("warm-up %d: get: %d %q", i, st, got)
					}
				}
			}
			if i == 1 {
				next = "v3"
			}
			// Update through one server: it answers with the new payload at
			// once, the other within the bound.
			here, there := a, b
			if i == 1 {
				here, there = b, a
			}
			if r := here.SGP(t, here.AdminKey, "", "PATCH", "/v5/credentials/"+id, map[string]any{"payload": next, "description": next}); r.Status != 200 {
				t.Fatalf("update: %d %s", r.Status, r.Body)
			}
			start := time.Now()
			if st, got := secret(here, id); st != 200 || got != next {
				t.Fatalf("decrypt right after the update's 200 on the same server: %d %q, want %q", st, got, next)
			}
			if st, got := get(here, id); st != 200 || got != next {
				t.Fatalf("get right after the update's 200 on the same server: %d %q, want %q", st, got, next)
			}
			withinBound(t, start, "the other replica still decrypted the old payload", func() bool {
				_, gotSecret := secret(there, id)
				_, got := get(there, id)
				return got == next && gotSecret == next
			})
			cur = next
		}

		if r := a.SGP(t, a.AdminKey, "", "DELETE", "/v5/credentials/"+id, nil); r.Status/100 != 2 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		start := time.Now()
		if st, _ := secret(a, id); st != 404 {
			t.Fatalf("decrypt right after the delete on the same server: %d, want 404", st)
		}
		if st, _ := get(a, id); st != 404 {
			t.Fatalf("get right after the delete on the same server: %d, want 404", st)
		}
		withinBound(t, start, "the other replica still served a deleted credential", func() bool {
			st, _ := get(b, id)
			return st == 404
		})
	})
}

// TestDSMCredentialCache_Coherent: DSM integration credentials are served
// from each server's row cache, yet an update or a deletion is seen at once
// by the server that made it and by another replica within
// sqlstore.RevocationBound (migration 0018's triggers bump the counters).
func TestDSMCredentialCache_Coherent(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		b := a.Replica(t)
		auth := "Basic " + a.AdminKey
		must := func(v *vaulttest.Vault, status int, method, path string, body any) map[string]any {
			t.Helper()
			r := v.Do(t, method, path, body, "Authorization", auth)
			if r.Status != status {
				t.Fatalf("%s %s: %d %s, want %d", method, path, r.Status, r.Body, status)
			}
			if status != 200 && status != 201 {
				return nil
			}
			return r.Object(t)
		}
		g := must(a, 200, "POST", "/sys/v1/groups", map[string]any{"name": "cache"})["group_id"].(string)
		k := must(a, 201, "POST", "/crypto/v1/keys", map[string]any{"name": "cache-rsa", "obj_type": "RSA", "key_size": 2048, "group_id": g, "allow_credential_use": true})["kid"].(string)
		details := map[string]any{"$type": "Oci", "body": map[string]any{"$type": "ApiKey", "user_ocid": "ocid1.user.oc1..u", "tenant_ocid": "ocid1.tenancy.oc1..t", "signing_key": k}}
		id := must(a, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "v1", "group_id": g, "credential_details": details})["credential_id"].(string)
		path := "/sys/v1/credentials/" + id
		name := func(v *vaulttest.Vault) (int, string) {
			r := v.Do(t, "GET", path, nil, "Authorization", auth)
			if r.Status != 200 {
				return r.Status, ""
			}
			n, _ := r.Object(t)["name"].(string)
			return r.Status, n
		}
		cur := "v1"
		for i, next := range []string{"v2", "v3"} {
			for _, v := range []*vaulttest.Vault{a, b} {
				for range 3 { // warm both caches
					if st, got := name(v); st != 200 || got != cur {
						t.Fatalf("warm-up %d: %d %q, want %q", i, st, got, cur)
					}
				}
			}
			here, there := a, b
			if i == 1 {
				here, there = b, a
			}
			must(here, 200, "PATCH", path, map[string]any{"name": next})
			start := time.Now()
			if st, got := name(here); st != 200 || got != next {
				t.Fatalf("get right after the update's 200 on the same server: %d %q, want %q", st, got, next)
			}
			withinBound(t, start, "the other replica still served the old credential", func() bool {
				_, got := name(there)
				return got == next
			})
			cur = next
		}
		must(a, 204, "DELETE", path, nil)
		start := time.Now()
		if st, _ := name(a); st != 404 {
			t.Fatalf("get right after the delete on the same server: %d, want 404", st)
		}
		withinBound(t, start, "the other replica still served a deleted DSM credential", func() bool {
			st, _ := name(b)
			return st == 404
		})
	})
}

// TestListing_CoherentRows: a listing takes its rows from the row cache
// where it holds them, yet shows an update or a deletion made through the
// same server at once, one made through another replica within
// sqlstore.RevocationBound, and never loses or duplicates a row.
func TestListing_CoherentRows(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		b := a.Replica(t)
		var ids []string
		for i := range 5 {
			r := a.SGP(t, a.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("row-%d", i), "payload": "p", "description": "v1"})
			if r.Status != 200 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			ids = append(ids, r.Object(t)["id"].(string))
		}
		// list returns the descriptions by id, in the listing's order.
		list := func(v *vaulttest.Vault) (order []string, desc map[string]string) {
			r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials?limit=100&sort_by=name", nil)
			if r.Status != 200 {
				t.Fatalf("list: %d %s", r.Status, r.Body)
			}
			desc = map[string]string{}
			for _, it := range r.Object(t)["items"].([]any) {
				m := it.(map[string]any)
				order = append(order, m["id"].(string))
				desc[m["id"].(string)], _ = m["description"].(string)
			}
			return order, desc
		}
		for _, v := range []*vaulttest.Vault{a, b} {
			for range 2 { // fill the caches (get and list)
				list(v)
				for _, id := range ids {
					v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+id, nil)
				}
			}
		}
		if r := a.SGP(t, a.AdminKey, "", "PATCH", "/v5/credentials/"+ids[2], map[string]any{"description": "v2"}); r.Status != 200 {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		if r := a.SGP(t, a.AdminKey, "", "DELETE", "/v5/credentials/"+ids[4], nil); r.Status/100 != 2 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		want := func(order []string, desc map[string]string) bool {
			if fmt.Sprint(order) != fmt.Sprint(ids[:4]) {
				return false
			}
			for i, id := range ids[:4] {
				if w := map[bool]string{true: "v2", false: "v1"}[i == 2]; desc[id] != w {
					return false
				}
			}
			return true
		}
		if order, desc := list(a); !want(order, desc) {
			t.Fatalf("listing right after an update and a delete on the same server: %v %v", order, desc)
		}
		start := time.Now()
		withinBound(t, start, "the other replica still listed stale rows", func() bool {
			order, desc := list(b)
			if len(order) < 4 {
				t.Fatalf("the other replica's listing lost a row: %v", order)
			}
			return want(order, desc)
		})
	})
}

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
		withinBound(t, start, "the other replica still signed with a disabled key", func() bool { return sign(b) != 200 })
	})
}

// withinBound calls seen (one round of requests) until it reports the
// change, failing if a round sent more than sqlstore.RevocationBound after
// start still did not see it.
func withinBound(t *testing.T, start time.Time, what string, seen func() bool) {
	t.Helper()
	for {
		sent := time.Now()
		if seen() {
			return
		}
		if sent.Sub(start) > sqlstore.RevocationBound {
			t.Fatalf("%s %v after the change", what, sent.Sub(start))
		}
	}
}
