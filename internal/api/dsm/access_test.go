package dsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

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
			s.fail(t, 401, "invalid, expired or terminated session; authenticate again", "GET", "/sys/v1/groups", nil)
			s.fail(t, 401, "invalid, expired or terminated session; authenticate again", "POST", "/sys/v1/session/refresh", nil)
			// The reauth token is a separate session and still works.
			s2 := client{v: v, auth: "Bearer " + re["access_token"].(string)}
			s2.list(t, "/sys/v1/groups")
		})
		t.Run("expired", func(t *testing.T) {
			s := app.session(t)
			// Move the clock past the session's end.
			v.Clock.Advance(vault.DefaultSessionTTL + time.Minute)
			s.fail(t, 401, "invalid, expired or terminated session; authenticate again", "GET", "/sys/v1/groups", nil)
		})
		t.Run("bad-credentials", func(t *testing.T) {
			for auth, msg := range map[string]string{
				"":                   "missing or malformed Authorization header",
				"Basic":              "missing or malformed Authorization header",
				"Basic bm9wZTpub3Bl": "invalid or missing API key",
				"Bearer nope":        "invalid, expired or terminated session",
				"Token x":            "missing or malformed Authorization header",
			} {
				c := client{v: v, auth: auth}
				body := c.fail(t, 401, msg, "GET", "/sys/v1/groups", nil)
				if strings.Contains(body, "nope") {
					t.Errorf("error echoes the credential: %s", body)
				}
			}
			client{v: v, auth: "Bearer x"}.fail(t, 401, "session/auth needs Authorization: Basic <api key>", "POST", "/sys/v1/session/auth", nil)
		})
		t.Run("terminate-needs-session", func(t *testing.T) {
			app.fail(t, 400, "this request did not use a session (Authorization: Bearer); there is", "POST", "/sys/v1/session/terminate", nil)
		})
	})
}

func TestGroups(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.ok(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": "payments", "description": "d", "custom_metadata": map[string]string{"a": "b"}})
		gid := g["group_id"].(string)
		if g["acct_id"] != v.AccountID || g["creator"].(map[string]any)["user"] != v.PrincipalID || len(g["created_at"].(string)) != 16 {
			t.Errorf("group: %v", g)
		}
		adm.fail(t, 409, "a group with this name already exists in this account", "POST", "/sys/v1/groups", map[string]any{"name": "payments"})
		adm.fail(t, 400, "name is required", "POST", "/sys/v1/groups", map[string]any{"description": "no name"})
		adm.fail(t, 400, "name must not contain control, line-separator or bidirectional", "POST", "/sys/v1/groups", map[string]any{"name": " \t"})
		adm.fail(t, 400, "name must not contain control, line-separator or bidirectional", "POST", "/sys/v1/groups", map[string]any{"name": "a\nb"})

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
		msg := adm.fail(t, 409, "the group still holds 1 security object(s) and 0 integration", "DELETE", "/sys/v1/groups/"+gid, nil)
		if !strings.Contains(msg, "security object") {
			t.Errorf("delete message: %s", msg)
		}
		adm.ok(t, 204, "DELETE", "/crypto/v1/keys/"+k["kid"].(string), nil)
		adm.ok(t, 204, "DELETE", "/sys/v1/groups/"+gid, nil)
		adm.fail(t, 404, "group not found", "GET", "/sys/v1/groups/"+gid, nil)
		adm.fail(t, 400, "group_id must be a UUID", "GET", "/sys/v1/groups/not-a-uuid", nil)
	})
}

