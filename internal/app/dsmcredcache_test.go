package app_test

import (
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

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
			if status != 200 {
				return nil
			}
			return r.Object(t)
		}
		g := must(a, 200, "POST", "/sys/v1/groups", map[string]any{"name": "cache"})["group_id"].(string)
		k := must(a, 200, "POST", "/crypto/v1/keys", map[string]any{"name": "cache-rsa", "obj_type": "RSA", "key_size": 2048, "group_id": g, "allow_credential_use": true})["kid"].(string)
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
			for {
				sent := time.Now()
				if _, got := name(there); got == next {
					break
				}
				if sent.Sub(start) > sqlstore.RevocationBound {
					t.Fatalf("the other replica still served the old credential %v after the update", sent.Sub(start))
				}
			}
			cur = next
		}
		must(a, 204, "DELETE", path, nil)
		start := time.Now()
		if st, _ := name(a); st != 404 {
			t.Fatalf("get right after the delete on the same server: %d, want 404", st)
		}
		for {
			sent := time.Now()
			if st, _ := name(b); st == 404 {
				break
			}
			if sent.Sub(start) > sqlstore.RevocationBound {
				t.Fatalf("the other replica still served a deleted credential %v after the delete", sent.Sub(start))
			}
		}
	})
}
