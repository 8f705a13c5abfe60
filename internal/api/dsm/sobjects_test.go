package dsm_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func keyOps(m map[string]any) []string {
	var out []string
	for _, o := range m["key_ops"].([]any) {
		out = append(out, o.(string))
	}
	return out
}

func TestSobjects_Generate(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		type tc struct {
			typ   string
			size  int
			curve string
		}
		cases := []tc{{"AES", 128, ""}, {"AES", 192, ""}, {"AES", 256, ""}, {"HMAC", 256, ""}, {"RSA", 2048, ""}, {"RSA", 3072, ""},
			{"EC", 0, "NistP256"}, {"EC", 0, "NistP384"}, {"EC", 0, "NistP521"}}
		if v.Engine == "sqlite" {
			cases = append(cases, tc{"RSA", 4096, ""})
		}
		for _, c := range cases {
			name := fmt.Sprintf("%s-%d%s", c.typ, c.size, c.curve)
			body := map[string]any{"name": name, "obj_type": c.typ, "group_id": g}
			if c.curve != "" {
				body["elliptic_curve"] = c.curve
			} else {
				body["key_size"] = c.size
			}
			o := adm.key(t, body)
			ops := keyOps(o)
			if slices.Contains(ops, "EXPORT") || o["origin"] != "FortanixHSM" || o["state"] != "Active" || o["enabled"] != true || o["group_id"] != g {
				t.Errorf("%s: %v", name, o)
			}
			asym := c.typ == "RSA" || c.typ == "EC"
			if asym != (o["pub_key"] != nil) {
				t.Errorf("%s: pub_key presence %v", name, o["pub_key"] != nil)
			}
			if asym && !slices.Contains(ops, "SIGN") {
				t.Errorf("%s: no SIGN in %v", name, ops)
			}
			if c.typ == "RSA" && o["key_size"].(float64) != float64(c.size) {
				t.Errorf("%s: key_size %v", name, o["key_size"])
			}
			// Never exportable by default.
			adm.fail(t, 403, "the security object is not exportable (EXPORT is not among its", "POST", "/crypto/v1/keys/export", map[string]any{"kid": o["kid"]})
		}
		adm.fail(t, 400, "AES key_size must be 128, 192 or 256", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "AES", "key_size": 100, "group_id": g})
		adm.fail(t, 400, "RSA key_size must be 2048, 3072 or 4096", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "RSA", "key_size": 1024, "group_id": g})
		adm.fail(t, 400, "elliptic_curve must be NistP256, NistP384 or NistP521", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "EC", "elliptic_curve": "SecP256K1", "group_id": g})
		adm.fail(t, 400, "security objects of type SECRET cannot be generated (generate AES,", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "SECRET", "key_size": 256, "group_id": g})
		adm.fail(t, 400, "unknown obj_type", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "BOGUS", "key_size": 256, "group_id": g})
		adm.fail(t, 400, "key_size is required for AES keys", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "AES", "group_id": g})
		adm.fail(t, 400, "name is required", "POST", "/crypto/v1/keys", map[string]any{"obj_type": "AES", "key_size": 128, "group_id": g})
		adm.fail(t, 400, "key_ops names an operation that AES objects do not implement", "POST", "/crypto/v1/keys", map[string]any{"name": "x", "obj_type": "AES", "key_size": 128, "group_id": g, "key_ops": []string{"SIGN"}})
		adm.fail(t, 409, "sobject already exists", "POST", "/crypto/v1/keys", map[string]any{"name": "AES-128", "obj_type": "AES", "key_size": 128, "group_id": g})
		// Exportable on request.
		o := adm.key(t, map[string]any{"name": "exp", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "EXPORT"}})
		ex := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"name": "exp"})
		if len(unb64(t, ex["value"])) != 32 || ex["kid"] != o["kid"] {
			t.Errorf("export: %v", ex)
		}
	})
}

func selfSignedCert(t *testing.T) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "client"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return der, k
}

