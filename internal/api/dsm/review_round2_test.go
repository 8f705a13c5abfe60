package dsm_test

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// A group-scoped admin app reads only the audit records of what it
// reaches; account-wide reads are for account admins.
func TestLogs_ScopedToTheAdminAppsReach(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		mine, theirs := adm.group(t, "mine"), adm.group(t, "theirs")
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
		adm.ok(t, 200, "PUT", "/crypto/v1/keys", map[string]any{"name": "aes", "obj_type": "AES", "value": b64(make([]byte, 32)), "group_id": g})
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
		g := adm.group(t, "sv")
		app, _ := adm.app(t, "sv-app", "crypto", g)
		priv, _ := rsa.GenerateKey(rand.Reader, 2048)
		der, _ := x509.MarshalPKCS8PrivateKey(priv)
		kid := app.ok(t, 200, "PUT", "/crypto/v1/keys", map[string]any{"name": "RSA Key", "obj_type": "RSA", "value": b64(der)})["kid"].(string)
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