func TestApps(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g1, g2 := adminWithGroups(t, v, "g1", "g2")
		a := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "svc", "add_groups": map[string][]string{g1: {"SIGN"}}, "description": "x"})
		id := a["app_id"].(string)
		if a["role"] != "crypto" || a["enabled"] != true || a["auth_type"] != "Secret" || a["creator"].(map[string]any)["user"] != v.PrincipalID {
			t.Errorf("app: %v", a)
		}
		adm.fail(t, 409, "an app with this name already exists in this account", "POST", "/sys/v1/apps", map[string]any{"name": "svc", "add_groups": []string{g1}})
		adm.fail(t, 400, "an app must be a member of at least one group", "POST", "/sys/v1/apps", map[string]any{"name": "nogroups"})
		adm.fail(t, 400, "role must be admin or crypto", "POST", "/sys/v1/apps", map[string]any{"name": "badrole", "role": "root", "add_groups": []string{g1}})
		adm.fail(t, 400, "add_groups names a group that does not exist in this account", "POST", "/sys/v1/apps", map[string]any{"name": "badgroup", "add_groups": []string{"00000000-0000-0000-0000-000000000000"}})

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
		appc.fail(t, 401, "invalid or missing API key", "GET", "/sys/v1/groups", nil)
		sess.fail(t, 401, "invalid, expired or terminated session; authenticate again", "GET", "/sys/v1/groups", nil)
		key2 := vault.AppAPIKey(id, adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string))
		if key2 == key {
			t.Fatal("reset issued the same secret")
		}
		appc = client{v: v, auth: "Basic " + key2}
		appc.list(t, "/sys/v1/groups")

		// A crypto app cannot manage apps or groups.
		appc.fail(t, 403, "this principal's role does not allow admin operations in this account", "POST", "/sys/v1/groups", map[string]any{"name": "x"})
		appc.fail(t, 403, "this principal's role does not allow admin operations in this account", "POST", "/sys/v1/apps", map[string]any{"name": "x", "add_groups": []string{g2}})

		// Disabling an app locks it out.
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"enabled": false})
		appc.fail(t, 401, "this app is disabled", "GET", "/sys/v1/groups", nil)
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"enabled": true})
		appc.list(t, "/sys/v1/groups")

		// An admin app manages groups and apps within its own groups; a group
		// it creates becomes one of its groups.
		admApp, admAppID := adm.app(t, "admin-app", "admin", g2)
		ng := admApp.group(t, "made-by-app")
		if l := admApp.list(t, "/sys/v1/groups"); len(l) != 2 {
			t.Errorf("admin app sees %d groups, want 2", len(l))
		}
		admApp.fail(t, 400, "add_groups names a group that was not found", "POST", "/sys/v1/apps", map[string]any{"name": "y", "add_groups": []string{g1}})
		admApp.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "y", "add_groups": []string{ng}})
		_ = admAppID

		adm.ok(t, 204, "DELETE", "/sys/v1/apps/"+id, nil)
		appc.fail(t, 401, "invalid or missing API key", "GET", "/sys/v1/groups", nil)
		adm.fail(t, 404, "app not found", "GET", "/sys/v1/apps/"+id, nil)
		adm.fail(t, 404, "app not found", "DELETE", "/sys/v1/apps/"+id, nil)
	})
}

// TestLogsPaging walks the audit trail newest first with size and
// previous_id, and filters it by object.
func TestLogsPaging(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		var groups []string
		for i := 0; i < 5; i++ {
			g := adm.ok(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": fmt.Sprint("g", i)})
			groups = append(groups, g["group_id"].(string))
		}
		// Page through everything, 3 at a time.
		var ids []string
		seen := map[string]bool{}
		path := "/sys/v1/logs?size=3"
		for page := 0; page < 50; page++ {
			hits := adm.ok(t, 200, "GET", path, nil)["hits"].([]any)
			if len(hits) == 0 {
				break
			}
			for _, h := range hits {
				id := h.(map[string]any)["_id"].(string)
				if seen[id] {
					t.Fatalf("record %s served twice", id)
				}
				seen[id] = true
				ids = append(ids, id)
			}
			path = "/sys/v1/logs?size=3&previous_id=" + ids[len(ids)-1]
		}
		all := adm.ok(t, 200, "GET", "/sys/v1/logs?size=1000", nil)["hits"].([]any)
		if len(ids) != len(all) || len(ids) < 5 {
			t.Fatalf("paged %d records, one page of 1000 has %d", len(ids), len(all))
		}
		for i, h := range all {
			if got := h.(map[string]any)["_id"]; got != ids[i] {
				t.Fatalf("record %d: paged %s, full page %s", i, ids[i], got)
			}
		}
		// Filter by object: exactly the creation of that group.
		hits := adm.ok(t, 200, "GET", "/sys/v1/logs?object_id="+groups[2], nil)["hits"].([]any)
		if len(hits) != 1 || hits[0].(map[string]any)["_source"].(map[string]any)["object_id"] != groups[2] {
			t.Fatalf("object filter: %v", hits)
		}
		adm.fail(t, 400, "previous_id is not the id of an audit record", "GET", "/sys/v1/logs?previous_id=00000000-0000-0000-0000-000000000000", nil)
	})
}

