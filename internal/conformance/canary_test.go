package conformance_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// canarySet is the secrets written into the vault, each searched for in
// every form it could leak in: raw bytes, base64 (standard, unpadded,
// URL-safe) and hex (lower and upper case; PostgreSQL shows bytea as hex).
type canarySet struct {
	labels []string
	forms  [][][]byte
}

func encodings(b []byte) [][]byte {
	return [][]byte{
		b,
		[]byte(base64.StdEncoding.EncodeToString(b)),
		[]byte(base64.RawStdEncoding.EncodeToString(b)),
		[]byte(base64.URLEncoding.EncodeToString(b)),
		[]byte(base64.RawURLEncoding.EncodeToString(b)),
		[]byte(hex.EncodeToString(b)),
		[]byte(strings.ToUpper(hex.EncodeToString(b))),
	}
}

func (cs *canarySet) add(label string, b []byte) {
	if len(b) < 12 {
		panic("canary too short to be unique: " + label)
	}
	cs.labels = append(cs.labels, label)
	cs.forms = append(cs.forms, encodings(bytes.Clone(b)))
}

// addKey adds an API key or token, and the secret half of a
// base64(id:secret) key on its own.
func (cs *canarySet) addKey(label, key string) {
	cs.add(label, []byte(key))
	if raw, err := base64.StdEncoding.DecodeString(key); err == nil {
		if _, secret, ok := strings.Cut(string(raw), ":"); ok {
			cs.add(label+" (secret half)", []byte(secret))
		}
	}
}

// addPKCS8 adds a private key's DER and its private scalars (never the
// public parts, which are served in pub_key legitimately).
func (cs *canarySet) addPKCS8(t *testing.T, label string, der []byte) {
	t.Helper()
	cs.add(label+" PKCS#8", der)
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		t.Fatalf("%s: not PKCS#8: %v", label, err)
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		cs.add(label+" RSA d", k.D.Bytes())
		cs.add(label+" RSA p", k.Primes[0].Bytes())
		cs.add(label+" RSA PKCS#1", x509.MarshalPKCS1PrivateKey(k))
	case *ecdsa.PrivateKey:
		d, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		cs.add(label+" EC d", d)
		if sec1, err := x509.MarshalECPrivateKey(k); err == nil {
			cs.add(label+" EC SEC1", sec1)
		}
	default:
		t.Fatalf("%s: unexpected key type %T", label, k)
	}
}

// check reports every canary found in haystack.
func (cs *canarySet) check(t *testing.T, where string, haystack []byte) {
	t.Helper()
	if len(haystack) == 0 {
		return
	}
	for i, forms := range cs.forms {
		for j, f := range forms {
			if bytes.Contains(haystack, f) {
				t.Errorf("%s contains canary %q (form %d)", where, cs.labels[i], j)
				break
			}
		}
	}
}

