package dsm_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestKES_FortanixKeystore replays the requests of MinIO KES's Fortanix
// keystore (internal/keystore/fortanix), the key store behind MinIO's
// server-side encryption, as it sends them, with the checks it makes:
//
//   - it starts only if GET /sys/v1/health answers 204 and an API key
//     opens (and closes) a session;
//   - it stores a key as an OPAQUE object with PUT /crypto/v1/keys, no
//     group (the app's default group), and takes only 201 as created;
//   - it reads and deletes by name through POST /crypto/v1/keys/export;
//   - it tells "key exists" and "key does not exist" from other failures
//     by DSM's messages alone, compared whole: a 409 saying "sobject
//     already exists" and a 404 saying "sobject does not exist".
func TestKES_FortanixKeystore(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		kes, _ := adm.app(t, "minio-kes", "crypto", adm.group(t, "minio"))

		// (Not in the subset document, so sent around its validator.)
		resp, err := http.Get(v.URL + "/sys/v1/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("health: %d %q, want 204 and no body", resp.StatusCode, body)
		}
		tok := kes.ok(t, 200, "POST", "/sys/v1/session/auth", nil)["access_token"].(string)
		(client{v: v, auth: "Bearer " + tok}).ok(t, 204, "POST", "/sys/v1/session/terminate", nil)

		create := map[string]any{"obj_type": "OPAQUE", "name": "minio-default-key", "key_ops": []string{"EXPORT", "APPMANAGEABLE"},
			"value": b64([]byte("kes key value")), "enabled": true}
		kes.ok(t, 201, "PUT", "/crypto/v1/keys", create)
		if msg := kes.fail(t, 409, "", "PUT", "/crypto/v1/keys", create); msg != "sobject already exists" {
			t.Errorf("second create: %q, want exactly %q", msg, "sobject already exists")
		}

		got := kes.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"name": "minio-default-key"})
		if string(unb64(t, got["value"])) != "kes key value" || got["enabled"] != true {
			t.Errorf("export: value %q, enabled %v", unb64(t, got["value"]), got["enabled"])
		}
		if names := kes.list(t, "/crypto/v1/keys?sort=name:asc&limit=100"); len(names) != 1 || names[0].(map[string]any)["name"] != "minio-default-key" {
			t.Errorf("list: %v", names)
		}

		kes.ok(t, 204, "DELETE", "/crypto/v1/keys/"+got["kid"].(string), nil)
		for _, name := range []string{"minio-default-key", "never-created"} {
			if msg := kes.fail(t, 404, "", "POST", "/crypto/v1/keys/export", map[string]any{"name": name}); msg != "sobject does not exist" {
				t.Errorf("export of %s: %q, want exactly %q", name, msg, "sobject does not exist")
			}
		}
	})
}
