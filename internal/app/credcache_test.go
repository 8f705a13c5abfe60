package app_test

import (
	"testing"
	"time"

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
			for {
				sent := time.Now()
				_, gotSecret := secret(there, id)
				if _, got := get(there, id); got == next && gotSecret == next {
					break
				}
				if sent.Sub(start) > sqlstore.RevocationBound {
					t.Fatalf("the other replica still decrypted the old payload %v after the update", sent.Sub(start))
				}
			}
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
		for {
			sent := time.Now()
			if st, _ := get(b, id); st == 404 {
				break
			}
			if sent.Sub(start) > sqlstore.RevocationBound {
				t.Fatalf("the other replica still decrypted a deleted credential %v after the delete", sent.Sub(start))
			}
		}
	})
}
