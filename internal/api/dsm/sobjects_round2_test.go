package dsm_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// The official Go client's crud example: create an AES key without a
// group, then list with sort=kid (no order) and page with start=<last kid>
// until a page comes back empty. Every object is seen exactly once and
// the loop ends.
func TestSobjects_ListLikeTheOfficialClient(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "crud")
		app, _ := adm.app(t, "crud-app", "crypto", g)
		want := map[string]bool{}
		for i := 0; i < 7; i++ {
			o := app.key(t, map[string]any{"name": fmt.Sprintf("TestKey-%d", i), "obj_type": "AES", "key_size": 256,
				"key_ops": []string{"ENCRYPT", "DECRYPT", "APPMANAGEABLE"}})
			want[o["kid"].(string)] = true
		}
		page := func(q url.Values) []string {
			var kids []string
			for _, it := range app.list(t, "/crypto/v1/keys?"+q.Encode()) {
				kids = append(kids, it.(map[string]any)["kid"].(string))
			}
			return kids
		}
		for _, limit := range []string{"", "3", "1"} {
			seen := map[string]int{}
			var order []string
			start := ""
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatalf("limit %q: the paging loop does not end", limit)
				}
				q := url.Values{"sort": {"kid"}}
				if start != "" {
					q.Set("start", start)
				}
				if limit != "" {
					q.Set("limit", limit)
				}
				kids := page(q)
				if len(kids) == 0 {
					break
				}
				for _, k := range kids {
					seen[k]++
				}
				order = append(order, kids...)
				start = kids[len(kids)-1]
			}
			if len(seen) != len(want) || !slices.IsSorted(order) {
				t.Fatalf("limit %q: saw %d objects in order %v, want %d ascending", limit, len(seen), order, len(want))
			}
			for k, n := range seen {
				if n != 1 || !want[k] {
					t.Fatalf("limit %q: %s seen %d times", limit, k, n)
				}
			}
		}
		// Names, ascending without an order, and start exclusive both ways.
		names := func(q string) []string {
			var out []string
			for _, it := range app.list(t, "/crypto/v1/keys?"+q) {
				out = append(out, it.(map[string]any)["name"].(string))
			}
			return out
		}
		if got := names("sort=name&start=TestKey-4"); !slices.Equal(got, []string{"TestKey-5", "TestKey-6"}) {
			t.Errorf("sort=name&start=TestKey-4: %v", got)
		}
		if got := names("sort=name:desc&start=TestKey-2"); !slices.Equal(got, []string{"TestKey-1", "TestKey-0"}) {
			t.Errorf("sort=name:desc&start=TestKey-2: %v", got)
		}
		app.fail(t, 400, "sort must be one of kid, name, optionally followed by :asc or :desc", "GET", "/crypto/v1/keys?sort=created_at", nil)
		app.fail(t, 400, "sort must be one of kid, name, optionally followed by :asc or :desc", "GET", "/crypto/v1/keys?sort=kid:up", nil)
	})
}

// Objects created without group_id go to the calling app's default group
// (as DSM does), also when the app has several groups.
func TestSobjects_CreateWithoutGroupUsesTheAppsDefaultGroup(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g1, g2 := adm.group(t, "g1"), adm.group(t, "g2")
		first, second := min(g1, g2), max(g1, g2)
		// Named default group.
		a := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "named", "default_group": second, "add_groups": []string{g1, g2}})
		appc := appClient(t, adm, a["app_id"].(string))
		if o := appc.key(t, map[string]any{"name": "k1", "obj_type": "AES", "key_size": 128}); o["group_id"] != second {
			t.Errorf("key went to %v, want the default group %s", o["group_id"], second)
		}
		// No default group named: the first group becomes it (the map form
		// has no order, so "first" is the smallest id).
		b := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "unnamed", "add_groups": map[string]any{g2: []string{"SIGN"}, g1: []string{"SIGN"}}})
		if b["default_group"] != first {
			t.Fatalf("default_group %v, want %s", b["default_group"], first)
		}
		appc = appClient(t, adm, b["app_id"].(string))
		o := appc.ok(t, 200, "PUT", "/crypto/v1/keys", map[string]any{"name": "imported", "obj_type": "SECRET", "value": b64([]byte("s3cr3t"))})
		if o["group_id"] != first {
			t.Errorf("import went to %v, want %s", o["group_id"], first)
		}
		// Its default group deleted, the app falls back to its remaining group.
		c := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "fallback", "default_group": second, "add_groups": []string{g1, g2}})
		appc = appClient(t, adm, c["app_id"].(string))
		if o := appc.key(t, map[string]any{"name": "k3", "obj_type": "AES", "key_size": 128}); o["group_id"] != second {
			t.Fatalf("k3 in %v", o["group_id"])
		}
		empty := adm.group(t, "empty")
		adm.ok(t, 200, "PATCH", "/sys/v1/apps/"+c["app_id"].(string), map[string]any{"add_groups": []string{empty}, "default_group": empty})
		adm.ok(t, 204, "DELETE", "/sys/v1/groups/"+empty, nil)
		if o := appc.key(t, map[string]any{"name": "k4", "obj_type": "AES", "key_size": 128}); o["group_id"] != first {
			t.Errorf("k4 in %v, want %s", o["group_id"], first)
		}
	})
}

