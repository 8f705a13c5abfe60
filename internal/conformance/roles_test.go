package conformance_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// The role × operation × dialect matrix.
//
// Callers: the four core roles as service principals (one API key used as
// SGP x-api-key, as DSM "Basic <key>" and, separately, through a DSM Bearer
// session opened with it), and two DSM apps created by the admin over the
// API: an "admin" app and a "crypto" app, both members of the group that
// holds the fixtures.
//
// What each role may do — the expectation a demanding user of a secrets
// manager has, which the server implements (internal/vault/roles.go):
//
//	reader         metadata only: list/get/info of credentials, groups,
//	               apps, security objects and integration credentials;
//	               never plaintext (no SGP decrypt, no DSM export); no writes
//	secret_reader  reader + plaintext (SGP decrypt, DSM export); no writes
//	writer         every data operation (create/update/delete/rotate, import,
//	               generate, export, sign, verify); no administration of
//	               groups, apps or principals, no audit log
//	admin          everything
//	app admin      as admin, within its groups (core role admin)
//	app crypto     as writer, within its groups (core role writer)
//
// Design choices of the server kept and documented here (not bugs):
//   - sign AND verify need the write permission ("use of a key"), so a
//     secret_reader or reader cannot call /crypto/v1/sign or /verify. Sign is
//     a use of the private key that a read-only role should not have (it
//     acts as the key holder); verify only needs the public key, which a
//     reader can already get from /keys/info and verify with locally, so
//     refusing it withholds nothing — it is simply not granted.
//   - a secret_reader may export any object whose key_ops include EXPORT
//     (export is DSM's "read the secret"), but cannot sign with it.
//   - the audit log (GET /sys/v1/logs) is for admins only: it reveals who
//     did what to which object across the whole account.
//   - listing and reading apps is metadata (names, roles, groups, never a
//     secret), so every role may do it; issuing an app's secret is admin-only.
//
// Permission is checked before the request's target is looked up, so a
// refused call answers 403 whether or not the target exists; every refused
// write is also checked to have changed nothing.

// status columns: admin, writer, secret_reader, reader, app admin, app crypto
type cols [6]int

var callerCols = map[string]int{"admin": 0, "writer": 1, "secret_reader": 2, "reader": 3, "app-admin": 4, "app-crypto": 5}

// fixture is what the bootstrap admin prepares before one caller's walk
// (names are prefixed with the caller so that walks do not meet).
type fixture struct {
	p              string // prefix
	group          string
	credID         string
	credName       string
	payload        string
	delCredID      string
	signKID        string // EC P-256 with SIGN, VERIFY, EXPORT
	material       []byte // its exported PKCS#8
	digest         []byte
	signature      string // base64, over digest by signKID
	delKID         string
	rekeyName      string
	rekeyKID       string
	icID, icDelID  string
	icRotID        string
	ociKID         string
	aesKID         string         // AES-256 with ENCRYPT and DECRYPT
	aesEnc         map[string]any // cipher, iv and tag of plainText under aesKID
	plainText      string
	appID          string   // a crypto app without a secret yet
	secrets        []string // values no non-secret response may contain
	secretMaterial [][]byte
}

