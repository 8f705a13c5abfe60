package dsm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func TestCredentials(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g, g2 := adminWithGroups(t, v, "g", "g2")
		app, appID := adm.app(t, "ops", "crypto", g)
		sk := app.key(t, map[string]any{"name": "oci-key", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true})
		sec := app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "az-secret", "obj_type": "SECRET", "value": b64([]byte("s3cr3t")), "allow_credential_use": true})
		certDER, _ := selfSignedCert(t)
		cert := app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "az-cert", "obj_type": "CERTIFICATE", "value": b64(certDER), "allow_credential_use": true})
		ck := app.key(t, map[string]any{"name": "az-key", "obj_type": "EC", "elliptic_curve": "NistP256", "allow_credential_use": true})

		oci := app.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "oci prod", "group_id": g, "description": "d", "credential_details": ociDetails(sk["kid"])})
		ociID := oci["credential_id"].(string)
		if oci["creator"].(map[string]any)["app"] != appID || oci["group_id"] != g || len(oci["created_at"].(string)) != 16 ||
			oci["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"] != sk["kid"] {
			t.Errorf("create: %v", oci)
		}
		azs := app.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "azure secret", "group_id": g, "credential_details": map[string]any{
			"$type": "Azure", "body": map[string]any{"$type": "ClientSecret", "tenant_id": "t", "client_id": "c", "client_secret": sec["kid"]}}})
		azc := app.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "azure cert", "group_id": g, "credential_details": map[string]any{
			"$type": "Azure", "body": map[string]any{"$type": "Certificate", "tenant_id": "t", "client_id": "c", "client_cert": cert["kid"], "client_key": ck["kid"]}}})

		t.Run("get", func(t *testing.T) {
			got := app.ok(t, 200, "GET", "/sys/v1/credentials/"+ociID, nil)
			if got["name"] != "oci prod" || got["description"] != "d" {
				t.Errorf("get: %v", got)
			}
			app.fail(t, 404, "credential not found", "GET", "/sys/v1/credentials/00000000-0000-0000-0000-000000000000", nil)
			app.fail(t, 400, "cred_id must be a UUID", "GET", "/sys/v1/credentials/xyz", nil)
		})
		t.Run("list", func(t *testing.T) {
			r := app.ok(t, 200, "GET", "/sys/v1/credentials", nil)
			md := r["metadata"].(map[string]any)
			if len(r["items"].([]any)) != 3 || md["total_count"].(float64) != 3 || md["filtered_count"].(float64) != 3 {
				t.Errorf("list: %v", r)
			}
			r = app.ok(t, 200, "GET", "/sys/v1/credentials?sort_by=credential_name:asc&limit=2&offset=1", nil)
			items := r["items"].([]any)
			if len(items) != 2 || items[0].(map[string]any)["name"] != "azure secret" || items[1].(map[string]any)["name"] != "oci prod" {
				t.Errorf("sorted page: %v", items)
			}
			f := url.QueryEscape(`{"type":"Azure"}`)
			r = app.ok(t, 200, "GET", "/sys/v1/credentials?filter="+f, nil)
			if md := r["metadata"].(map[string]any); md["filtered_count"].(float64) != 2 || md["total_count"].(float64) != 3 {
				t.Errorf("filter: %v", md)
			}
			f = url.QueryEscape(`{"name":{"$in":["oci prod","nope"]}}`)
			if r = app.ok(t, 200, "GET", "/sys/v1/credentials?filter="+f, nil); len(r["items"].([]any)) != 1 {
				t.Errorf("filter $in: %v", r)
			}
			r = app.ok(t, 200, "GET", "/sys/v1/credentials?sort_by=credential_id:desc", nil)
			ids := r["items"].([]any)
			if ids[0].(map[string]any)["credential_id"].(string) < ids[2].(map[string]any)["credential_id"].(string) {
				t.Errorf("desc order: %v", ids)
			}
			app.fail(t, 400, "sort_by must be one of credential_id, credential_name, optionally", "GET", "/sys/v1/credentials?sort_by=name:asc", nil)
			app.fail(t, 400, "filter: unknown field \"secret\" (expected a JSON object such as", "GET", "/sys/v1/credentials?filter="+url.QueryEscape(`{"secret":"x"}`), nil)
			app.fail(t, 400, "filter: not a JSON object (expected a JSON object such as {\"name\":", "GET", "/sys/v1/credentials?filter=notjson", nil)
			app.fail(t, 400, "limit must be a non-negative integer", "GET", "/sys/v1/credentials?limit=abc", nil)
			app.fail(t, 400, "limit must be between 1 and 1000", "GET", "/sys/v1/credentials?limit=5000", nil)
		})
		t.Run("update", func(t *testing.T) {
			up := app.ok(t, 200, "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"name": "oci prod 2"})
			if up["name"] != "oci prod 2" || up["description"] != "d" {
				t.Errorf("patch name: %v", up)
			}
			sk2 := app.key(t, map[string]any{"name": "oci-key-2", "obj_type": "EC", "elliptic_curve": "NistP256", "allow_credential_use": true})
			up = app.ok(t, 200, "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"credential_details": ociDetails(sk2["kid"])})
			if up["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"] != sk2["kid"] {
				t.Errorf("patch details: %v", up)
			}
			app.ok(t, 200, "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"credential_details": ociDetails(sk["kid"])})
			app.ok(t, 204, "DELETE", "/crypto/v1/keys/"+sk2["kid"].(string), nil) // no longer referenced
			app.fail(t, 400, "credential_details.body.signing_key: the referenced security object", "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"credential_details": ociDetails(sec["kid"])})
			app.fail(t, 400, "name must contain a non-space character", "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"name": ""})
			app.fail(t, 409, "a credential with this name already exists in this account", "PATCH", "/sys/v1/credentials/"+ociID, map[string]any{"name": "azure cert"})
		})
		t.Run("reference-rules", func(t *testing.T) {
			noUse := app.key(t, map[string]any{"name": "no-cred-use", "obj_type": "RSA", "key_size": 2048})
			pub := app.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "az-cert"})
			other := adm.key(t, map[string]any{"name": "in-g2", "obj_type": "RSA", "key_size": 2048, "group_id": g2, "allow_credential_use": true})
			wantMsg := map[string]string{
				"no-allow-credential-use": "credential_details.body.signing_key: the referenced security object does not have allow_credential_use set",
				"wrong-type-secret":       "credential_details.body.signing_key: the referenced security object must be an RSA or EC private key, not SECRET",
				"wrong-type-cert":         "credential_details.body.signing_key: the referenced security object must be an RSA or EC private key, not CERTIFICATE (public only)",
				"unknown-kid":             "credential_details.body.signing_key: the referenced security object was not found",
				"bad-uuid":                "credential_details.body.signing_key must be a security object id (UUID)",
				"other-group":             "credential_details.body.signing_key: the referenced security object was not found",
				"azure-secret-not-secret": "credential_details.body.client_secret: the referenced security object must be a SECRET, not RSA",
				"azure-cert-not-cert":     "credential_details.body.client_cert: the referenced security object must be a CERTIFICATE, not RSA",
				"missing-field":           "credential_details.body.tenant_ocid is required",
				"unknown-outer-type":      "unknown credential_details.$type (supported: Oci, Azure)",
				"unknown-inner-type":      "unknown credential_details.body.$type for Oci (supported: ApiKey)",
				"no-body":                 "credential_details.body is required",
			}
			for name, det := range map[string]map[string]any{
				"no-allow-credential-use": ociDetails(noUse["kid"]),
				"wrong-type-secret":       ociDetails(sec["kid"]),
				"wrong-type-cert":         ociDetails(pub["kid"]),
				"unknown-kid":             ociDetails("00000000-0000-0000-0000-000000000000"),
				"bad-uuid":                ociDetails("nope"),
				"other-group":             ociDetails(other["kid"]),
				"azure-secret-not-secret": {"$type": "Azure", "body": map[string]any{"$type": "ClientSecret", "tenant_id": "t", "client_id": "c", "client_secret": sk["kid"]}},
				"azure-cert-not-cert":     {"$type": "Azure", "body": map[string]any{"$type": "Certificate", "tenant_id": "t", "client_id": "c", "client_cert": sk["kid"], "client_key": ck["kid"]}},
				"missing-field":           {"$type": "Oci", "body": map[string]any{"$type": "ApiKey", "user_ocid": "u", "signing_key": sk["kid"]}},
				"unknown-outer-type":      {"$type": "Aws", "body": map[string]any{"$type": "ApiKey"}},
				"unknown-inner-type":      {"$type": "Oci", "body": map[string]any{"$type": "Password", "user_ocid": "u"}},
				"no-body":                 {"$type": "Oci"},
			} {
				t.Run(name, func(t *testing.T) {
					msg := app.fail(t, 400, wantMsg[name], "POST", "/sys/v1/credentials", map[string]any{"name": "bad " + name, "group_id": g, "credential_details": det})
					if name == "other-group" && !strings.Contains(msg, "not found") {
						t.Errorf("a crypto app must not learn that another group's object exists: %s", msg)
					}
					// The core's field paths reach the client in DSM's names.
					if want, ok := wantMsg[name]; ok && msg != want {
						t.Errorf("message %q, want %q", msg, want)
					}
				})
			}
			// The account admin sees both groups and gets the precise reason.
			msg := adm.fail(t, 400, "credential_details.body.signing_key: the referenced security object", "POST", "/sys/v1/credentials", map[string]any{"name": "cross", "group_id": g, "credential_details": ociDetails(other["kid"])})
			if !strings.Contains(msg, "another group") {
				t.Errorf("cross-group reference message: %s", msg)
			}
			app.fail(t, 400, "group_id is required", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "credential_details": ociDetails(sk["kid"])})
			app.fail(t, 400, "credential_details is required", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "group_id": g})
			app.fail(t, 400, "name must not contain control, line-separator or bidirectional", "POST", "/sys/v1/credentials", map[string]any{"name": "line\nbreak", "group_id": g, "credential_details": ociDetails(sk["kid"])})
			app.fail(t, 400, "name must be at most 4096 characters", "POST", "/sys/v1/credentials", map[string]any{"name": strings.Repeat("n", 4097), "group_id": g, "credential_details": ociDetails(sk["kid"])})
			app.fail(t, 404, "group not found", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "group_id": g2, "credential_details": ociDetails(sk["kid"])})
			app.fail(t, 409, "a credential with this name already exists in this account", "POST", "/sys/v1/credentials", map[string]any{"name": "azure cert", "group_id": g, "credential_details": ociDetails(sk["kid"])})
			// Referenced objects cannot be deleted; nor can their group.
			app.fail(t, 409, "the security object is referenced by 1 integration credential(s);", "DELETE", "/crypto/v1/keys/"+sk["kid"].(string), nil)
			adm.fail(t, 409, "the group still holds 5 security object(s) and 3 integration", "DELETE", "/sys/v1/groups/"+g, nil)
		})
		t.Run("rotate-azure-refused", func(t *testing.T) {
			for _, c := range []map[string]any{azs, azc} {
				id := c["credential_id"].(string)
				msg := app.fail(t, 400, "Azure C", "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
				if !strings.Contains(msg, "Azure") {
					t.Errorf("message: %s", msg)
				}
				if got := app.ok(t, 200, "GET", "/sys/v1/credentials/"+id, nil); got["credential_details"].(map[string]any)["body"].(map[string]any)["$type"] == nil {
					t.Errorf("changed: %v", got)
				}
			}
			if l := app.list(t, "/crypto/v1/keys"); len(l) != 5 { // oci-key, az-secret, az-cert, az-key, no-cred-use
				t.Errorf("objects after refused rotations: %d", len(l))
			}
			app.fail(t, 400, "unknown method.$type (supported: Generate)", "POST", "/sys/v1/credentials/"+ociID+"/rotate", map[string]any{"method": map[string]any{"$type": "Import"}})
			app.fail(t, 400, "method.$type is required (Generate)", "POST", "/sys/v1/credentials/"+ociID+"/rotate", map[string]any{})
			app.fail(t, 400, "malformed JSON in the request body", "POST", "/sys/v1/credentials/"+ociID+"/rotate", "{")
		})
		t.Run("delete", func(t *testing.T) {
			id := azs["credential_id"].(string)
			app.ok(t, 204, "DELETE", "/sys/v1/credentials/"+id, nil)
			app.fail(t, 404, "credential not found", "GET", "/sys/v1/credentials/"+id, nil)
			app.fail(t, 404, "credential not found", "DELETE", "/sys/v1/credentials/"+id, nil)
			app.ok(t, 204, "DELETE", "/crypto/v1/keys/"+sec["kid"].(string), nil) // free now
		})
	})
}