// A group-scoped admin app reads only the audit records of what it
// reaches; account-wide reads are for account admins.
func TestLogs_ScopedToTheAdminAppsReach(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, mine, theirs := adminWithGroups(t, v, "mine", "theirs")
		scoped, scopedID := adm.app(t, "scoped-admin", "admin", mine)
		_, otherAppID := adm.app(t, "other-app", "crypto", theirs)
		myKey := adm.key(t, map[string]any{"name": "my-key", "obj_type": "AES", "key_size": 128, "group_id": mine})["kid"].(string)
		theirKey := adm.key(t, map[string]any{"name": "their-key", "obj_type": "AES", "key_size": 128, "group_id": theirs})["kid"].(string)
		sgp := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"name": "sgp-cred", "type": "password", "payload": "p"})
		if sgp.Status != 200 {
			t.Fatalf("SGP create: %d %s", sgp.Status, sgp.Body)
		}
		sgpID := sgp.Object(t)["id"].(string)
		v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+sgpID+"/secret", nil)
		scoped.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": myKey})

		objects := func(c client, q string) map[string]bool {
			seen := map[string]bool{}
			for _, h := range c.ok(t, 200, "GET", "/sys/v1/logs?size=1000"+q, nil)["hits"].([]any) {
				src := h.(map[string]any)["_source"].(map[string]any)
				seen[src["object_id"].(string)] = true
				seen["actor:"+src["actor_id"].(string)] = true
			}
			return seen
		}
		all := objects(adm, "")
		for _, id := range []string{myKey, theirKey, sgpID, theirs, otherAppID} {
			if !all[id] {
				t.Errorf("the account admin does not see records about %s", id)
			}
		}
		got := objects(scoped, "")
		for _, id := range []string{myKey, mine, scopedID} {
			if !got[id] {
				t.Errorf("the scoped admin app does not see records about %s, which it reaches", id)
			}
		}
		for _, id := range []string{theirKey, sgpID, theirs, otherAppID} {
			if got[id] {
				t.Errorf("the scoped admin app sees records about %s, outside its groups", id)
			}
		}
		// Filters do not widen the view.
		if hits := scoped.ok(t, 200, "GET", "/sys/v1/logs?object_id="+theirKey, nil)["hits"].([]any); len(hits) != 0 {
			t.Errorf("object_id filter: %d records of an object outside the app's groups", len(hits))
		}
		if hits := scoped.ok(t, 200, "GET", "/sys/v1/logs?actor_id="+v.PrincipalID, nil)["hits"].([]any); len(hits) == 0 {
			t.Error("the admin's actions on the app's group are not visible to it")
		} else {
			for _, h := range hits {
				if id := h.(map[string]any)["_source"].(map[string]any)["object_id"]; id == theirKey || id == sgpID {
					t.Errorf("actor filter leaks a record about %v", id)
				}
			}
		}
	})
}

