package dsm_test

import (
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestVersion(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		r := client{v: v}.ok(t, 200, "GET", "/sys/v1/version", nil)
		if r["server_mode"] != "Software" || r["version"] == "" {
			t.Errorf("version: %v", r)
		}
	})
}

func TestSessions(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g1")
		app, appID := adm.app(t, "app1", "crypto", g)

		t.Run("auth/basic-api-key", func(t *testing.T) {
			r := app.ok(t, 200, "POST", "/sys/v1/session/auth", nil)
			if r["token_type"] != "Bearer" || r["entity_id"] != appID || r["expires_in"].(float64) < 500 || r["access_token"] == "" {
				t.Fatalf("auth response: %v", r)
			}
		})
		t.Run("auth/body-accepted", func(t *testing.T) {
			app.ok(t, 200, "POST", "/sys/v1/session/auth", map[string]any{"token_type": "Bearer"})
		})
		t.Run("direct-basic-works", func(t *testing.T) {
			if l := app.list(t, "/sys/v1/groups"); len(l) != 1 {
				t.Fatalf("groups: %v", l)
			}
		})
		t.Run("refresh-reauth-terminate", func(t *testing.T) {
			s := app.session(t)
			if l := s.list(t, "/sys/v1/groups"); len(l) != 1 {
				t.Fatalf("groups via session: %v", l)
			}
			s.ok(t, 204, "POST", "/sys/v1/session/refresh", nil)
			re := s.ok(t, 200, "POST", "/sys/v1/session/reauth", nil)
			if re["access_token"] == "" || re["entity_id"] != appID {
				t.Fatalf("reauth: %v", re)
			}
			s.ok(t, 204, "POST", "/sys/v1/session/terminate", nil)
			s.fail(t, 401, "GET", "/sys/v1/groups", nil)
			s.fail(t, 401, "POST", "/sys/v1/session/refresh", nil)
			// The reauth token is a separate session and still works.
			s2 := client{v: v, auth: "Bearer " + re["access_token"].(string)}
			s2.list(t, "/sys/v1/groups")
		})
		t.Run("expired", func(t *testing.T) {
			s := app.session(t)
			// Expire it in the database, as another replica's clock would see it.
			if err := expireSessions(v); err != nil {
				t.Fatal(err)
			}
			s.fail(t, 401, "GET", "/sys/v1/groups", nil)
		})
		t.Run("bad-credentials", func(t *testing.T) {
			for _, auth := range []string{"", "Basic", "Basic bm9wZTpub3Bl", "Bearer nope", "Token x"} {
				c := client{v: v, auth: auth}
				body := c.fail(t, 401, "GET", "/sys/v1/groups", nil)
				if strings.Contains(body, "nope") {
					t.Errorf("error echoes the credential: %s", body)
				}
			}
			client{v: v, auth: "Bearer x"}.fail(t, 401, "POST", "/sys/v1/session/auth", nil)
		})
		t.Run("terminate-needs-session", func(t *testing.T) {
			app.fail(t, 400, "POST", "/sys/v1/session/terminate", nil)
		})
	})
}

// expireSessions moves every session's expiry into the past.
func expireSessions(v *vaulttest.Vault) error {
	return v.App.Store.(*sqlstore.DB).ExpireDSMSessionsForTest(time.Now().Add(-time.Hour))
}

func TestGroups(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.ok(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": "payments", "description": "d", "custom_metadata": map[string]string{"a": "b"}})
		gid := g["group_id"].(string)
		if g["acct_id"] != v.AccountID || g["creator"].(map[string]any)["user"] != v.PrincipalID || len(g["created_at"].(string)) != 16 {
			t.Errorf("group: %v", g)
		}
		adm.fail(t, 409, "POST", "/sys/v1/groups", map[string]any{"name": "payments"})
		adm.fail(t, 400, "POST", "/sys/v1/groups", map[string]any{"description": "no name"})
		adm.fail(t, 400, "POST", "/sys/v1/groups", map[string]any{"name": " \t"})
		adm.fail(t, 400, "POST", "/sys/v1/groups", map[string]any{"name": "a\nb"})

		if got := adm.ok(t, 200, "GET", "/sys/v1/groups/"+gid, nil); got["name"] != "payments" {
			t.Errorf("get: %v", got)
		}
		up := adm.ok(t, 200, "PATCH", "/sys/v1/groups/"+gid, map[string]any{"name": "payments-2"})
		if up["name"] != "payments-2" || up["description"] != "d" {
			t.Errorf("patch keeps omitted fields: %v", up)
		}
		adm.group(t, "other")
		if l := adm.list(t, "/sys/v1/groups"); len(l) != 2 {
			t.Errorf("list: %d", len(l))
		}
		wm := adm.ok(t, 200, "GET", "/sys/v1/groups?continuation_token=", nil)
		if wm["metadata"].(map[string]any)["count"].(float64) != 2 {
			t.Errorf("list with metadata: %v", wm)
		}
		if l := adm.list(t, "/sys/v1/groups?limit=1&offset=1"); len(l) != 1 {
			t.Errorf("paged: %d", len(l))
		}

		// Delete is refused while the group holds an object, with a clear message.
		k := adm.key(t, map[string]any{"name": "k", "obj_type": "AES", "key_size": 128, "group_id": gid})
		msg := adm.fail(t, 409, "DELETE", "/sys/v1/groups/"+gid, nil)
		if !strings.Contains(msg, "security object") {
			t.Errorf("delete message: %s", msg)
		}
		adm.ok(t, 204, "DELETE", "/crypto/v1/keys/"+k["kid"].(string), nil)
		adm.ok(t, 204, "DELETE", "/sys/v1/groups/"+gid, nil)
		adm.fail(t, 404, "GET", "/sys/v1/groups/"+gid, nil)
		adm.fail(t, 400, "GET", "/sys/v1/groups/not-a-uuid", nil)
	})
}