func TestCredentials_RotateGenerate(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		app, _ := adm.app(t, "rotator", "crypto", g)
		for _, typ := range []map[string]any{
			{"name": "oci-rsa", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true},
			{"name": "oci-ec", "obj_type": "EC", "elliptic_curve": "NistP256", "allow_credential_use": true},
		} {
			t.Run(typ["name"].(string), func(t *testing.T) {
				old := app.key(t, typ)
				c := app.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "cred " + typ["name"].(string), "group_id": g, "credential_details": ociDetails(old["kid"])})
				id := c["credential_id"].(string)
				r := app.ok(t, 200, "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
				newKID := r["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"].(string)
				if newKID == old["kid"] || r["credential_id"] != id {
					t.Fatalf("rotate: %v", r)
				}
				n := app.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": newKID})
				o := app.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": old["kid"]})
				if n["name"] != typ["name"] || n["allow_credential_use"] != true || n["links"].(map[string]any)["replaced"] != old["kid"] {
					t.Errorf("new object: %v", n)
				}
				if o["state"] != "Deactivated" || !strings.HasPrefix(o["name"].(string), typ["name"].(string)+" (rotated at ") || o["links"].(map[string]any)["replacement"] != newKID {
					t.Errorf("old object: %v", o)
				}
				// Signatures from the credential's signing key verify with the new public key only.
				msg := []byte("oci request")
				d := sha256.Sum256(msg)
				s := app.ok(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": newKID}, "hash_alg": "SHA256", "data": b64(msg)})
				sig := unb64(t, s["signature"])
				if !verifyIndependently(t, unb64(t, n["pub_key"]), crypto.SHA256, d[:], sig, false) {
					t.Error("signature does not verify with the new public key")
				}
				if verifyIndependently(t, unb64(t, old["pub_key"]), crypto.SHA256, d[:], sig, false) {
					t.Error("signature verifies with the old public key")
				}
				app.fail(t, 400, "the security object is disabled or deactivated and cannot sign", "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": old["kid"]}, "hash_alg": "SHA256", "data": b64(msg)})
				// The old object is no longer referenced and can be deleted; the new one cannot.
				app.ok(t, 204, "DELETE", "/crypto/v1/keys/"+old["kid"].(string), nil)
				app.fail(t, 409, "the security object is referenced by 1 integration credential(s);", "DELETE", "/crypto/v1/keys/"+newKID, nil)
			})
		}
	})
}