func TestSobjects_ImportLookupListUpdateDelete(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g, g2 := adminWithGroups(t, v, "g", "g2")
		rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		pkcs8, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
		ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
		sec1, _ := x509.MarshalECPrivateKey(ecKey)
		pub, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
		cert, _ := selfSignedCert(t)
		imports := []struct {
			name, typ string
			value     []byte
			export    []byte // expected export value
		}{
			{"i-aes", "AES", bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{1}, 16)},
			{"i-rsa", "RSA", pkcs8, pkcs8},
			{"i-ec", "EC", sec1, nil},
			{"i-rsa-pub", "RSA", pub, pub},
			{"i-secret", "SECRET", []byte("client-secret-value"), []byte("client-secret-value")},
			{"i-opaque", "OPAQUE", []byte{0, 1, 2}, []byte{0, 1, 2}},
			{"i-cert", "CERTIFICATE", cert, cert},
			{"i-hmac", "HMAC", bytes.Repeat([]byte{7}, 32), bytes.Repeat([]byte{7}, 32)},
		}
		kids := map[string]string{}
		for _, im := range imports {
			o := adm.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": im.name, "obj_type": im.typ, "value": b64(im.value), "group_id": g,
				"custom_metadata": map[string]string{"team": "x"}})
			kids[im.name] = o["kid"].(string)
			if o["origin"] != "External" || !slices.Contains(keyOps(o), "EXPORT") || o["value"] != nil {
				t.Errorf("%s: %v", im.name, o)
			}
			ex := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": o["kid"]})
			got := unb64(t, ex["value"])
			if im.export != nil && !bytes.Equal(got, im.export) {
				t.Errorf("%s: export differs", im.name)
			}
			if im.name == "i-ec" {
				k, err := x509.ParsePKCS8PrivateKey(got)
				if err != nil || !k.(*ecdsa.PrivateKey).Equal(ecKey) {
					t.Errorf("EC export is not the imported key as PKCS#8: %v", err)
				}
			}
		}
		if o := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "i-rsa-pub"}); o["public_only"] != true || slices.Contains(keyOps(o), "SIGN") {
			t.Errorf("public-only import: %v", o)
		}
		if o := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kids["i-cert"]}); o["obj_type"] != "CERTIFICATE" || o["pub_key"] == nil {
			t.Errorf("certificate: %v", o)
		}
		adm.fail(t, 400, "value is not a DER RSA or EC key (PKCS#8, PKCS#1, SEC1 or PKIX)", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "RSA", "value": b64([]byte("junk")), "group_id": g})
		adm.fail(t, 400, "value holds a RSA key, not EC", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "EC", "value": b64(pkcs8), "group_id": g})
		adm.fail(t, 400, "value is not a DER or PEM X.509 certificate", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "CERTIFICATE", "value": b64(pkcs8), "group_id": g})
		adm.fail(t, 400, "invalid value in the request body: binary fields must be base64", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "AES", "value": "!!!", "group_id": g})
		adm.fail(t, 400, "import of security objects of type DES3 is not supported", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "DES3", "value": b64(make([]byte, 24)), "group_id": g})
		adm.fail(t, 400, "value is required for import", "PUT", "/crypto/v1/keys", map[string]any{"name": "bad", "obj_type": "AES", "group_id": g})

		adm.key(t, map[string]any{"name": "other-group", "obj_type": "AES", "key_size": 128, "group_id": g2})
		// Lists: bare array by default, with metadata on request.
		if l := adm.list(t, "/crypto/v1/keys"); len(l) != len(imports)+1 {
			t.Errorf("list: %d", len(l))
		}
		if l := adm.list(t, "/crypto/v1/keys?group_id="+g2); len(l) != 1 {
			t.Errorf("group filter: %d", len(l))
		}
		if l := adm.list(t, "/crypto/v1/keys?obj_type=RSA"); len(l) != 2 {
			t.Errorf("type filter: %d", len(l))
		}
		if l := adm.list(t, "/crypto/v1/keys?name=i-ec"); len(l) != 1 {
			t.Errorf("name filter: %d", len(l))
		}
		if l := adm.list(t, "/crypto/v1/keys?custom_metadata.team=x"); len(l) != len(imports) {
			t.Errorf("custom metadata filter: %d", len(l))
		}
		l := adm.list(t, "/crypto/v1/keys?sort=name:desc&limit=2&offset=1")
		if len(l) != 2 || l[0].(map[string]any)["name"] != "i-secret" || l[1].(map[string]any)["name"] != "i-rsa-pub" {
			t.Errorf("sorted page: %v", l)
		}
		wm := adm.ok(t, 200, "GET", "/crypto/v1/keys?with_metadata=true&obj_type=AES&limit=1", nil)
		md := wm["metadata"].(map[string]any)
		if md["total_count"].(float64) != float64(len(imports)+1) || md["filtered_count"].(float64) != 2 || len(wm["items"].([]any)) != 1 {
			t.Errorf("with_metadata: %v", wm)
		}
		adm.fail(t, 400, "sort must be one of kid, name, optionally followed by :asc or :desc", "GET", "/crypto/v1/keys?sort=size:asc", nil)
		adm.fail(t, 400, "group_id must be a UUID", "GET", "/crypto/v1/keys?group_id=nope", nil)
		adm.fail(t, 400, "limit must be a non-negative integer", "GET", "/crypto/v1/keys?limit=-1", nil)

		// Update.
		kid := kids["i-rsa"]
		up := adm.ok(t, 200, "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"name": "i-rsa-renamed", "description": "d", "enabled": false,
			"key_ops": []string{"SIGN", "VERIFY"}, "custom_metadata": map[string]string{"k": "v"}, "allow_credential_use": true})
		if up["name"] != "i-rsa-renamed" || up["enabled"] != false || up["allow_credential_use"] != true || len(keyOps(up)) != 2 ||
			up["custom_metadata"].(map[string]any)["k"] != "v" || up["description"] != "d" {
			t.Errorf("update: %v", up)
		}
		adm.fail(t, 403, "the security object is not exportable (EXPORT is not among its", "POST", "/crypto/v1/keys/export", map[string]any{"kid": kid}) // EXPORT removed
		adm.fail(t, 400, "key_ops names an operation that RSA objects do not implement", "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"key_ops": []string{"MACGENERATE"}})
		adm.fail(t, 400, "moving security objects between groups is not supported", "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"group_id": g2})
		adm.fail(t, 409, "sobject already exists", "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"name": "i-ec"})
		// A never-exportable object cannot become exportable.
		gen := adm.key(t, map[string]any{"name": "gen", "obj_type": "AES", "key_size": 128, "group_id": g})
		adm.fail(t, 400, "EXPORT cannot be added to an object that was never exportable", "PATCH", "/crypto/v1/keys/"+gen["kid"].(string), map[string]any{"key_ops": []string{"ENCRYPT", "EXPORT"}})

		// Delete.
		adm.ok(t, 204, "DELETE", "/crypto/v1/keys/"+kid, nil)
		adm.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
		adm.fail(t, 404, "sobject does not exist", "DELETE", "/crypto/v1/keys/"+kid, nil)
		adm.fail(t, 404, "sobject does not exist", "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"name": "z"})
		adm.fail(t, 400, "key_id must be a UUID", "DELETE", "/crypto/v1/keys/nope", nil)
	})
}

func TestSignVerify(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		app, _ := adm.app(t, "signer", "crypto", g)
		rsaKey := app.key(t, map[string]any{"name": "rsa", "obj_type": "RSA", "key_size": 2048})
		ecKey := app.key(t, map[string]any{"name": "ec", "obj_type": "EC", "elliptic_curve": "NistP384"})
		msg := []byte("the message to sign")
		d256 := sha256.Sum256(msg)
		d512 := sha512.Sum512(msg)

		cases := []struct {
			name   string
			key    map[string]any
			req    map[string]any
			h      crypto.Hash
			digest []byte
			pss    bool
		}{
			{"rsa-pkcs1-data", rsaKey, map[string]any{"hash_alg": "SHA256", "data": b64(msg)}, crypto.SHA256, d256[:], false},
			{"rsa-pkcs1-explicit", rsaKey, map[string]any{"hash_alg": "SHA512", "hash": b64(d512[:]), "mode": map[string]any{"PKCS1_V15": map[string]any{}}}, crypto.SHA512, d512[:], false},
			{"rsa-pss", rsaKey, map[string]any{"hash_alg": "SHA256", "hash": b64(d256[:]), "mode": map[string]any{"PSS": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": "SHA256"}}}}}, crypto.SHA256, d256[:], true},
			{"ec-data", ecKey, map[string]any{"hash_alg": "SHA256", "data": b64(msg)}, crypto.SHA256, d256[:], false},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				req := map[string]any{"key": map[string]any{"kid": c.key["kid"]}}
				for k, val := range c.req {
					req[k] = val
				}
				r := app.ok(t, 200, "POST", "/crypto/v1/sign", req)
				sig := unb64(t, r["signature"])
				if r["kid"] != c.key["kid"] {
					t.Errorf("kid: %v", r["kid"])
				}
				if !verifyIndependently(t, unb64(t, c.key["pub_key"]), c.h, c.digest, sig, c.pss) {
					t.Fatal("signature does not verify with crypto/rsa or crypto/ecdsa against pub_key")
				}
				req["signature"] = b64(sig)
				if vr := app.ok(t, 200, "POST", "/crypto/v1/verify", req); vr["result"] != true {
					t.Errorf("verify: %v", vr)
				}
				bad := slices.Clone(sig)
				bad[len(bad)/2] ^= 1
				req["signature"] = b64(bad)
				if vr := app.ok(t, 200, "POST", "/crypto/v1/verify", req); vr["result"] != false {
					t.Errorf("verify of a corrupted signature: %v", vr)
				}
			})
		}
		// By name works too.
		app.ok(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"name": "rsa"}, "hash_alg": "SHA256", "data": b64(msg)})

		// Errors.
		aes := app.key(t, map[string]any{"name": "aes", "obj_type": "AES", "key_size": 128})
		noSign := app.key(t, map[string]any{"name": "verify-only", "obj_type": "EC", "elliptic_curve": "NistP256", "key_ops": []string{"VERIFY"}})
		for _, c := range []struct {
			status int
			msg    string
			body   map[string]any
		}{
			{400, "signing needs an RSA or EC private key; this object is AES", map[string]any{"key": map[string]any{"kid": aes["kid"]}, "hash_alg": "SHA256", "data": b64(msg)}},
			{403, "SIGN is not among the security object's key_ops", map[string]any{"key": map[string]any{"kid": noSign["kid"]}, "hash_alg": "SHA256", "data": b64(msg)}},
			{400, "hash_alg: unsupported hash algorithm (use SHA1, SHA224, SHA256, SHA384 or SHA512)", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "MD5", "data": b64(msg)}},
			{400, "hash or data is required", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256"}},
			{400, "give either hash or data, not both", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256", "data": b64(msg), "hash": b64(d256[:])}},
			{400, "hash must be 32 bytes for this hash_alg", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256", "hash": b64(d512[:])}},
			{400, "key.kid must be a UUID", map[string]any{"key": map[string]any{"kid": "not-a-uuid"}, "hash_alg": "SHA256", "data": b64(msg)}},
			{400, "key must name exactly one of kid, name, transient_key or inline", map[string]any{"key": map[string]any{"kid": rsaKey["kid"], "name": "rsa"}, "hash_alg": "SHA256", "data": b64(msg)}},
			{400, "key: inline keys are not supported; use kid, name or transient_key", map[string]any{"key": map[string]any{"inline": map[string]any{}}, "hash_alg": "SHA256", "data": b64(msg)}},
			{404, "sobject does not exist", map[string]any{"key": map[string]any{"transient_key": "AAAA"}, "hash_alg": "SHA256", "data": b64(msg)}},
			{404, "sobject does not exist", map[string]any{"key": map[string]any{"kid": "00000000-0000-0000-0000-000000000000"}, "hash_alg": "SHA256", "data": b64(msg)}},
			{400, "PSS padding applies to RSA keys only", map[string]any{"key": map[string]any{"kid": ecKey["kid"]}, "hash_alg": "SHA256", "data": b64(msg), "mode": map[string]any{"PSS": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": "SHA256"}}}}}},
			{400, "unknown signature mode (supported: PSS, PKCS1_V15)", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256", "data": b64(msg), "mode": map[string]any{"OAEP": map[string]any{}}}},
		} {
			app.fail(t, c.status, c.msg, "POST", "/crypto/v1/sign", c.body)
		}
		app.fail(t, 400, "signature is required", "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256", "data": b64(msg)})
		// A disabled key does not sign.
		app.ok(t, 200, "PATCH", "/crypto/v1/keys/"+rsaKey["kid"].(string), map[string]any{"enabled": false})
		app.fail(t, 400, "the security object is disabled or deactivated and cannot sign", "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": rsaKey["kid"]}, "hash_alg": "SHA256", "data": b64(msg)})
	})
}

func TestRekey(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		old := adm.key(t, map[string]any{"name": "signer", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g, "custom_metadata": map[string]string{"a": "b"},
			"allow_credential_use": true})
		n := adm.ok(t, 200, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "signer", "deactivate_rotated_key": true})
		if n["name"] != "signer" || n["kid"] == old["kid"] || n["links"].(map[string]any)["replaced"] != old["kid"] ||
			n["custom_metadata"].(map[string]any)["a"] != "b" || n["allow_credential_use"] != true || bytes.Equal(unb64(t, n["pub_key"]), unb64(t, old["pub_key"])) {
			t.Errorf("new object: %v", n)
		}
		o := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": old["kid"]})
		if !strings.HasPrefix(o["name"].(string), "signer (rotated at ") || o["state"] != "Deactivated" || o["links"].(map[string]any)["replacement"] != n["kid"] {
			t.Errorf("old object: %v", o)
		}
		msg := []byte("m")
		adm.fail(t, 400, "the security object is disabled or deactivated and cannot sign", "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": old["kid"]}, "hash_alg": "SHA256", "data": b64(msg)})
		r := adm.ok(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"name": "signer"}, "hash_alg": "SHA256", "data": b64(msg)})
		d := sha256.Sum256(msg)
		if r["kid"] != n["kid"] || !verifyIndependently(t, unb64(t, n["pub_key"]), crypto.SHA256, d[:], unb64(t, r["signature"]), false) {
			t.Errorf("sign by name after rekey: %v", r)
		}
		// The old key still verifies what it signed before (verify works on deactivated keys).
		adm.ok(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": old["kid"]}, "hash_alg": "SHA256", "data": b64(msg), "signature": r["signature"]})

		adm.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "sec", "obj_type": "SECRET", "value": b64([]byte("s")), "group_id": g})
		adm.fail(t, 400, "security objects of type SECRET are rotated with new material given in value", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "sec"})
		// With the new material given (the Terraform provider's dsm_secret
		// rotation sends this body): a new SECRET takes the name, export
		// gives the new value, the old object keeps the old one.
		oldSec := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "sec"})
		ns := adm.ok(t, 200, "POST", "/crypto/v1/keys/rekey", map[string]any{"operation": "rotate", "name": "sec", "group_id": g,
			"description": "rotated", "value": b64([]byte("s2")), "obj_type": "SECRET"})
		if ns["name"] != "sec" || ns["kid"] == oldSec["kid"] || ns["description"] != "rotated" || ns["origin"] != "External" ||
			ns["links"].(map[string]any)["replaced"] != oldSec["kid"] {
			t.Errorf("rotated secret: %v", ns)
		}
		if e := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"name": "sec"}); string(unb64(t, e["value"])) != "s2" {
			t.Errorf("export after rotation: %v", e["value"])
		}
		if e := adm.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"kid": oldSec["kid"]}); string(unb64(t, e["value"])) != "s" {
			t.Errorf("export of the rotated-out secret: %v", e["value"])
		}
		adm.fail(t, 400, "value must not be empty", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "sec", "value": ""})
		adm.fail(t, 400, "", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "signer", "value": b64([]byte("not a key"))})
		adm.fail(t, 404, "sobject does not exist", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "missing"})
		adm.fail(t, 400, "name (of the security object to rotate) is required", "POST", "/crypto/v1/keys/rekey", map[string]any{})
	})
}