// DSM error bodies never repeat request values.
func TestErrors_NoRequestValueEchoed(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "echo")
		rsaKid := adm.key(t, map[string]any{"name": "rsa", "obj_type": "RSA", "key_size": 2048, "group_id": g})["kid"].(string)
		adm.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "aes", "obj_type": "AES", "value": b64(make([]byte, 32)), "group_id": g})
		appID := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "echo-app", "add_groups": []string{g}})["app_id"].(string)
		missing := vault.NewID()
		data := b64([]byte("x"))
		for _, c := range []struct {
			method, path string
			body         map[string]any
			marker       string
		}{
			{"POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": rsaKid}, "hash_alg": "SECRET-ECHO-4", "data": data}, "SECRET-ECHO-4"},
			{"POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": rsaKid}, "hash_alg": "SECRET-ECHO-5", "data": data, "signature": data}, "SECRET-ECHO-5"},
			{"POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": rsaKid}, "hash_alg": "SHA256", "data": data,
				"mode": map[string]any{"PSS": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": "SECRET-ECHO-6"}}}}}, "SECRET-ECHO-6"},
			{"POST", "/crypto/v1/keys", map[string]any{"name": "k", "obj_type": "AES", "key_size": 128, "group_id": g, "key_ops": []string{"SECRET-ECHO-7"}}, "SECRET-ECHO-7"},
			{"PUT", "/crypto/v1/keys", map[string]any{"name": "k2", "obj_type": "AES", "key_size": 4242, "value": b64(make([]byte, 16)), "group_id": g}, "4242"},
			{"PUT", "/crypto/v1/keys", map[string]any{"name": "k3", "obj_type": "EC", "elliptic_curve": "SECRET-ECHO-8", "value": b64(ecDER(t)), "group_id": g}, "SECRET-ECHO-8"},
			{"POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "aes"}, "alg": "SECRET-ECHO-9", "plain": data}, "SECRET-ECHO-9"},
			{"POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "aes"}, "alg": "AES", "mode": "SECRET-ECHO-10", "plain": data}, "SECRET-ECHO-10"},
			{"POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "rsa"}, "alg": "RSA", "plain": data,
				"mode": map[string]any{"OAEP": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": "SECRET-ECHO-11"}}}}}, "SECRET-ECHO-11"},
			{"POST", "/sys/v1/apps", map[string]any{"name": "a2", "add_groups": map[string]any{g: []string{"SECRET-ECHO-12"}}}, "SECRET-ECHO-12"},
			{"POST", "/sys/v1/apps", map[string]any{"name": "a3", "add_groups": []string{"SECRET-ECHO-13"}}, "SECRET-ECHO-13"},
			{"POST", "/sys/v1/apps", map[string]any{"name": "a4", "add_groups": []string{missing}}, missing},
			{"PATCH", "/sys/v1/apps/" + appID, map[string]any{"mod_groups": map[string]any{missing: []string{"SIGN"}}}, missing},
			{"POST", "/sys/v1/credentials", map[string]any{"name": "c", "group_id": g, "credential_details": map[string]any{"$type": "Azure",
				"body": map[string]any{"$type": "ClientSecret", "tenant_id": "t", "client_id": "c", "client_secret": missing}}}, missing},
		} {
			r := adm.do(t, c.method, c.path, c.body)
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("%s %s (%s): status %d, want a 4xx", c.method, c.path, c.marker, r.Status)
			}
			if strings.Contains(string(r.Body), c.marker) {
				t.Errorf("%s %s: the error echoes %s: %s", c.method, c.path, c.marker, r.Body)
			}
		}
	})
}