func newFixture(t *testing.T, root *caller, group, p string) *fixture {
	t.Helper()
	f := &fixture{p: p, group: group, credName: p + "-cred", payload: "role-matrix-payload-" + p + "-" + vault.NewID()}
	f.credID = root.must(t, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": f.credName, "payload": f.payload})["id"].(string)
	f.delCredID = root.must(t, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": p + "-del", "payload": "doomed-" + p})["id"].(string)
	ec := func(name string, extra map[string]any) string {
		body := map[string]any{"name": name, "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": group}
		for k, v := range extra {
			body[k] = v
		}
		return root.must(t, 201, "POST", "/crypto/v1/keys", body)["kid"].(string)
	}
	f.signKID = ec(p+"-sign", map[string]any{"key_ops": []string{"SIGN", "VERIFY", "EXPORT", "APPMANAGEABLE"}})
	f.material = unb64(t, root.must(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": f.signKID})["value"])
	d := sha256.Sum256([]byte("role matrix " + p))
	f.digest = d[:]
	f.signature = root.must(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": f.signKID}, "hash_alg": "SHA256", "hash": b64(f.digest)})["signature"].(string)
	f.delKID = root.must(t, 201, "POST", "/crypto/v1/keys", map[string]any{"name": p + "-delkey", "obj_type": "AES", "key_size": 128, "group_id": group})["kid"].(string)
	f.rekeyName = p + "-rekey"
	f.rekeyKID = ec(f.rekeyName, nil)
	f.ociKID = ec(p+"-oci", map[string]any{"allow_credential_use": true})
	rotKID := ec(p+"-oci-rot", map[string]any{"allow_credential_use": true})
	ic := func(name, kid string) string {
		return root.must(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": name, "group_id": group, "credential_details": ociDetails(kid)})["credential_id"].(string)
	}
	f.icID, f.icDelID, f.icRotID = ic(p+"-ic", f.ociKID), ic(p+"-ic-del", f.ociKID), ic(p+"-ic-rot", rotKID)
	f.appID = root.must(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": p + "-fxapp", "role": "crypto", "add_groups": map[string]any{group: []string{"SIGN"}}})["app_id"].(string)
	f.aesKID = root.must(t, 201, "POST", "/crypto/v1/keys", map[string]any{"name": p + "-aes", "obj_type": "AES", "key_size": 256, "group_id": group,
		"key_ops": []string{"ENCRYPT", "DECRYPT"}})["kid"].(string)
	f.plainText = "role-matrix-plaintext-" + p + "-" + vault.NewID()
	f.aesEnc = root.must(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": f.aesKID}, "alg": "AES", "mode": "GCM", "tag_len": 128,
		"plain": b64([]byte(f.plainText))})
	f.secrets = []string{f.payload, f.plainText, b64([]byte(f.plainText))}
	f.secretMaterial = [][]byte{f.material}
	return f
}

type matrixOp struct {
	name   string
	write  bool // a refused call must leave the vault unchanged
	secret bool // the response carries plaintext (checked when allowed)
	want   cols
	do     func(t *testing.T, c *caller, f *fixture) *vaulttest.Response
}

const (
	ok      = 200
	created = 201
	none    = 204
	deny    = 403
)

var (
	all       = cols{ok, ok, ok, ok, ok, ok}
	secretOps = cols{ok, ok, ok, deny, ok, ok}
	writeOps  = cols{ok, ok, deny, deny, ok, ok}
	createOps = cols{created, created, deny, deny, created, created} // new security objects
	writeNone = cols{none, none, deny, deny, none, none}
	adminOps  = cols{ok, deny, deny, deny, ok, deny}

	// SGP credentials belong to the account, not to a DSM group; apps reach
	// only their groups, so they are refused there (fixed: they could read,
	// decrypt and delete every SGP credential of the account).
	sgpAll    = cols{ok, ok, ok, ok, deny, deny}
	sgpSecret = cols{ok, ok, ok, deny, deny, deny}
	sgpWrite  = cols{ok, ok, deny, deny, deny, deny}
)

func matrixOps() []matrixOp {
	sgpPath := func(p string) string { return p }
	return []matrixOp{
		// ---- SGP v5 ----
		{name: "sgp/list", want: sgpAll, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "GET", sgpPath("/v5/credentials?limit=100"), nil)
		}},
		{name: "sgp/get", want: sgpAll, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "GET", "/v5/credentials/"+f.credID, nil)
		}},
		{name: "sgp/get-by-name", want: sgpAll, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "GET", "/v5/credentials/name/"+url.PathEscape(f.credName), nil)
		}},
		{name: "sgp/decrypt", want: sgpSecret, secret: true, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			r := c.sgp(t, "POST", "/v5/credentials/"+f.credID+"/secret", nil)
			wantResult(t, r, f.payload)
			return r
		}},
		{name: "sgp/decrypt-by-name", want: sgpSecret, secret: true, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			r := c.sgp(t, "POST", "/v5/credentials/name/"+url.PathEscape(f.credName)+"/secret", nil)
			wantResult(t, r, f.payload)
			return r
		}},
		{name: "sgp/create", write: true, want: sgpWrite, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": f.p + "-new", "payload": "new-" + f.p})
		}},
		{name: "sgp/update", write: true, want: sgpWrite, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "PATCH", "/v5/credentials/"+f.credID, map[string]any{"description": "changed by " + f.p, "payload": f.payload})
		}},
		{name: "sgp/delete", write: true, want: sgpWrite, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.sgp(t, "DELETE", "/v5/credentials/"+f.delCredID, nil)
		}},

		// ---- DSM: groups ----
		{name: "dsm/list-groups", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/sys/v1/groups", nil)
		}},
		{name: "dsm/create-group", write: true, want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/sys/v1/groups", map[string]any{"name": f.p + "-group"})
		}},

		// ---- DSM: security objects ----
		{name: "dsm/list-keys", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/crypto/v1/keys", nil)
		}},
		{name: "dsm/key-info", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/crypto/v1/keys/info", map[string]any{"kid": f.signKID})
		}},
		{name: "dsm/generate-key", write: true, want: createOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/crypto/v1/keys", map[string]any{"name": f.p + "-gen", "obj_type": "AES", "key_size": 256, "group_id": f.group})
		}},
		{name: "dsm/import-key", write: true, want: createOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "PUT", "/crypto/v1/keys", map[string]any{"name": f.p + "-imp", "obj_type": "SECRET", "value": b64([]byte("imported-" + f.p)), "group_id": f.group})
		}},
		{name: "dsm/export-key", want: secretOps, secret: true, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			r := c.dsm(t, "POST", "/crypto/v1/keys/export", map[string]any{"kid": f.signKID})
			if r.Status == 200 {
				if got := unb64(t, r.Object(t)["value"]); !bytes.Equal(got, f.material) {
					t.Errorf("export returned other material than the admin's export")
				}
			}
			return r
		}},
		{name: "dsm/sign", want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": f.signKID}, "hash_alg": "SHA256", "hash": b64(f.digest)})
		}},
		{name: "dsm/verify", want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			r := c.dsm(t, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": f.signKID}, "hash_alg": "SHA256", "hash": b64(f.digest), "signature": f.signature})
			if r.Status == 200 && r.Object(t)["result"] != true {
				t.Errorf("verify of the admin's signature: %s", r.Body)
			}
			return r
		}},
		{name: "dsm/encrypt", want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": f.aesKID}, "alg": "AES", "mode": "CTR", "plain": b64([]byte("x"))})
		}},
		{name: "dsm/decrypt", want: writeOps, secret: true, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			r := c.dsm(t, "POST", "/crypto/v1/decrypt", map[string]any{"key": map[string]any{"kid": f.aesKID}, "mode": "GCM", "tag_len": 128,
				"cipher": f.aesEnc["cipher"], "iv": f.aesEnc["iv"], "tag": f.aesEnc["tag"]})
			if r.Status == 200 && string(unb64(t, r.Object(t)["plain"])) != f.plainText {
				t.Errorf("decrypt returned another plaintext")
			}
			return r
		}},
		{name: "dsm/update-key", write: true, want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "PATCH", "/crypto/v1/keys/"+f.signKID, map[string]any{"description": "changed by " + f.p})
		}},
		{name: "dsm/delete-key", write: true, want: writeNone, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "DELETE", "/crypto/v1/keys/"+f.delKID, nil)
		}},
		{name: "dsm/rekey", write: true, want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": f.rekeyName})
		}},

		// ---- DSM: integration credentials ----
		{name: "dsm/create-credential", write: true, want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/sys/v1/credentials", map[string]any{"name": f.p + "-ic-new", "group_id": f.group, "credential_details": ociDetails(f.ociKID)})
		}},
		{name: "dsm/get-credential", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/sys/v1/credentials/"+f.icID, nil)
		}},
		{name: "dsm/list-credentials", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/sys/v1/credentials", nil)
		}},
		{name: "dsm/update-credential", write: true, want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "PATCH", "/sys/v1/credentials/"+f.icID, map[string]any{"description": "changed by " + f.p})
		}},
		{name: "dsm/delete-credential", write: true, want: writeNone, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "DELETE", "/sys/v1/credentials/"+f.icDelID, nil)
		}},
		{name: "dsm/rotate-credential", write: true, want: writeOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/sys/v1/credentials/"+f.icRotID+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		}},

		// ---- DSM: apps and audit ----
		{name: "dsm/list-apps", want: all, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/sys/v1/apps", nil)
		}},
		{name: "dsm/create-app", write: true, want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "POST", "/sys/v1/apps", map[string]any{"name": f.p + "-app", "role": "crypto", "add_groups": map[string]any{f.group: []string{"SIGN"}}})
		}},
		{name: "dsm/update-app", write: true, want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			// e.g. a crypto app promoting an app (or itself) to admin
			return c.dsm(t, "PATCH", "/sys/v1/apps/"+f.appID, map[string]any{"role": "admin"})
		}},
		{name: "dsm/app-credential", write: true, secret: true, want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			// issuing an app's secret hands out the app's powers
			r := c.dsm(t, "GET", "/sys/v1/apps/"+f.appID+"/credential", nil)
			if r.Status == 200 {
				f.secrets = append(f.secrets, r.Object(t)["credential"].(map[string]any)["secret"].(string))
			}
			return r
		}},
		{name: "dsm/update-group", write: true, want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "PATCH", "/sys/v1/groups/"+f.group, map[string]any{"description": "changed by " + f.p})
		}},
		{name: "dsm/audit-log", want: adminOps, do: func(t *testing.T, c *caller, f *fixture) *vaulttest.Response {
			return c.dsm(t, "GET", "/sys/v1/logs?size=5", nil)
		}},
	}
}