func appClient(t *testing.T, adm client, id string) client {
	t.Helper()
	secret := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string)
	return client{v: adm.v, auth: "Basic " + vault.AppAPIKey(id, secret)}
}

// esoGetSecret replays External Secrets Operator's Fortanix provider
// (providers/v1/fortanix GetSecret): look the object up by name; for a
// SECRET export it; use value, or one JSON property of it.
func esoGetSecret(t *testing.T, c client, name, property string) ([]byte, error) {
	t.Helper()
	o := c.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": name})
	if o["obj_type"] == "SECRET" {
		o = c.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": o["kid"]})
	}
	raw, ok := o["value"]
	if !ok {
		return nil, fmt.Errorf("no value (the provider would dereference nil)")
	}
	value := unb64(t, raw)
	if property == "" {
		return value, nil
	}
	kv := map[string]string{}
	if err := json.Unmarshal(value, &kv); err != nil {
		return nil, err
	}
	p, ok := kv[property]
	if !ok {
		return nil, fmt.Errorf("no property %s", property)
	}
	return []byte(p), nil
}

// External Secrets Operator reads OPAQUE values from keys/info and SECRET
// values through export. Values come with the metadata only for OPAQUE and
// CERTIFICATE objects, never for SECRET, AES, HMAC or private keys; OPAQUE
// values only for callers allowed to read secrets, audited.
func TestSobjects_ESOReadFlowAndValueRules(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "eso")
		app, _ := adm.app(t, "eso-app", "crypto", g)
		imp := func(name, typ string, value []byte) string {
			return app.ok(t, 200, "PUT", "/crypto/v1/keys", map[string]any{"name": name, "obj_type": typ, "value": b64(value)})["kid"].(string)
		}
		opaqueKid := imp("db-url", "OPAQUE", []byte("postgres://db"))
		imp("db-creds", "OPAQUE", []byte(`{"user":"svc","password":"pw-opaque"}`))
		imp("api-token", "SECRET", []byte("tok-secret"))
		imp("json-secret", "SECRET", []byte(`{"password":"pw-secret"}`))
		cert, _ := selfSignedCert(t)
		imp("tls-cert", "CERTIFICATE", cert)
		for _, c := range []struct{ name, prop, want string }{
			{"db-url", "", "postgres://db"},
			{"db-creds", "password", "pw-opaque"},
			{"db-creds", "user", "svc"},
			{"api-token", "", "tok-secret"},
			{"json-secret", "password", "pw-secret"},
		} {
			got, err := esoGetSecret(t, app, c.name, c.prop)
			if err != nil || string(got) != c.want {
				t.Errorf("ESO read %s/%s: %q, %v", c.name, c.prop, got, err)
			}
		}
		if o := app.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "tls-cert"}); !bytes.Equal(unb64(t, o["value"]), cert) {
			t.Errorf("certificate info: value %v", o["value"])
		}
		// Sensitive types: no value in info.
		imp("aes", "AES", bytes.Repeat([]byte{7}, 32))
		imp("hmac", "HMAC", bytes.Repeat([]byte{8}, 32))
		app.key(t, map[string]any{"name": "ec", "obj_type": "EC", "elliptic_curve": "NistP256"})
		for _, name := range []string{"api-token", "aes", "hmac", "ec"} {
			if o := app.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": name}); o["value"] != nil {
				t.Errorf("info of %s carries a value", name)
			}
		}
		// A reader sees OPAQUE metadata, not the value.
		reader := v.NewMember(t, v.AccountID, "reader", vault.RoleReader)
		rc := client{v: v, auth: "Basic " + reader.Key}
		if o := rc.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "db-url"}); o["value"] != nil {
			t.Error("a reader got an OPAQUE value")
		}
		// Each OPAQUE value read is audited.
		if n := count(logMessages(t, adm, opaqueKid), "sobject.read_value sobject: success"); n != 1 {
			t.Errorf("OPAQUE value reads audited: %d, want 1", n)
		}
		if strings.Contains(v.Logs(), "postgres://db") {
			t.Error("the OPAQUE value reached the logs")
		}
	})
}
