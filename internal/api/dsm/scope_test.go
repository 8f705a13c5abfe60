package dsm_test

import (
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestAppScope_ReadOncePerRequest: an app's groups are read with its
// authentication, once per request, so a change to them applies from the
// app's next request, by API key and by session alike.
func TestAppScope_ReadOncePerRequest(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g1, g2 := adm.group(t, "g1"), adm.group(t, "g2")
		app, appID := adm.app(t, "svc", "crypto", g1)
		sess := app.session(t)
		o := app.key(t, map[string]any{"name": "k", "obj_type": "AES", "key_size": 256, "group_id": g1})
		info := map[string]any{"kid": o["kid"]}
		for _, c := range []client{app, sess} {
			c.ok(t, 200, "POST", "/crypto/v1/keys/info", info)
			if n := len(c.list(t, "/crypto/v1/keys")); n != 1 {
				t.Errorf("listing in g1: %d objects, want 1", n)
			}
		}
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+appID, map[string]any{"add_groups": map[string][]string{g2: {}}, "del_groups": []string{g1}})
		for _, c := range []client{app, sess} {
			c.fail(t, 404, "not found", "POST", "/crypto/v1/keys/info", info)
			if n := len(c.list(t, "/crypto/v1/keys")); n != 0 {
				t.Errorf("listing after leaving g1: %d objects, want 0", n)
			}
		}
	})
}

// TestAuth_MalformedHeaderNamesDSMSchemes: the core knows API keys and
// session tokens; the DSM dialect tells a client without either how its
// header carries them.
func TestAuth_MalformedHeaderNamesDSMSchemes(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		for _, auth := range []string{"", "Token abc", "Basic ", "Bearer"} {
			msg := client{v: v, auth: auth}.fail(t, 401, "Authorization", "GET", "/sys/v1/groups", nil)
			if !strings.Contains(msg, "use Basic <api key> or Bearer <session token>") {
				t.Errorf("Authorization %q: message %q", auth, msg)
			}
		}
	})
}