func wantResult(t *testing.T, r *vaulttest.Response, want string) {
	t.Helper()
	if r.Status == 200 {
		if got, _ := r.Object(t)["result"].(string); got != want {
			t.Errorf("decrypt result %q, want %q", got, want)
		}
	}
}

// snapshot is everything an admin can observe about the account, used to
// prove that a refused write changed nothing.
func snapshot(t *testing.T, root *caller) string {
	t.Helper()
	var b strings.Builder
	add := func(what string, v any) {
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString(what + ": " + string(j) + "\n")
	}
	list := root.sgp(t, "GET", "/v5/credentials?limit=100&sort_by=name", nil)
	if list.Status != 200 {
		t.Fatalf("snapshot: %d %s", list.Status, list.Body)
	}
	items := list.Object(t)["items"].([]any)
	add("sgp", items)
	for _, it := range items {
		id := it.(map[string]any)["id"].(string)
		add("sgp secret "+id, root.must(t, 200, "POST", "/v5/credentials/"+id+"/secret", nil)["result"])
	}
	for _, p := range []string{"/sys/v1/groups", "/crypto/v1/keys?sort=name:asc", "/sys/v1/credentials?sort_by=credential_name:asc", "/sys/v1/apps"} {
		r := root.dsm(t, "GET", p, nil)
		if r.Status != 200 {
			t.Fatalf("snapshot %s: %d %s", p, r.Status, r.Body)
		}
		v := r.JSON(t)
		if p == "/sys/v1/apps" {
			// When an app's key was last used changes as the apps call.
			for _, a := range v.([]any) {
				delete(a.(map[string]any), "lastused_at")
			}
		}
		add(p, v)
	}
	return b.String()
}