// TestTamperedKeyMaterialIsAnIntegrityError: key material whose ciphertext
// was changed in the database is refused with 409 and a message naming the
// integrity failure — never a bare 500 — on export and on sign (9.6).
func TestTamperedKeyMaterialIsAnIntegrityError(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		exp := adm.key(t, map[string]any{"name": "exp", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "EXPORT"}})
		sig := adm.key(t, map[string]any{"name": "sig", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g})

		db := v.RawDB(t)
		sel, upd := `SELECT ciphertext FROM dsm_sobjects WHERE kid = ?`, `UPDATE dsm_sobjects SET ciphertext = ? WHERE kid = ?`
		if v.Engine == sqlstore.Postgres {
			sel, upd = `SELECT ciphertext FROM dsm_sobjects WHERE kid = $1`, `UPDATE dsm_sobjects SET ciphertext = $1 WHERE kid = $2`
		}
		for _, kid := range []any{exp["kid"], sig["kid"]} {
			var ct []byte
			if err := db.QueryRow(sel, kid).Scan(&ct); err != nil {
				t.Fatal(err)
			}
			ct[len(ct)-1] ^= 1
			if _, err := db.Exec(upd, ct, kid); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			path string
			body map[string]any
		}{
			{"/crypto/v1/keys/export", map[string]any{"kid": exp["kid"]}},
			{"/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": sig["kid"]}, "hash_alg": "SHA256", "data": b64([]byte("hello"))}},
		} {
			body := adm.fail(t, 409, "the stored key material failed its integrity check (its ciphertext", "POST", c.path, c.body)
			if !strings.Contains(body, "integrity check") {
				t.Errorf("%s: body %q does not name the integrity failure", c.path, body)
			}
		}
	})
}

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
		adm, g1, g2 := adminWithGroups(t, v, "g1", "g2")
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
		o := appc.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "imported", "obj_type": "SECRET", "value": b64([]byte("s3cr3t"))})
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
			return app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": name, "obj_type": typ, "value": b64(value)})["kid"].(string)
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