func TestCredentials_RotateFailureRollsBack(t *testing.T) {
	var fail atomic.Bool
	failing := func(c *app.Config) {
		c.RekeyHook = func(step int) error {
			if fail.Load() {
				return errors.New("injected failure after step")
			}
			return nil
		}
	}
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		old := adm.key(t, map[string]any{"name": "k", "obj_type": "RSA", "key_size": 2048, "group_id": g, "allow_credential_use": true})
		c := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "c", "group_id": g, "credential_details": ociDetails(old["kid"])})
		id := c["credential_id"].(string)
		before := adm.list(t, "/crypto/v1/keys")

		// Fail inside the transaction, after the object was rekeyed and
		// before the credential was repointed.
		fail.Store(true)
		adm.fail(t, 500, "internal error", "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		fail.Store(false)

		after := adm.list(t, "/crypto/v1/keys")
		if len(after) != len(before) {
			t.Fatalf("objects: %d before, %d after a failed rotation", len(before), len(after))
		}
		o := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": old["kid"]})
		if o["name"] != "k" || o["state"] != "Active" || o["links"] != nil {
			t.Errorf("old object changed: %v", o)
		}
		got := adm.ok(t, 200, "GET", "/sys/v1/credentials/"+id, nil)
		if got["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"] != old["kid"] {
			t.Errorf("credential changed: %v", got)
		}
		if strings.Contains(string(adm.do(t, "GET", "/sys/v1/credentials/"+id, nil).Body), "injected") {
			t.Error("internal error detail leaked")
		}
		// And it works afterwards.
		adm.ok(t, 200, "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
	}, failing)
}