func ecDER(t *testing.T) []byte {
	t.Helper()
	_, k := selfSignedCert(t)
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// The official client's sign_verify example: SHA-256 with PSS and
// MGF1(SHA-1) on a key named "RSA Key"; verify is audited like sign.
func TestSignVerify_PSSWithIndependentMGF1Hash(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		app, priv, kid := adm.rsaKeyApp(t, "sv")
		pss := func(h string) map[string]any {
			return map[string]any{"PSS": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": h}}}}
		}
		data := b64([]byte("hello, world"))
		sig := app.ok(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"name": "RSA Key"}, "hash_alg": "SHA256", "data": data, "mode": pss("SHA1")})["signature"]
		ok := app.ok(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"name": "RSA Key"}, "hash_alg": "SHA256", "data": data, "mode": pss("SHA1"), "signature": sig})
		if ok["result"] != true {
			t.Fatalf("verify: %v", ok)
		}
		// The MGF1 hash is honoured: the signature is not a MGF1-SHA-256 one.
		if r := app.ok(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"name": "RSA Key"}, "hash_alg": "SHA256", "data": data, "mode": pss("SHA256"), "signature": sig}); r["result"] != false {
			t.Fatal("verified with the wrong MGF1 hash")
		}
		d := sha256.Sum256([]byte("hello, world"))
		if rsa.VerifyPSS(&priv.PublicKey, crypto.SHA256, d[:], unb64(t, sig), &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil {
			t.Fatal("the signature was made with MGF1-SHA-256")
		}
		// A signature made by crypto/rsa with equal hashes verifies through the same API.
		std, _ := rsa.SignPSS(rand.Reader, priv, crypto.SHA256, d[:], nil)
		if r := app.ok(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": kid}, "hash_alg": "SHA256", "hash": b64(d[:]), "mode": pss("SHA256"), "signature": b64(std)}); r["result"] != true {
			t.Fatal("crypto/rsa's PSS signature does not verify")
		}
		msgs := logMessages(t, adm, kid)
		if n := count(msgs, "sobject.verify sobject: success"); n != 3 {
			t.Errorf("verifications audited: %d, want 3 (%v)", n, msgs)
		}
		if n := count(msgs, "sobject.sign sobject: success"); n != 1 {
			t.Errorf("signatures audited: %d", n)
		}
	})
}

// collect pages through a DSM listing with continuation_token the way the
// contract describes it (and DSM's clients do): start with an empty token,
// send back the token of each response, stop when a response has none.
// It returns the ids (field idField) in the order received.
func collect(t *testing.T, c client, path, idField string, limit int) (ids []string, count float64) {
	t.Helper()
	token := ""
	for range 20 {
		q := url.Values{"continuation_token": {token}}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		body := c.ok(t, 200, "GET", path+"?"+q.Encode(), nil)
		for _, it := range body["items"].([]any) {
			ids = append(ids, it.(map[string]any)[idField].(string))
		}
		md := body["metadata"].(map[string]any)
		count = md["count"].(float64)
		next, _ := md["continuation_token"].(string)
		if next == "" {
			return ids, count
		}
		token = next
	}
	t.Fatalf("%s: no end after 20 pages", path)
	return nil, 0
}

// A client that pages GET /sys/v1/groups and /sys/v1/apps with
// continuation_token and a limit must see every item: a response without a
// continuation_token means "complete", so a limited page must carry one.
func TestContinuationTokenPagesGroupsAndApps(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		var groups []string
		for i := range 5 {
			groups = append(groups, adm.group(t, fmt.Sprintf("g%d", i)))
		}
		for i := range 3 {
			adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": fmt.Sprintf("a%d", i), "add_groups": []string{groups[0]}})
		}
		for _, limit := range []int{0, 1, 2, 5, 6} {
			ids, count := collect(t, adm, "/sys/v1/groups", "group_id", limit)
			if len(ids) != 5 || count != 5 {
				t.Errorf("groups limit=%d: got %d ids (count %v), want 5: %v", limit, len(ids), count, ids)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Errorf("groups limit=%d: %s twice", limit, id)
				}
				seen[id] = true
			}
			ids, count = collect(t, adm, "/sys/v1/apps", "app_id", limit)
			if len(ids) != 3 || count != 3 {
				t.Errorf("apps limit=%d: got %d ids (count %v), want 3: %v", limit, len(ids), count, ids)
			}
		}
		// A token that this server did not issue is refused, not ignored.
		adm.fail(t, 400, "continuation_token must be empty or a token returned by a previous", "GET", "/sys/v1/groups?continuation_token=garbage", nil)
		adm.fail(t, 400, "continuation_token must be empty or a token returned by a previous", "GET", "/sys/v1/apps?continuation_token=garbage", nil)
	})
}

// TestAppScope_ReadOncePerRequest: an app's groups are read with its
// authentication, once per request, so a change to them applies from the
// app's next request, by API key and by session alike.
func TestAppScope_ReadOncePerRequest(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g1, g2 := adminWithGroups(t, v, "g1", "g2")
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
			c.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/info", info)
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