// An answer that carries a security object's value (every export, and
// info of an OPAQUE or CERTIFICATE object) says that no cache may keep it;
// info without a value says nothing of the kind.
func TestSobjects_ValueAnswersAreNotCached(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		adm.key(t, map[string]any{"name": "aes", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "EXPORT"}})
		adm.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "opaque", "obj_type": "OPAQUE", "value": b64([]byte("o")), "group_id": g})
		for _, c := range []struct {
			path, name string
			value      bool
		}{
			{"/crypto/v1/keys/export", "aes", true},
			{"/crypto/v1/keys/info", "opaque", true},
			{"/crypto/v1/keys/info", "aes", false},
		} {
			r := adm.do(t, "POST", c.path, map[string]any{"name": c.name})
			if r.Status != 200 {
				t.Fatalf("%s %s: %d %s", c.path, c.name, r.Status, r.Body)
			}
			gotValue := r.JSON(t).(map[string]any)["value"] != nil
			cc := r.Header.Get("Cache-Control")
			if gotValue != c.value || (cc == "no-store") != c.value {
				t.Errorf("%s %s: value %v, Cache-Control %q; want value %v and no-store %v", c.path, c.name, gotValue, cc, c.value, c.value)
			}
		}
	})
}

// GET /crypto/v1/keys/{key_id} is DSM's lookup by kid, and how the
// Terraform provider reads its dsm_sobject and dsm_secret resources (with
// ?show_destroyed=true&show_deleted=true; a 404 drops the resource from
// the state). Its answer is that of keys/info for the kid, value and
// Cache-Control included.
func TestSobjects_GetByKid(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "tf")
		aes := adm.key(t, map[string]any{"name": "tf-aes", "obj_type": "AES", "key_size": 256, "group_id": g, "description": "made by terraform"})["kid"].(string)
		opaque := adm.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "tf-opaque", "obj_type": "OPAQUE", "value": b64([]byte("o-value")), "group_id": g})["kid"].(string)
		for _, kid := range []string{aes, opaque} {
			info := adm.do(t, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
			for _, path := range []string{"/crypto/v1/keys/" + kid + "?show_destroyed=true&show_deleted=true", "/crypto/v1/keys/" + strings.ToUpper(kid)} {
				got := adm.do(t, "GET", path, nil)
				if got.Status != 200 || !reflect.DeepEqual(got.JSON(t), info.JSON(t)) {
					t.Errorf("GET %s: %d %s\nwant the keys/info answer %s", path, got.Status, got.Body, info.Body)
				}
				if cc, want := got.Header.Get("Cache-Control"), info.Header.Get("Cache-Control"); cc != want {
					t.Errorf("GET %s: Cache-Control %q, keys/info says %q", path, cc, want)
				}
			}
		}
		if o := adm.ok(t, 200, "GET", "/crypto/v1/keys/"+opaque, nil); string(unb64(t, o["value"])) != "o-value" {
			t.Errorf("OPAQUE object read by kid: value %v", o["value"])
		}

		adm.fail(t, 400, "key_id must be a UUID", "GET", "/crypto/v1/keys/not-a-kid", nil)
		adm.fail(t, 400, "show_deleted must be true or false", "GET", "/crypto/v1/keys/"+aes+"?show_deleted=maybe", nil)
		adm.fail(t, 400, "view=", "GET", "/crypto/v1/keys/"+aes+"?view=pem", nil)
		adm.fail(t, 404, "sobject does not exist", "GET", "/crypto/v1/keys/"+vault.NewID(), nil)

		// Reach: an app outside the object's group, and another account,
		// are told what keys/info tells them.
		other := adm.group(t, "other")
		outsider, _ := adm.app(t, "outsider", "crypto", other)
		wantStatus := outsider.do(t, "POST", "/crypto/v1/keys/info", map[string]any{"kid": aes}).Status
		if wantStatus < 400 {
			t.Fatalf("keys/info lets an app outside the group read the object (%d)", wantStatus)
		}
		outsider.fail(t, wantStatus, "", "GET", "/crypto/v1/keys/"+aes, nil)
		stranger := client{v: v, auth: "Basic " + v.NewTenant(t, "stranger", vault.RoleAdmin).Key}
		stranger.fail(t, 404, "sobject does not exist", "GET", "/crypto/v1/keys/"+aes, nil)

		// Deleted: 404, which Terraform takes as "gone".
		adm.ok(t, 204, "DELETE", "/crypto/v1/keys/"+aes, nil)
		adm.fail(t, 404, "sobject does not exist", "GET", "/crypto/v1/keys/"+aes+"?show_destroyed=true&show_deleted=true", nil)
	})
}