func TestIsolation(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g1, g2 := adminWithGroups(t, v, "g1", "g2")
		a1, _ := adm.app(t, "a1", "crypto", g1)
		a2, _ := adm.app(t, "a2", "crypto", g2)
		k2 := a2.key(t, map[string]any{"name": "k2", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true, "key_ops": []string{"SIGN", "VERIFY", "EXPORT"}})
		c2 := a2.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "c2", "group_id": g2, "credential_details": ociDetails(k2["kid"])})
		kid, cid := k2["kid"].(string), c2["credential_id"].(string)
		k1 := a1.key(t, map[string]any{"name": "k1", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true})

		// Another account's admin, through the same API.
		other := v.NewTenant(t, "other-account", "admin")
		oc := client{v: v, auth: "Basic " + other.Key}
		og := oc.group(t, "og")

		for _, c := range []struct {
			name string
			cl   client
		}{{"app-in-other-group", a1}, {"other-account", oc}} {
			t.Run(c.name, func(t *testing.T) {
				cl := c.cl
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/info", map[string]any{"name": "k2"})
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/export", map[string]any{"kid": kid})
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": kid}, "hash_alg": "SHA256", "data": b64([]byte("x"))})
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": kid}, "hash_alg": "SHA256", "data": b64([]byte("x")), "signature": b64([]byte("x"))})
				cl.fail(t, 404, "sobject does not exist", "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"name": "stolen"})
				cl.fail(t, 404, "sobject does not exist", "DELETE", "/crypto/v1/keys/"+kid, nil)
				cl.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "k2"})
				cl.fail(t, 404, "credential not found", "GET", "/sys/v1/credentials/"+cid, nil)
				cl.fail(t, 404, "credential not found", "PATCH", "/sys/v1/credentials/"+cid, map[string]any{"name": "x"})
				cl.fail(t, 404, "credential not found", "DELETE", "/sys/v1/credentials/"+cid, nil)
				cl.fail(t, 404, "credential not found", "POST", "/sys/v1/credentials/"+cid+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
				cl.fail(t, 404, "group not found", "GET", "/sys/v1/groups/"+g2, nil)
				cl.fail(t, 404, "group not found", "GET", "/crypto/v1/keys?group_id="+g2, nil)
				for _, it := range cl.list(t, "/crypto/v1/keys") {
					if it.(map[string]any)["kid"] == kid {
						t.Error("listed another group's object")
					}
				}
				r := cl.ok(t, 200, "GET", "/sys/v1/credentials", nil)
				for _, it := range r["items"].([]any) {
					if it.(map[string]any)["credential_id"] == cid {
						t.Error("listed another group's credential")
					}
				}
			})
		}
		// Cross-group and cross-account references are rejected.
		a1.fail(t, 400, "credential_details.body.signing_key: the referenced security object", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "group_id": g1, "credential_details": ociDetails(kid)})
		a1.fail(t, 404, "group not found", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "group_id": g2, "credential_details": ociDetails(kid)})
		oc.fail(t, 400, "credential_details.body.signing_key: the referenced security object", "POST", "/sys/v1/credentials", map[string]any{"name": "x", "group_id": og, "credential_details": ociDetails(k1["kid"])})
		a1.fail(t, 404, "group not found", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "AES", "key_size": 128, "group_id": g2})
		// a2's object is intact.
		if o := a2.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid}); o["name"] != "k2" {
			t.Errorf("k2: %v", o)
		}
		if l := a1.list(t, "/sys/v1/groups"); len(l) != 1 {
			t.Errorf("a1 sees %d groups", len(l))
		}
		if l := oc.list(t, "/sys/v1/apps"); len(l) != 0 {
			t.Errorf("other account sees %d apps", len(l))
		}
	})
}

