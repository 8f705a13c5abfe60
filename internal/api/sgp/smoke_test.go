package sgp_test

import (
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func TestSmoke(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "n", "payload": "p"})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id := r.Object(t)["id"].(string)
		r = v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
		if r.Status != 200 || r.Object(t)["result"] != "p" {
			t.Fatalf("decrypt: %d %s", r.Status, r.Body)
		}
		r = v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials?limit=1", nil)
		if r.Status != 200 {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}
	})
}