// Every answer carrying an object has its description, "" when it has
// none: the Terraform provider creates objects with "description": "" and
// its dsm_sobject_info data source reads the member as a string (it fails
// when the member is absent).
func TestSobjects_DescriptionAlwaysPresent(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		adm.group(t, "desc")
		for _, body := range []map[string]any{
			{"name": "tf", "obj_type": "AES", "key_size": 256, "description": ""},
			{"name": "bare", "obj_type": "AES", "key_size": 256},
		} {
			created := adm.key(t, body)
			info := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": body["name"]})
			listed := adm.list(t, "/crypto/v1/keys?name="+body["name"].(string))
			if len(listed) != 1 {
				t.Fatalf("listing by name: %v", listed)
			}
			for what, o := range map[string]map[string]any{"create": created, "info": info, "list": listed[0].(map[string]any)} {
				if d, ok := o["description"].(string); !ok || d != "" {
					t.Errorf("%s of %v: description %#v, want \"\"", what, body["name"], o["description"])
				}
			}
		}
		o := adm.ok(t, 200, "PATCH", "/crypto/v1/keys/"+adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "bare"})["kid"].(string),
			map[string]any{"description": "now described"})
		if o["description"] != "now described" {
			t.Errorf("after an update: description %#v", o["description"])
		}
	})
}