// found reports whether any form of b is in haystack (positive controls).
func found(haystack, b []byte) bool {
	for _, f := range encodings(b) {
		if bytes.Contains(haystack, f) {
			return true
		}
	}
	return false
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func canaryText(t *testing.T, what string) string {
	return "CANARY-" + what + "-" + hex.EncodeToString(randBytes(t, 12))
}

// TestCanaries writes known secrets through every path that accepts one —
// SGP create and update, DSM import of SECRET, OPAQUE, AES, HMAC, RSA and EC
// keys, generated RSA, EC and AES keys (exported once to learn their
// material), keys replaced by rekey and credential rotation, API keys, app
// secrets and session tokens — exercises every operation and a set of
// failing requests that carry the secrets, and checks that no canary, in
// any encoding, appears in: a non-secret response (status, headers, body;
// everything but SGP /secret, DSM /keys/export, the app credential and the
// session tokens), the server log, /metrics, the audit trail (GET
// /sys/v1/logs and the store's raw records) or the raw database.
func TestCanaries(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		cs := &canarySet{}
		var responses []struct {
			what string
			body []byte
		}
		keep := func(what string, r *vaulttest.Response) *vaulttest.Response {
			var h bytes.Buffer
			_ = r.Header.Write(&h)
			responses = append(responses, struct {
				what string
				body []byte
			}{what, append(h.Bytes(), r.Body...)})
			return r
		}
		root := newCaller(v, "bootstrap-admin", v.AdminKey)
		cs.addKey("bootstrap admin key", v.AdminKey)
		// send sends a request in the dialect its path belongs to.
		send := func(c *caller, method, path string, body any) *vaulttest.Response {
			t.Helper()
			if strings.HasPrefix(path, "/v5/") {
				return c.sgp(t, method, path, body)
			}
			return c.dsm(t, method, path, body)
		}
		must := func(c *caller, want int, method, path string, body any) map[string]any {
			t.Helper()
			r := keep(method+" "+path, send(c, method, path, body))
			if r.Status != want {
				t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
			}
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			return m
		}
		// fail sends a request that must be refused; its body is an error
		// body and is checked like every other response.
		fail := func(c *caller, want int, method, path string, body any) {
			t.Helper()
			r := keep("error "+method+" "+path, send(c, method, path, body))
			if r.Status != want {
				t.Errorf("%s %s: status %d, want %d: %s", method, path, r.Status, want, r.Body)
			}
		}

		// ---- principals and their keys ----
		writerT := v.NewMember(t, v.AccountID, "canary-writer", vault.RoleWriter)
		readerT := v.NewMember(t, v.AccountID, "canary-reader", vault.RoleReader)
		cs.addKey("writer API key", writerT.Key)
		cs.addKey("reader API key", readerT.Key)
		writer, reader := newCaller(v, "writer", writerT.Key), newCaller(v, "reader", readerT.Key)
		group := must(root, 200, "POST", "/sys/v1/groups", map[string]any{"name": "canary-group"})["group_id"].(string)
		appID := must(root, 200, "POST", "/sys/v1/apps", map[string]any{"name": "canary-app", "role": "crypto", "add_groups": map[string]any{group: []string{"SIGN", "EXPORT"}}})["app_id"].(string)
		// The app secret: a secret response (not kept).
		appSecret := root.must(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)["credential"].(map[string]any)["secret"].(string)
		appKey := vault.AppAPIKey(appID, appSecret)
		cs.add("app secret", []byte(appSecret))
		cs.addKey("app key", appKey)
		// Reset, and a second secret: the first stays a canary too.
		must(root, 200, "POST", "/sys/v1/apps/"+appID+"/reset_secret", map[string]any{})
		appSecret2 := root.must(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)["credential"].(map[string]any)["secret"].(string)
		appKey2 := vault.AppAPIKey(appID, appSecret2)
		cs.add("app secret after reset", []byte(appSecret2))
		cs.addKey("app key after reset", appKey2)
		app := newCaller(v, "app", appKey2)
		// Session tokens: secret responses.
		sessTok := root.must(t, 200, "POST", "/sys/v1/session/auth", nil)["access_token"].(string)
		cs.add("admin session token", []byte(sessTok))
		adminSess := newCaller(v, "admin-session", v.AdminKey)
		adminSess.auth = "Bearer " + sessTok
		appTok := app.must(t, 200, "POST", "/sys/v1/session/auth", nil)["access_token"].(string)
		cs.add("app session token", []byte(appTok))
		appSess := newCaller(v, "app-session", appKey2)
		appSess.auth = "Bearer " + appTok
		reTok := appSess.must(t, 200, "POST", "/sys/v1/session/reauth", nil)["access_token"].(string)
		cs.add("app reauth token", []byte(reTok))

		// ---- SGP: create and update ----
		sgpCreated, sgpUpdated, sgpJSON := canaryText(t, "sgp-created"), canaryText(t, "sgp-updated"), canaryText(t, "sgp-json")
		for _, s := range []string{sgpCreated, sgpUpdated, sgpJSON} {
			cs.add(s, []byte(s))
		}
		c1 := must(root, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-sgp-created", "payload": sgpCreated})["id"].(string)
		c2 := must(writer, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-sgp-updated", "payload": "placeholder-before-update"})["id"].(string)
		must(writer, 200, "PATCH", "/v5/credentials/"+c2, map[string]any{"payload": sgpUpdated, "description": "updated"})
		c3 := must(root, 200, "POST", "/v5/credentials", map[string]any{"type": "json", "name": "canary-sgp-json", "payload": `{"token":"` + sgpJSON + `"}`})["id"].(string)

		// ---- DSM: imports ----
		secretVal := append([]byte("CANARY-SECRET-"), randBytes(t, 20)...)
		opaqueVal := randBytes(t, 40)
		aesVal, hmacVal := randBytes(t, 32), randBytes(t, 48)
		rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		rsaDER, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
		ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
		cs.add("imported SECRET", secretVal)
		cs.add("imported OPAQUE", opaqueVal)
		cs.add("imported AES", aesVal)
		cs.add("imported HMAC", hmacVal)
		cs.addPKCS8(t, "imported RSA", rsaDER)
		cs.addPKCS8(t, "imported EC", ecDER)
		kids := map[string]string{}
		for _, im := range []struct {
			name, typ string
			value     []byte
			by        *caller
		}{
			{"canary-secret", "SECRET", secretVal, root},
			{"canary-opaque", "OPAQUE", opaqueVal, writer},
			{"canary-aes", "AES", aesVal, app},
			{"canary-hmac", "HMAC", hmacVal, appSess},
			{"canary-rsa", "RSA", rsaDER, root},
			{"canary-ec", "EC", ecDER, adminSess},
		} {
			body := map[string]any{"name": im.name, "obj_type": im.typ, "value": b64(im.value), "group_id": group, "allow_credential_use": true}
			kids[im.name] = must(im.by, 201, "PUT", "/crypto/v1/keys", body)["kid"].(string)
		}

		// ---- DSM: generated keys, exported once to learn their material ----
		gen := func(c *caller, name string, body map[string]any) string {
			body["name"], body["group_id"] = name, group
			body["allow_credential_use"] = true
			kid := must(c, 201, "POST", "/crypto/v1/keys", body)["kid"].(string)
			kids[name] = kid
			return kid
		}
		exportValue := func(c *caller, kid string) []byte {
			return unb64(t, c.must(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": kid})["value"])
		}
		withExport := func(ops ...string) []string { return append(ops, "EXPORT", "APPMANAGEABLE") }
		genRSA := gen(root, "canary-gen-rsa", map[string]any{"obj_type": "RSA", "key_size": 2048, "key_ops": withExport("SIGN", "VERIFY")})
		genEC := gen(app, "canary-gen-ec", map[string]any{"obj_type": "EC", "elliptic_curve": "NistP256", "key_ops": withExport("SIGN", "VERIFY")})
		genAES := gen(writer, "canary-gen-aes", map[string]any{"obj_type": "AES", "key_size": 256, "key_ops": withExport("ENCRYPT", "DECRYPT")})
		gen(root, "canary-gen-hmac", map[string]any{"obj_type": "HMAC", "key_size": 256}) // not exportable: never leaves
		cs.addPKCS8(t, "generated RSA", exportValue(root, genRSA))
		cs.addPKCS8(t, "generated EC", exportValue(app, genEC))
		cs.add("generated AES", exportValue(writer, genAES))

		// ---- exercise everything ----
		digest := sha256.Sum256([]byte("canary message"))
		for _, name := range []string{"canary-rsa", "canary-ec", "canary-gen-rsa", "canary-gen-ec"} {
			for _, c := range []*caller{root, app, appSess} {
				sig := must(c, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": kids[name]}, "hash_alg": "SHA256", "hash": b64(digest[:])})["signature"]
				must(c, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"name": name}, "hash_alg": "SHA256", "data": b64([]byte("canary message")), "signature": sig})
			}
		}
		// Encrypt a canary plaintext (kept: the response holds only
		// ciphertext) and decrypt it (a secret response, not kept).
		encPlain := []byte(canaryText(t, "encrypt-plaintext"))
		cs.add("encrypted plaintext", encPlain)
		for _, c := range []*caller{app, appSess} {
			enc := must(c, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": kids["canary-aes"]}, "alg": "AES", "mode": "GCM",
				"tag_len": 128, "ad": b64([]byte("ad")), "plain": b64(encPlain)})
			dec := c.must(t, 200, "POST", "/crypto/v1/decrypt", map[string]any{"key": map[string]any{"kid": kids["canary-aes"]}, "mode": "GCM", "tag_len": 128,
				"ad": b64([]byte("ad")), "cipher": enc["cipher"], "iv": enc["iv"], "tag": enc["tag"]})
			if !bytes.Equal(unb64(t, dec["plain"]), encPlain) {
				t.Errorf("decrypt: %v", dec)
			}
		}
		for name, kid := range kids {
			for _, c := range []*caller{root, reader, app} {
				if name == "canary-opaque" && c != reader {
					// DSM returns OPAQUE values with the metadata: a secret
					// response for callers allowed to read secrets (not kept).
					if got := c.must(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid}); !bytes.Equal(unb64(t, got["value"]), opaqueVal) {
						t.Errorf("OPAQUE info: value %v", got["value"])
					}
					continue
				}
				must(c, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
				must(c, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": name, "show_pub_key": true})
			}
			must(writer, 200, "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"description": "touched", "custom_metadata": map[string]string{"k": "v"}})
		}
		for _, q := range []string{"", "?show_value=true", "?with_metadata=true&show_pub_key=true", "?group_id=" + group + "&sort=name:desc", "?obj_type=SECRET"} {
			for _, c := range []*caller{root, reader, app, appSess} {
				must(c, 200, "GET", "/crypto/v1/keys"+q, nil)
			}
		}
		// Rekey a generated and an imported key; rotate a credential that
		// references the imported RSA key. The replacements' material is
		// exported and becomes a canary too.
		newEC := must(app, 200, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "canary-gen-ec", "deactivate_rotated_key": true})["kid"].(string)
		cs.addPKCS8(t, "rekeyed EC", exportValue(app, newEC))
		newAES := must(root, 200, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "canary-aes"})["kid"].(string)
		cs.add("rekeyed AES", exportValue(root, newAES))
		ic := must(app, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "canary-oci", "group_id": group, "credential_details": ociDetails(kids["canary-rsa"])})["credential_id"].(string)
		azs := must(root, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "canary-azure", "group_id": group, "credential_details": map[string]any{
			"$type": "Azure", "body": map[string]any{"$type": "ClientSecret", "tenant_id": "t", "client_id": "c", "client_secret": kids["canary-secret"]}}})["credential_id"].(string)
		rot := must(app, 200, "POST", "/sys/v1/credentials/"+ic+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		rotKID := rot["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"].(string)
		cs.addPKCS8(t, "rotated RSA", exportValue(app, rotKID))
		fail(root, 400, "POST", "/sys/v1/credentials/"+azs+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		for _, c := range []*caller{root, reader, app} {
			must(c, 200, "GET", "/sys/v1/credentials", nil)
			must(c, 200, "GET", "/sys/v1/credentials/"+ic, nil)
			must(c, 200, "GET", "/sys/v1/credentials/"+azs, nil)
			must(c, 200, "GET", "/sys/v1/groups", nil)
			must(c, 200, "GET", "/sys/v1/apps", nil)
			must(c, 200, "GET", "/sys/v1/apps/"+appID, nil)
		}
		must(root, 200, "PATCH", "/sys/v1/credentials/"+ic, map[string]any{"description": "touched"})
		must(appSess, 204, "POST", "/sys/v1/session/refresh", nil)
		// SGP reads.
		for _, c := range []*caller{root, writer, reader} {
			for _, id := range []string{c1, c2, c3} {
				must(c, 200, "GET", "/v5/credentials/"+id, nil)
			}
			for _, n := range []string{"canary-sgp-created", "canary-sgp-updated", "canary-sgp-json"} {
				must(c, 200, "GET", "/v5/credentials/name/"+url.PathEscape(n), nil)
			}
			for _, q := range []string{"", "?sort_by=name", "?name=canary-sgp-created", "?limit=1"} {
				must(c, 200, "GET", "/v5/credentials"+q, nil)
			}
		}
		// Secret reads (plaintext legitimately comes back; not kept).
		if got := root.must(t, 200, "POST", "/v5/credentials/"+c2+"/secret", nil)["result"]; got != sgpUpdated {
			t.Errorf("decrypt after update: %v", got)
		}
		root.must(t, 200, "POST", "/v5/credentials/name/canary-sgp-created/secret", nil)
		exportValue(root, kids["canary-secret"])
		exportValue(root, kids["canary-opaque"])

		// ---- failing requests that carry the secrets ----
		fail(reader, 403, "POST", "/v5/credentials/"+c1+"/secret", nil)
		fail(reader, 403, "POST", "/crypto/v1/keys/export", map[string]any{"kid": kids["canary-secret"]})
		fail(root, 403, "POST", "/crypto/v1/keys/export", map[string]any{"kid": kids["canary-gen-hmac"]})
		fail(reader, 403, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-refused", "payload": sgpCreated})
		fail(root, 409, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-sgp-created", "payload": sgpCreated})
		fail(root, 422, "POST", "/v5/credentials", map[string]any{"type": "json", "name": "canary-bad-json", "payload": "{" + sgpJSON})
		fail(root, 422, "POST", "/v5/credentials", `{"type":"key","name":"canary-broken","payload":"`+sgpCreated+`"`)
		fail(root, 422, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "", "payload": sgpCreated})
		fail(root, 422, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-num", "payload": sgpCreated, "credential_metadata": 7})
		fail(root, 413, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-huge", "payload": sgpCreated + strings.Repeat("x", vault.DefaultMaxPayload)})
		fail(root, 404, "PATCH", "/v5/credentials/"+vault.NewID(), map[string]any{"payload": sgpUpdated})
		fail(root, 409, "PATCH", "/v5/credentials/"+c1, map[string]any{"name": "canary-sgp-updated", "payload": sgpUpdated})
		fail(root, 409, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-secret", "obj_type": "SECRET", "value": b64(secretVal), "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "DES3", "value": b64(aesVal), "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "AES", "value": b64(hmacVal), "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "EC", "value": b64(rsaDER), "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "RSA", "value": b64(ecDER), "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "SECRET", "value": string(secretVal) + "!", "group_id": group})
		fail(root, 400, "PUT", "/crypto/v1/keys", `{"name":"canary-x","obj_type":"SECRET","value":"`+b64(secretVal)+`"`)
		fail(root, 400, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "SECRET", "value": b64(secretVal), "group_id": "not-a-uuid"})
		fail(root, 400, "POST", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "AES", "key_size": 256, "value": b64(aesVal), "group_id": group})
		fail(root, 400, "PATCH", "/crypto/v1/keys/"+kids["canary-secret"], map[string]any{"value": b64(secretVal)})
		// Rekey with a value imports it (dsm_secret rotation); one that is not
		// an RSA key is refused.
		fail(root, 400, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "canary-gen-rsa", "value": b64(ecDER)})
		fail(root, 400, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": kids["canary-aes"]}, "hash_alg": "SHA256", "hash": b64(digest[:])})
		fail(reader, 403, "PUT", "/crypto/v1/keys", map[string]any{"name": "canary-x", "obj_type": "SECRET", "value": b64(secretVal), "group_id": group})
		// Read again the DSM way (a secret response, not kept): the same secret.
		if again := root.must(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)["credential"].(map[string]any)["secret"]; again != appSecret2 {
			t.Errorf("the second credential read returned another secret")
		}
		// Authentication with near-miss and revoked secrets.
		bogus := base64.StdEncoding.EncodeToString([]byte(vault.NewID() + ":" + canaryText(t, "bogus-key-secret")))
		cs.addKey("bogus API key", bogus)
		fail(newCaller(v, "bogus", bogus), 401, "GET", "/v5/credentials", nil)
		fail(newCaller(v, "bogus", bogus), 401, "GET", "/sys/v1/groups", nil)
		fail(newCaller(v, "old app key", appKey), 401, "POST", "/sys/v1/session/auth", nil)
		fail(newCaller(v, "garbled", v.AdminKey+"x"), 401, "GET", "/v5/credentials", nil)
		garbledBearer := newCaller(v, "garbled bearer", "")
		garbledBearer.auth = "Bearer " + sessTok + "x"
		fail(garbledBearer, 401, "GET", "/sys/v1/groups", nil)
		garbledBearer.auth = "Basic " + appKey2 + "=="
		fail(garbledBearer, 401, "GET", "/sys/v1/groups", nil)
		must(appSess, 204, "POST", "/sys/v1/session/terminate", nil)
		fail(appSess, 401, "GET", "/sys/v1/groups", nil)

		// Delete some things (their secrets must be gone as well).
		must(root, 200, "DELETE", "/v5/credentials/"+c3, nil)
		must(root, 204, "DELETE", "/sys/v1/credentials/"+azs, nil)
		must(root, 204, "DELETE", "/crypto/v1/keys/"+kids["canary-opaque"], nil)

		// ---- where the canaries must not be ----
		metrics := v.Do(t, "GET", "/metrics", nil)
		if metrics.Status != 200 {
			t.Fatalf("metrics: %d", metrics.Status)
		}
		logsAPI := root.must(t, 200, "GET", "/sys/v1/logs?size=1000", nil)
		logsRaw, _ := json.Marshal(logsAPI)

		t.Run("responses", func(t *testing.T) {
			if len(responses) < 200 {
				t.Fatalf("only %d responses kept", len(responses))
			}
			var all []byte
			for _, r := range responses {
				cs.check(t, "response to "+r.what, r.body)
				all = append(all, r.body...)
			}
			// Positive control: a public key is in the responses (as base64).
			if !found(all, x509MustPKIX(t, &ecKey.PublicKey)) {
				t.Error("the imported EC public key is not in any response: the search is broken")
			}
		})
		t.Run("server log", func(t *testing.T) {
			logs := []byte(v.Logs())
			if !bytes.Contains(logs, []byte("/crypto/v1/keys")) {
				t.Fatal("the server log has no request lines: the check would prove nothing")
			}
			cs.check(t, "server log", logs)
		})
		t.Run("metrics", func(t *testing.T) {
			cs.check(t, "/metrics", metrics.Body)
		})
		t.Run("audit trail", func(t *testing.T) {
			hits, _ := logsAPI["hits"].([]any)
			if len(hits) < 50 {
				t.Fatalf("GET /sys/v1/logs returned %d records", len(hits))
			}
			cs.check(t, "GET /sys/v1/logs", logsRaw)
			var dump bytes.Buffer
			n := 0
			err := v.App.Store.ScanAudit(context.Background(), func(r vault.AuditRecord) error {
				j, err := json.Marshal(r)
				if err != nil {
					return err
				}
				dump.Write(j)
				fmt.Fprintf(&dump, "%+v\n", r)
				n++
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			cs.check(t, "audit records (ScanAudit)", dump.Bytes())
			// Positive controls: the trail names the objects and the failed
			// authentications (by key id, never the key).
			for _, id := range []string{kids["canary-rsa"], c1, appID} {
				if !bytes.Contains(dump.Bytes(), []byte(id)) {
					t.Errorf("audit trail does not mention %s: wrong records?", id)
				}
			}
			if !bytes.Contains(dump.Bytes(), []byte("auth.failure")) || !bytes.Contains(dump.Bytes(), []byte("sobject.export")) {
				t.Error("audit trail lacks auth.failure or sobject.export records")
			}
		})
		t.Run("database", func(t *testing.T) {
			db := v.DatabaseBytes(t)
			cs.check(t, "raw database ("+v.Engine+")", db)
			// Positive controls: names (text) and a public key (binary; raw
			// in SQLite, hex in PostgreSQL's text form) are found.
			for _, name := range []string{"canary-sgp-created", "canary-gen-rsa", "canary-oci", "canary-group"} {
				if !bytes.Contains(db, []byte(name)) {
					t.Errorf("name %q not found in the database bytes: wrong files or tables?", name)
				}
			}
			if !found(db, x509MustPKIX(t, &ecKey.PublicKey)) {
				t.Error("the imported EC public key is not found in the database bytes: the binary search is broken")
			}
		})
	})
}

func x509MustPKIX(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
