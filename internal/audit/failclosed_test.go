package audit_test

import (
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestFailClosed breaks the audit trail's table in the real database and
// checks that secret accesses are then refused (503, no plaintext) in both
// dialects, while the secrets themselves are untouched.
func TestFailClosed(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		const secret = "fail-closed-canary-5d1e"
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "fc", "payload": secret})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id := r.Object(t)["id"].(string)
		g := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": "fc"}, "Authorization", "Basic "+v.AdminKey)
		if g.Status != 200 {
			t.Fatalf("group: %d %s", g.Status, g.Body)
		}
		k := v.Do(t, "POST", "/crypto/v1/keys", map[string]any{
			"name": "fc-key", "obj_type": "AES", "key_size": 256, "group_id": g.Object(t)["group_id"], "key_ops": []string{"ENCRYPT", "EXPORT"},
		}, "Authorization", "Basic "+v.AdminKey)
		if k.Status != 201 {
			t.Fatalf("key: %d %s", k.Status, k.Body)
		}
		kid := k.Object(t)["kid"].(string)

		// Break the trail: every append now fails inside the database.
		raw := v.RawDB(t)
		if _, err := raw.Exec(`ALTER TABLE audit_log RENAME TO audit_log_moved`); err != nil {
			t.Fatalf("break the audit table: %v", err)
		}

		r = v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
		if r.Status != 503 || strings.Contains(string(r.Body), secret) {
			t.Fatalf("SGP decrypt without an audit trail: %d %s", r.Status, r.Body)
		}
		e := v.Do(t, "POST", "/crypto/v1/keys/export", map[string]any{"kid": kid}, "Authorization", "Basic "+v.AdminKey)
		if e.Status != 503 || strings.Contains(string(e.Body), `"value"`) {
			t.Fatalf("DSM export without an audit trail: %d %s", e.Status, e.Body)
		}
		m := v.Do(t, "GET", "/metrics", nil)
		if strings.Contains(string(m.Body), "credvault_audit_write_failures_total 0") {
			t.Errorf("audit write failures not counted")
		}

		// Repair it: the secret is intact and served again.
		if _, err := raw.Exec(`ALTER TABLE audit_log_moved RENAME TO audit_log`); err != nil {
			t.Fatal(err)
		}
		r = v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
		if r.Status != 200 || r.Object(t)["result"] != secret {
			t.Fatalf("after repair: %d %s", r.Status, r.Body)
		}
	})
}