// TestCanary: generated private key material never appears in plaintext in
// the database files, the logs or any response but export.
func TestCanary(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		var responses bytes.Buffer
		rec := func(r *vaulttest.Response) *vaulttest.Response { responses.Write(r.Body); return r }
		k := adm.key(t, map[string]any{"name": "canary", "obj_type": "RSA", "key_size": 2048, "group_id": g, "key_ops": []string{"SIGN", "VERIFY", "EXPORT"}, "allow_credential_use": true})
		ec := adm.key(t, map[string]any{"name": "canary-ec", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g, "key_ops": []string{"SIGN", "VERIFY", "EXPORT"}})
		c := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "c", "group_id": g, "credential_details": ociDetails(k["kid"])})
		for _, p := range []struct {
			m, path string
			body    any
		}{
			{"POST", "/crypto/v1/keys/info", map[string]any{"kid": k["kid"]}},
			{"GET", "/crypto/v1/keys?show_pub_key=true&show_value=true", nil},
			{"POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": k["kid"]}, "hash_alg": "SHA256", "data": b64([]byte("x"))}},
			{"GET", "/sys/v1/credentials/" + c["credential_id"].(string), nil},
			{"GET", "/sys/v1/logs", nil},
		} {
			rec(adm.do(t, p.m, p.path, p.body))
		}
		exported := map[string][]byte{}
		for _, o := range []map[string]any{k, ec} {
			ex := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": o["kid"]})
			exported[o["name"].(string)] = unb64(t, ex["value"])
		}
		// Rotation generates more material; export it too.
		r := rec(adm.do(t, "POST", "/sys/v1/credentials/"+c["credential_id"].(string)+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}}))
		if r.Status != 200 {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		newKID := r.Object(t)["credential_details"].(map[string]any)["body"].(map[string]any)["signing_key"]
		ex := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": newKID})
		exported["rotated"] = unb64(t, ex["value"])

		var db []byte
		if v.Engine == "sqlite" {
			for _, suffix := range []string{"", "-wal", "-shm"} {
				b, err := os.ReadFile(filepath.Clean(v.DatabaseURL) + suffix)
				if err == nil {
					db = append(db, b...)
				}
			}
			if len(db) == 0 {
				t.Fatal("database file not found")
			}
		}
		logs := v.Logs()
		for name, der := range exported {
			// The secret parts: the whole PKCS#8, its base64, and the private
			// scalar / exponent / prime (public parts are stored in the clear).
			needles := [][]byte{der, []byte(b64(der))}
			pk, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				t.Fatalf("%s: export is not PKCS#8: %v", name, err)
			}
			switch k := pk.(type) {
			case *rsa.PrivateKey:
				needles = append(needles, k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes(), []byte(b64(k.D.Bytes())))
			case *ecdsa.PrivateKey:
				needles = append(needles, k.D.Bytes(), []byte(b64(k.D.Bytes())))
			}
			for _, needle := range needles {
				if bytes.Contains(db, needle) {
					t.Errorf("%s: key material in the database file", name)
				}
				if strings.Contains(logs, string(needle)) {
					t.Errorf("%s: key material in the logs", name)
				}
				if bytes.Contains(responses.Bytes(), needle) {
					t.Errorf("%s: key material in a non-export response", name)
				}
			}
		}
	})
}