func TestRoleMatrix(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		root := newCaller(v, "bootstrap-admin", v.AdminKey)
		group := root.must(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": "matrix"})["group_id"].(string)

		type who struct {
			name, col string
			c         *caller
		}
		var callers []who
		for _, role := range []vault.Role{vault.RoleAdmin, vault.RoleWriter, vault.RoleSecretReader, vault.RoleReader} {
			m := v.NewMember(t, v.AccountID, "matrix-"+string(role), role)
			basic := newCaller(v, string(role), m.Key)
			callers = append(callers, who{string(role) + "/api-key", string(role), basic})
			// The same key through a DSM session: the session carries the
			// principal's role, nothing more. (SGP rows still use the key.)
			tok := basic.must(t, 200, "POST", "/sys/v1/session/auth", nil)["access_token"].(string)
			sess := newCaller(v, string(role)+"-session", m.Key)
			sess.auth = "Bearer " + tok
			callers = append(callers, who{string(role) + "/session", string(role), sess})
		}
		adminApp, _ := root.app(t, "matrix-app-admin", "admin", group)
		cryptoApp, _ := root.app(t, "matrix-app-crypto", "crypto", group)
		callers = append(callers, who{"app-admin", "app-admin", adminApp}, who{"app-crypto", "app-crypto", cryptoApp})

		ops := matrixOps()
		for i, w := range callers {
			t.Run(w.name, func(t *testing.T) {
				f := newFixture(t, root, group, "m"+string(rune('a'+i)))
				col := callerCols[w.col]
				for _, op := range ops {
					t.Run(op.name, func(t *testing.T) {
						want := op.want[col]
						var before string
						if op.write && want == deny {
							before = snapshot(t, root)
						}
						r := op.do(t, w.c, f)
						if r.Status != want {
							t.Fatalf("%s %s: status %d, want %d: %s", w.name, op.name, r.Status, want, r.Body)
						}
						if want == deny {
							if !strings.HasPrefix(op.name, "sgp/") && r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
								t.Errorf("DSM error Content-Type %q", r.Header.Get("Content-Type"))
							}
							if op.write {
								if diff := cmp.Diff(before, snapshot(t, root)); diff != "" {
									t.Errorf("a refused %s changed the vault (-before +after):\n%s", op.name, diff)
								}
							}
						}
						if !op.secret || want == deny {
							for _, s := range f.secrets {
								if bytes.Contains(r.Body, []byte(s)) {
									t.Errorf("%s response carries the fixture's secret payload", op.name)
								}
							}
							for _, m := range f.secretMaterial {
								if bytes.Contains(r.Body, []byte(b64(m))) {
									t.Errorf("%s response carries the fixture key's private material", op.name)
								}
							}
						}
					})
				}
			})
		}
	})
}