// An object whose deactivation date has passed is reported Deactivated
// (as DSM reports it, and as the Terraform provider reads it to stop
// modifying the object), by every answer that carries it, and no longer
// encrypts; one whose date is ahead stays Active.
func TestSobjects_StateFollowsTheDeactivationDate(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "dates")
		past := adm.key(t, map[string]any{"name": "past", "obj_type": "AES", "key_size": 256, "group_id": g, "deactivation_date": "20250202T170405Z"})
		future := adm.key(t, map[string]any{"name": "future", "obj_type": "AES", "key_size": 256, "group_id": g, "deactivation_date": "20990101T000000Z"})
		if past["state"] != "Deactivated" || future["state"] != "Active" {
			t.Errorf("create: state %v (past date), %v (future date); want Deactivated, Active", past["state"], future["state"])
		}
		for _, o := range []map[string]any{
			adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "past"}),
			adm.ok(t, 200, "GET", "/crypto/v1/keys/"+past["kid"].(string), nil),
			adm.ok(t, 200, "PATCH", "/crypto/v1/keys/"+past["kid"].(string), map[string]any{"description": "still past"}),
		} {
			if o["state"] != "Deactivated" || o["deactivation_date"] != "20250202T170405Z" {
				t.Errorf("object past its deactivation date: state %v, deactivation_date %v", o["state"], o["deactivation_date"])
			}
		}
		r := adm.do(t, "GET", "/crypto/v1/keys?group_id="+g+"&sort=name", nil)
		var list []map[string]any
		if err := json.Unmarshal(r.Body, &list); err != nil || len(list) != 2 || list[0]["state"] != "Active" || list[1]["state"] != "Deactivated" {
			t.Errorf("list: %s", r.Body)
		}
		adm.fail(t, 400, "deactivated", "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "past"}, "alg": "AES", "mode": "CBC", "plain": b64([]byte("sixteen byte msg"))})
		adm.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "future"}, "alg": "AES", "mode": "CBC", "plain": b64([]byte("sixteen byte msg"))})
	})
}