func TestErrors(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		for _, c := range []struct {
			m, path string
			body    any
			status  int
		}{
			{"POST", "/sys/v1/groups", "{", 400},
			{"POST", "/sys/v1/groups", "[]", 400},
			{"POST", "/sys/v1/groups", "", 400},
			{"POST", "/sys/v1/groups", `{"name": 5}`, 400},
			{"POST", "/sys/v1/groups", `{"name": "a\u0000b"}`, 400},
			{"PATCH", "/sys/v1/groups/" + g, `{"custom_metadata": {"a": 1}}`, 400},
			{"POST", "/crypto/v1/keys", `{"name": "x", "obj_type": "AES", "key_size": "big"}`, 400},
			{"POST", "/crypto/v1/keys/info", `{}`, 400},
			{"POST", "/crypto/v1/keys/info", `{"kid": "123"}`, 400},
			{"POST", "/crypto/v1/keys/export", `{"name": "missing"}`, 404},
			{"POST", "/sys/v1/credentials", `{"name": "x", "group_id": "not-uuid", "credential_details": {"$type": "Oci", "body": {}}}`, 400},
			{"POST", "/sys/v1/credentials", `{"name": "x", "group_id": "` + g + `", "credential_details": "Oci"}`, 400},
			{"POST", "/sys/v1/apps", `{"name": "x", "add_groups": 7}`, 400},
			{"GET", "/sys/v1/apps/not-a-uuid", nil, 400},
			{"GET", "/sys/v1/apps/00000000-0000-0000-0000-000000000000", nil, 404},
			{"POST", "/sys/v1/apps/00000000-0000-0000-0000-000000000000/reset_secret", `{}`, 404},
			{"DELETE", "/sys/v1/groups/00000000-0000-0000-0000-000000000000", nil, 404},
			{"PATCH", "/sys/v1/credentials/00000000-0000-0000-0000-000000000000", `{"name": "x"}`, 404},
			{"POST", "/crypto/v1/keys", `{"name": "big", "obj_type": "OPAQUE", "value": "` + strings.Repeat("A", 2<<20) + `"}`, 413},
		} {
			r := adm.do(t, c.m, c.path, c.body)
			if r.Status != c.status {
				t.Errorf("%s %s %.60v: want %d, got %d: %s", c.m, c.path, c.body, c.status, r.Status, r.Body)
			}
		}
		// Logs serve the audit trail of the account to admins only.
		l := adm.ok(t, 200, "GET", "/sys/v1/logs?size=5", nil)
		if hits := l["hits"].([]any); len(hits) == 0 || len(hits) > 5 {
			t.Errorf("logs: %d hits", len(hits))
		}
		app, _ := adm.app(t, "crypto-app", "crypto", g)
		app.fail(t, 403, "this principal's role does not allow admin operations in this account", "GET", "/sys/v1/logs", nil)
	})
}

