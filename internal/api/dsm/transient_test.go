package dsm_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestTransientKeys: transient security objects are created, exported and
// used through their handle (transient_key) and never stored. A handle
// works only for the session (or, without one, the API key) that created
// it, on any replica, and ends with it.
func TestTransientKeys(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "transient")
		app, _ := adm.app(t, "kms", "crypto", g)
		sess := app.session(t)

		// The flow of Kroxylicious' Fortanix DSM KMS: a transient AES-256
		// data key with EXPORT only, exported through its handle, then
		// wrapped (AES-CBC) with a stored key encryption key found by name.
		dek := sess.key(t, map[string]any{"name": "dek-1", "key_size": 256, "obj_type": "AES", "transient": true, "key_ops": []string{"EXPORT"}, "custom_metadata": map[string]string{}})
		handle, _ := dek["transient_key"].(string)
		if handle == "" || dek["kid"] != nil || dek["origin"] != "Transient" || dek["obj_type"] != "AES" || dek["key_size"].(float64) != 256 || dek["value"] != nil {
			t.Fatalf("transient create answer: %v", dek)
		}
		if dek["group_id"] != g || dek["acct_id"] != v.AccountID {
			t.Fatalf("transient create answer: group %v account %v", dek["group_id"], dek["acct_id"])
		}
		r := sess.do(t, "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": handle})
		if r.Status != 200 || r.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("export by handle: %d %q %s", r.Status, r.Header.Get("Cache-Control"), r.Body)
		}
		exported := r.JSON(t).(map[string]any)
		dekValue := unb64(t, exported["value"])
		if len(dekValue) != 32 || exported["kid"] != nil || exported["transient_key"] != nil {
			t.Fatalf("export answer: %d-byte value, kid %v, transient_key %v", len(dekValue), exported["kid"], exported["transient_key"])
		}
		sess.key(t, map[string]any{"name": "kek", "key_size": 256, "obj_type": "AES", "key_ops": []string{"ENCRYPT", "DECRYPT", "APPMANAGEABLE"}})
		kek := sess.ok(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "kek"})["kid"].(string)
		wrapped := sess.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"kid": kek}, "alg": "AES", "mode": "CBC", "plain": b64(dekValue)})
		unwrapped := sess.ok(t, 200, "POST", "/crypto/v1/decrypt", map[string]any{"key": map[string]any{"kid": kek}, "alg": "AES", "mode": "CBC",
			"iv": wrapped["iv"], "cipher": wrapped["cipher"]})
		if !bytes.Equal(unb64(t, unwrapped["plain"]), dekValue) {
			t.Fatal("the unwrapped data key differs from the exported one")
		}
		if strings.Contains(v.Logs(), b64(dekValue)) {
			t.Fatal("the exported key material appears in the server's log")
		}
		// The audit trail names the transient object by one internal id in
		// its creation and its export.
		var exports []string
		for _, h := range adm.ok(t, 200, "GET", "/sys/v1/logs", nil)["hits"].([]any) {
			src := h.(map[string]any)["_source"].(map[string]any)
			if strings.HasPrefix(src["message"].(string), "sobject.export sobject: success") {
				exports = append(exports, src["object_id"].(string))
			}
		}
		if len(exports) != 1 {
			t.Fatalf("export records: %v", exports)
		}
		if msgs := logMessages(t, adm, exports[0]); count(msgs, "sobject.create sobject: success") != 1 || count(msgs, "sobject.export sobject: success") != 1 {
			t.Fatalf("the transient object's audit records: %v", msgs)
		}
		// Without EXPORT in key_ops nothing leaves; with only EXPORT the
		// key does not encrypt.
		sess.fail(t, 403, "ENCRYPT is not among the security object's key_ops", "POST", "/crypto/v1/encrypt",
			map[string]any{"key": map[string]any{"transient_key": handle}, "alg": "AES", "mode": "CBC", "plain": b64([]byte("x"))})

		t.Run("encrypt-decrypt", func(t *testing.T) {
			k := sess.key(t, map[string]any{"obj_type": "AES", "key_size": 128, "transient": true, "key_ops": []string{"ENCRYPT", "DECRYPT", "EXPORT"}})
			h := map[string]any{"transient_key": k["transient_key"]}
			key := unb64(t, sess.ok(t, 200, "POST", "/crypto/v1/keys/export", h)["value"])
			plain := []byte("sealed with a key that is never stored")
			enc := sess.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": h, "alg": "AES", "mode": "GCM", "tag_len": 128, "plain": b64(plain)})
			if _, has := enc["kid"]; has {
				t.Fatalf("an answer for a transient key names a kid: %v", enc)
			}
			block, _ := aes.NewCipher(key)
			aead, _ := cipher.NewGCM(block)
			got, err := aead.Open(nil, unb64(t, enc["iv"]), append(unb64(t, enc["cipher"]), unb64(t, enc["tag"])...), nil)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("Go cannot open the server's ciphertext with the exported key: %v", err)
			}
			dec := sess.ok(t, 200, "POST", "/crypto/v1/decrypt", map[string]any{"key": h, "alg": "AES", "mode": "GCM", "tag_len": 128,
				"iv": enc["iv"], "cipher": enc["cipher"], "tag": enc["tag"]})
			if _, has := dec["kid"]; has || !bytes.Equal(unb64(t, dec["plain"]), plain) {
				t.Fatalf("decrypt answer: %v", dec)
			}
		})

		t.Run("sign-verify-info", func(t *testing.T) {
			k := sess.key(t, map[string]any{"name": "signer", "obj_type": "EC", "elliptic_curve": "NistP256", "transient": true})
			h := map[string]any{"transient_key": k["transient_key"]}
			digest := sha256.Sum256([]byte("message"))
			sig := sess.ok(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": h, "hash_alg": "SHA256", "hash": b64(digest[:])})
			if _, has := sig["kid"]; has {
				t.Fatalf("sign answer names a kid: %v", sig)
			}
			if !verifyIndependently(t, unb64(t, k["pub_key"]), crypto.SHA256, digest[:], unb64(t, sig["signature"]), false) {
				t.Fatal("the signature does not verify with the transient key's pub_key")
			}
			ver := sess.ok(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": h, "hash_alg": "SHA256", "hash": b64(digest[:]), "signature": sig["signature"]})
			if ver["result"] != true {
				t.Fatalf("verify: %v", ver)
			}
			info := sess.ok(t, 200, "POST", "/crypto/v1/keys/info", h)
			if info["origin"] != "Transient" || info["name"] != "signer" || info["kid"] != nil || info["transient_key"] != nil || info["value"] != nil {
				t.Fatalf("info of a transient key: %v", info)
			}
			// Not exportable by default (generation leaves EXPORT out).
			sess.fail(t, 403, "not exportable", "POST", "/crypto/v1/keys/export", h)
		})

		t.Run("import", func(t *testing.T) {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			k := sess.ok(t, 200, "PUT", "/crypto/v1/keys", map[string]any{"obj_type": "AES", "value": b64(key), "transient": true})
			if k["origin"] != "Transient" || k["kid"] != nil || k["value"] != nil {
				t.Fatalf("transient import answer: %v", k)
			}
			iv := make([]byte, 16)
			enc := sess.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"transient_key": k["transient_key"]}, "alg": "AES",
				"mode": "CTR", "iv": b64(iv), "plain": b64([]byte("imported"))})
			block, _ := aes.NewCipher(key)
			got := make([]byte, len("imported"))
			cipher.NewCTR(block, iv).XORKeyStream(got, unb64(t, enc["cipher"]))
			if string(got) != "imported" {
				t.Fatal("the transient key does not encrypt with the imported material")
			}
		})

		t.Run("never-stored", func(t *testing.T) {
			if l := sess.list(t, "/crypto/v1/keys"); len(l) != 1 || l[0].(map[string]any)["name"] != "kek" {
				t.Fatalf("objects listed: %v", l)
			}
			if bytes.Contains(v.DatabaseBytes(t), []byte("dek-1")) {
				t.Fatal("the transient object's name is in the database")
			}
		})

		t.Run("bound-to-its-session", func(t *testing.T) {
			exp := map[string]any{"transient_key": handle}
			other, _ := adm.app(t, "other", "crypto", g)
			for name, c := range map[string]client{
				"another session of the app": app.session(t), "the app's API key": app, "another app": other.session(t), "the account admin": adm,
			} {
				if r := c.do(t, "POST", "/crypto/v1/keys/export", exp); r.Status != 404 {
					t.Errorf("%s: export by handle: %d %s", name, r.Status, r.Body)
				}
			}
			tenant := v.NewTenant(t, "elsewhere", vault.RoleAdmin)
			if r := v.Do(t, "POST", "/crypto/v1/keys/export", exp, "Authorization", "Basic "+tenant.Key); r.Status != 404 {
				t.Errorf("another account: %d %s", r.Status, r.Body)
			}
			// Any other replica opens it: nothing about it is on one server.
			rep := v.Replica(t)
			if r := rep.Do(t, "POST", "/crypto/v1/keys/export", exp, "Authorization", sess.auth); r.Status != 200 {
				t.Fatalf("export on another replica: %d %s", r.Status, r.Body)
			}
			// A changed handle is no handle.
			raw := unb64(t, handle)
			raw[len(raw)-1] ^= 1
			sess.fail(t, 404, "", "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": b64(raw)})
			sess.fail(t, 400, "binary fields must be base64", "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": "not base64!"})
			sess.fail(t, 400, "transient_key must not be empty", "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": ""})
			sess.fail(t, 400, "inline keys are not supported", "POST", "/crypto/v1/keys/export", map[string]any{"inline": map[string]any{}})
			// It ends with the session.
			s2 := app.session(t)
			h2 := s2.key(t, map[string]any{"obj_type": "AES", "key_size": 256, "transient": true, "key_ops": []string{"EXPORT"}})["transient_key"]
			s2.ok(t, 200, "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": h2})
			s2.ok(t, 204, "POST", "/sys/v1/session/terminate", nil)
			if r := app.session(t).do(t, "POST", "/crypto/v1/keys/export", map[string]any{"transient_key": h2}); r.Status != 404 {
				t.Fatalf("a terminated session's transient key: %d %s", r.Status, r.Body)
			}
		})

		t.Run("without-a-session", func(t *testing.T) {
			k := app.key(t, map[string]any{"obj_type": "AES", "key_size": 256, "transient": true, "key_ops": []string{"EXPORT"}})
			h := map[string]any{"transient_key": k["transient_key"]}
			app.ok(t, 200, "POST", "/crypto/v1/keys/export", h)
			if r := app.session(t).do(t, "POST", "/crypto/v1/keys/export", h); r.Status != 404 {
				t.Fatalf("a session uses an API key's transient key: %d %s", r.Status, r.Body)
			}
			// It lives as long as a session opened with it would.
			v.Clock.Advance(vault.DefaultSessionTTL - time.Minute)
			app.ok(t, 200, "POST", "/crypto/v1/keys/export", h)
			v.Clock.Advance(2 * time.Minute)
			app.fail(t, 404, "", "POST", "/crypto/v1/keys/export", h)
		})

		t.Run("refused", func(t *testing.T) {
			s := app.session(t)
			s.fail(t, 400, "obj_type is required", "POST", "/crypto/v1/keys", map[string]any{"transient": true})
			s.fail(t, 400, "cannot be generated", "POST", "/crypto/v1/keys", map[string]any{"obj_type": "SECRET", "transient": true})
			s.fail(t, 400, "transient objects are not rotated", "POST", "/crypto/v1/keys/rekey", map[string]any{"name": "kek", "transient": true})
			s.fail(t, 400, "cannot become transient", "PATCH", "/crypto/v1/keys/"+kek, map[string]any{"transient": true})
			// A reader may not create one.
			reader := client{v: v, auth: "Basic " + v.NewMember(t, v.AccountID, "reader", vault.RoleReader).Key}
			if r := reader.do(t, "POST", "/crypto/v1/keys", map[string]any{"obj_type": "AES", "key_size": 256, "transient": true}); r.Status != 403 {
				t.Fatalf("a reader creates a transient key: %d %s", r.Status, r.Body)
			}
		})
	})
}