// TestSobjects_AppManageable: without APPMANAGEABLE in an object's
// key_ops a crypto app may still use it, but not update, rotate or delete
// it, nor rotate an integration credential that references it (DSM's
// KeyOperations: "only relevant for crypto apps"); an admin app and a
// user manage it as before. A refusal changes nothing.
func TestSobjects_AppManageable(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "managed")
		crypto, _ := adm.app(t, "crypto-app", "crypto", g)
		adminApp, _ := adm.app(t, "admin-app", "admin", g)
		pinned := adm.key(t, map[string]any{"name": "pinned", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "DECRYPT"}})
		kid := pinned["kid"].(string)
		before := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})

		const refused = "key_ops lack APPMANAGEABLE"
		crypto.fail(t, 403, refused, "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"enabled": false})
		crypto.fail(t, 403, refused, "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"key_ops": []string{"ENCRYPT", "DECRYPT", "APPMANAGEABLE"}})
		crypto.fail(t, 403, refused, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "pinned"})
		crypto.fail(t, 403, refused, "DELETE", "/crypto/v1/keys/"+kid, nil)
		if after := adm.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid}); !reflect.DeepEqual(after, before) {
			t.Errorf("a refused change changed the object:\nbefore %v\nafter  %v", before, after)
		}
		// Use is not management.
		crypto.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": kid}, "alg": "AES", "mode": "CBC", "plain": b64([]byte("x"))})

		// An integration credential whose signing key the crypto app may
		// not manage is not rotated by it either.
		signing := adm.key(t, map[string]any{"name": "oci-signing", "obj_type": "RSA", "key_size": 2048, "group_id": g,
			"key_ops": []string{"SIGN", "VERIFY"}, "allow_credential_use": true})
		cred := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "oci", "group_id": g, "credential_details": ociDetails(signing["kid"].(string))})
		crypto.fail(t, 403, refused, "POST", "/sys/v1/credentials/"+cred["credential_id"].(string)+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})

		// An admin app and a user manage it.
		adminApp.ok(t, 200, "PATCH", "/crypto/v1/keys/"+kid, map[string]any{"description": "by the admin app"})
		adm.ok(t, 200, "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "pinned"})
		// With APPMANAGEABLE the crypto app manages it too.
		managed := adm.key(t, map[string]any{"name": "managed", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "APPMANAGEABLE"}})
		crypto.ok(t, 200, "PATCH", "/crypto/v1/keys/"+managed["kid"].(string), map[string]any{"enabled": false})
		crypto.ok(t, 204, "DELETE", "/crypto/v1/keys/"+managed["kid"].(string), nil)
	})
}

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