// TestCredentials_StartPaging: besides offset, credential listings page
// by an exclusive start in the sort order (credvault's addition, a page
// whose cost does not depend on how deep it is): one page at a time, last
// id (or name) as the next start, until an empty page.
func TestCredentials_StartPaging(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		sk := adm.key(t, map[string]any{"name": "k", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true, "group_id": g})
		var ids []string
		for i := range 4 {
			c := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": fmt.Sprintf("Cred%d", 3-i), "group_id": g, "credential_details": ociDetails(sk["kid"])})
			ids = append(ids, c["credential_id"].(string))
		}
		slices.Sort(ids)
		walk := func(sortBy string, key string) []string {
			var got []string
			start := ""
			for range 10 {
				r := adm.ok(t, 200, "GET", "/sys/v1/credentials?"+url.Values{"sort_by": {sortBy}, "limit": {"1"}, "start": {start}}.Encode(), nil)
				items := r["items"].([]any)
				if md := r["metadata"].(map[string]any); md["total_count"].(float64) != 4 {
					t.Errorf("total_count %v, want 4", md["total_count"])
				}
				if len(items) == 0 {
					return got
				}
				start = items[0].(map[string]any)[key].(string)
				got = append(got, start)
			}
			t.Fatal("paging did not end")
			return nil
		}
		if diff := cmp.Diff(ids, walk("credential_id", "credential_id")); diff != "" {
			t.Errorf("by id (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"Cred3", "Cred2", "Cred1", "Cred0"}, walk("credential_name:desc", "name")); diff != "" {
			t.Errorf("by name, descending (-want +got):\n%s", diff)
		}
	})
}