func TestApps(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g1, g2 := adm.group(t, "g1"), adm.group(t, "g2")
		a := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "svc", "add_groups": map[string][]string{g1: {"SIGN"}}, "description": "x"})
		id := a["app_id"].(string)
		if a["role"] != "crypto" || a["enabled"] != true || a["auth_type"] != "Secret" || a["creator"].(map[string]any)["user"] != v.PrincipalID {
			t.Errorf("app: %v", a)
		}
		adm.fail(t, 409, "POST", "/sys/v1/apps", map[string]any{"name": "svc", "add_groups": []string{g1}})
		adm.fail(t, 400, "POST", "/sys/v1/apps", map[string]any{"name": "nogroups"})
		adm.fail(t, 400, "POST", "/sys/v1/apps", map[string]any{"name": "badrole", "role": "root", "add_groups": []string{g1}})
		adm.fail(t, 400, "POST", "/sys/v1/apps", map[string]any{"name": "badgroup", "add_groups": []string{"00000000-0000-0000-0000-000000000000"}})

		got := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"?group_permissions=true", nil)
		if perms := got["groups"].(map[string]any)[g1].([]any); len(perms) != 1 || perms[0] != "SIGN" {
			t.Errorf("group permissions: %v", got["groups"])
		}
		if gs := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id, nil)["groups"].([]any); len(gs) != 1 || gs[0] != g1 {
			t.Errorf("groups as array: %v", gs)
		}
		up := adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"add_groups": map[string][]string{g2: {}}, "del_groups": []string{g1}, "name": "svc2"})
		if gs := up["groups"].([]any); len(gs) != 1 || gs[0] != g2 || up["name"] != "svc2" {
			t.Errorf("patched app: %v", up)
		}
		if l := adm.list(t, "/sys/v1/apps"); len(l) != 1 {
			t.Errorf("list: %d", len(l))
		}
		wm := adm.ok(t, 200, "GET", "/sys/v1/apps?continuation_token=&group_id="+g1, nil)
		if md := wm["metadata"].(map[string]any); md["count"].(float64) != 0 {
			t.Errorf("list metadata: %v", wm)
		}

		// The credential is the same on every read; reset_secret invalidates
		// it and its sessions.
		cred := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)
		key := vault.AppAPIKey(id, cred["credential"].(map[string]any)["secret"].(string))
		if cred["app_id"] != id {
			t.Errorf("credential: %v", cred)
		}
		again := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)
		if vault.AppAPIKey(id, again["credential"].(map[string]any)["secret"].(string)) != key {
			t.Errorf("second credential call returned another secret")
		}
		appc := client{v: v, auth: "Basic " + key}
		sess := appc.session(t)
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{})
		appc.fail(t, 401, "GET", "/sys/v1/groups", nil)
		sess.fail(t, 401, "GET", "/sys/v1/groups", nil)
		key2 := vault.AppAPIKey(id, adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string))
		if key2 == key {
			t.Fatal("reset issued the same secret")
		}
		appc = client{v: v, auth: "Basic " + key2}
		appc.list(t, "/sys/v1/groups")

		// A crypto app cannot manage apps or groups.
		appc.fail(t, 403, "POST", "/sys/v1/groups", map[string]any{"name": "x"})
		appc.fail(t, 403, "POST", "/sys/v1/apps", map[string]any{"name": "x", "add_groups": []string{g2}})

		// Disabling an app locks it out.
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"enabled": false})
		appc.fail(t, 401, "GET", "/sys/v1/groups", nil)
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"enabled": true})
		appc.list(t, "/sys/v1/groups")

		// An admin app manages groups and apps within its own groups; a group
		// it creates becomes one of its groups.
		admApp, admAppID := adm.app(t, "admin-app", "admin", g2)
		ng := admApp.group(t, "made-by-app")
		if l := admApp.list(t, "/sys/v1/groups"); len(l) != 2 {
			t.Errorf("admin app sees %d groups, want 2", len(l))
		}
		admApp.fail(t, 400, "POST", "/sys/v1/apps", map[string]any{"name": "y", "add_groups": []string{g1}})
		admApp.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "y", "add_groups": []string{ng}})
		_ = admAppID

		adm.ok(t, 204, "DELETE", "/sys/v1/apps/"+id, nil)
		appc.fail(t, 401, "GET", "/sys/v1/groups", nil)
		adm.fail(t, 404, "GET", "/sys/v1/apps/"+id, nil)
		adm.fail(t, 404, "DELETE", "/sys/v1/apps/"+id, nil)
	})
}
