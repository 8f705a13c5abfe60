package dsm_test

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func pkcs7(b []byte) []byte {
	n := aes.BlockSize - len(b)%aes.BlockSize
	return append(append([]byte(nil), b...), bytes.Repeat([]byte{byte(n)}, n)...)
}

// Encrypt and decrypt round trips for every supported AES size and mode,
// each ciphertext checked independently with Go's crypto in both
// directions (what the server encrypted, Go decrypts with the key; what Go
// encrypted, the server decrypts).
func TestCrypt_AES(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "crypt")
		app, _ := adm.app(t, "crypt-app", "crypto", g)
		plain := bytes.Repeat([]byte("credvault round trip "), 5)
		ad := []byte("associated data")
		for _, bits := range []int{128, 192, 256} {
			key := make([]byte, bits/8)
			_, _ = rand.Read(key)
			name := fmt.Sprintf("aes-%d", bits)
			kid := app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": name, "obj_type": "AES", "value": b64(key)})["kid"].(string)
			block, _ := aes.NewCipher(key)
			for _, tc := range []struct {
				mode   string
				tagLen int
			}{{"GCM", 128}, {"GCM", 96}, {"CBC", 0}, {"CTR", 0}} {
				t.Run(fmt.Sprintf("%s/%s-%d", name, tc.mode, tc.tagLen), func(t *testing.T) {
					req := map[string]any{"key": map[string]any{"kid": kid}, "alg": "AES", "mode": tc.mode, "plain": b64(plain)}
					if tc.tagLen > 0 {
						req["tag_len"], req["ad"] = tc.tagLen, b64(ad)
					}
					enc := app.ok(t, 200, "POST", "/crypto/v1/encrypt", req)
					if enc["kid"] != kid {
						t.Errorf("kid %v", enc["kid"])
					}
					ct, iv := unb64(t, enc["cipher"]), unb64(t, enc["iv"])
					// Server → Go.
					var got []byte
					switch tc.mode {
					case "GCM":
						tag := unb64(t, enc["tag"])
						if len(tag) != tc.tagLen/8 || len(iv) != 12 {
							t.Fatalf("tag %d bytes, iv %d bytes", len(tag), len(iv))
						}
						aead, _ := cipher.NewGCMWithTagSize(block, tc.tagLen/8)
						var err error
						if got, err = aead.Open(nil, iv, append(append([]byte(nil), ct...), tag...), ad); err != nil {
							t.Fatalf("Go cannot open the server's GCM ciphertext: %v", err)
						}
					case "CBC":
						got = make([]byte, len(ct))
						cipher.NewCBCDecrypter(block, iv).CryptBlocks(got, ct)
						if !bytes.Equal(got, pkcs7(plain)) {
							t.Fatal("CBC padding is not PKCS#7")
						}
						got = got[:len(plain)]
					case "CTR":
						got = make([]byte, len(ct))
						cipher.NewCTR(block, iv).XORKeyStream(got, ct)
					}
					if !bytes.Equal(got, plain) {
						t.Fatal("Go decrypted something else")
					}
					// The same through the server.
					dreq := map[string]any{"key": map[string]any{"name": name}, "mode": tc.mode, "cipher": enc["cipher"], "iv": enc["iv"]}
					if tc.tagLen > 0 {
						dreq["tag_len"], dreq["ad"], dreq["tag"] = tc.tagLen, b64(ad), enc["tag"]
					}
					if dec := app.ok(t, 200, "POST", "/crypto/v1/decrypt", dreq); !bytes.Equal(unb64(t, dec["plain"]), plain) {
						t.Fatal("server round trip")
					}
					// Go → server, with an IV of Go's choosing (used as given).
					myIV := make([]byte, len(iv))
					_, _ = rand.Read(myIV)
					var goCT []byte
					dreq = map[string]any{"key": map[string]any{"kid": kid}, "alg": "AES", "mode": tc.mode, "iv": b64(myIV)}
					switch tc.mode {
					case "GCM":
						aead, _ := cipher.NewGCMWithTagSize(block, tc.tagLen/8)
						sealed := aead.Seal(nil, myIV, plain, ad)
						n := len(sealed) - tc.tagLen/8
						goCT = sealed[:n]
						// No tag_len, as the contract's DecryptRequest (and the
						// official client) has none: the tag gives its length.
						dreq["tag"], dreq["ad"] = b64(sealed[n:]), b64(ad)
					case "CBC":
						goCT = pkcs7(plain)
						cipher.NewCBCEncrypter(block, myIV).CryptBlocks(goCT, goCT)
					case "CTR":
						goCT = make([]byte, len(plain))
						cipher.NewCTR(block, myIV).XORKeyStream(goCT, plain)
					}
					dreq["cipher"] = b64(goCT)
					if dec := app.ok(t, 200, "POST", "/crypto/v1/decrypt", dreq); !bytes.Equal(unb64(t, dec["plain"]), plain) {
						t.Fatal("the server did not decrypt Go's ciphertext")
					}
					// A given IV is used: encrypting with myIV yields Go's ciphertext.
					req["iv"] = b64(myIV)
					if enc := app.ok(t, 200, "POST", "/crypto/v1/encrypt", req); !bytes.Equal(unb64(t, enc["cipher"]), goCT) || !bytes.Equal(unb64(t, enc["iv"]), myIV) {
						t.Fatal("the given IV was not used")
					}
				})
			}
		}
	})
}

// RSA encryption with OAEP (MGF1 SHA-1 and SHA-256) and PKCS#1 v1.5,
// checked with Go's crypto both ways; the session example's flow (a key
// named "RSA Key", a session, OAEP with MGF1-SHA-1, decrypt without alg).
func TestCrypt_RSA(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		app, priv, kid := adm.rsaKeyApp(t, "rsa")
		sess := app.session(t)
		plain := []byte("hello, world!")
		oaep := func(h string) map[string]any {
			return map[string]any{"OAEP": map[string]any{"mgf": map[string]any{"mgf1": map[string]any{"hash": h}}}}
		}
		for _, tc := range []struct {
			name string
			mode any
			hash func() hash.Hash
		}{
			{"OAEP-SHA1", oaep("SHA1"), sha1.New},
			{"OAEP-SHA256", oaep("SHA256"), sha256.New},
			{"PKCS1_V15", map[string]any{"PKCS1_V15": map[string]any{}}, nil},
			{"default", nil, sha256.New}, // no mode: OAEP with SHA-256
		} {
			t.Run(tc.name, func(t *testing.T) {
				req := map[string]any{"key": map[string]any{"name": "RSA Key"}, "alg": "RSA", "plain": b64(plain)}
				if tc.mode != nil {
					req["mode"] = tc.mode
				}
				enc := sess.ok(t, 200, "POST", "/crypto/v1/encrypt", req)
				if enc["kid"] != kid || enc["iv"] != nil || enc["tag"] != nil {
					t.Fatalf("encrypt: %v", enc)
				}
				ct := unb64(t, enc["cipher"])
				var got []byte
				var err error
				if tc.hash == nil {
					got, err = rsa.DecryptPKCS1v15(nil, priv, ct)
				} else {
					got, err = rsa.DecryptOAEP(tc.hash(), nil, priv, ct, nil)
				}
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("Go cannot decrypt the server's ciphertext: %v", err)
				}
				// Go → server; decrypt without alg, as the session example does.
				var goCT []byte
				if tc.hash == nil {
					goCT, _ = rsa.EncryptPKCS1v15(rand.Reader, &priv.PublicKey, plain)
				} else {
					goCT, _ = rsa.EncryptOAEP(tc.hash(), rand.Reader, &priv.PublicKey, plain, nil)
				}
				dreq := map[string]any{"key": map[string]any{"name": "RSA Key"}, "cipher": b64(goCT)}
				if tc.mode != nil {
					dreq["mode"] = tc.mode
				}
				if dec := sess.ok(t, 200, "POST", "/crypto/v1/decrypt", dreq); !bytes.Equal(unb64(t, dec["plain"]), plain) || dec["kid"] != kid {
					t.Fatalf("decrypt: %v", dec)
				}
			})
		}
		// An RSA public key (imported public-only) encrypts; it cannot decrypt.
		pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "RSA public", "obj_type": "RSA", "value": b64(pubDER)})
		enc := app.ok(t, 200, "POST", "/crypto/v1/encrypt", map[string]any{"key": map[string]any{"name": "RSA public"}, "alg": "RSA", "mode": oaep("SHA256"), "plain": b64(plain)})
		if got, err := rsa.DecryptOAEP(sha256.New(), nil, priv, unb64(t, enc["cipher"]), nil); err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("public-only encrypt: %v", err)
		}
		app.fail(t, 400, "decryption needs a private key; this object holds only a public key", "POST", "/crypto/v1/decrypt", map[string]any{"key": map[string]any{"name": "RSA public"}, "cipher": enc["cipher"]})
		sess.ok(t, 204, "POST", "/sys/v1/session/terminate", nil)
	})
}

// Wrong key operations, wrong key types and tampered ciphertexts are
// DSM-shaped 4xx errors that say nothing about the plaintext; every
// encryption and decryption is audited like a signature.
func TestCrypt_Errors(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "errs")
		app, _ := adm.app(t, "errs-app", "crypto", g)
		key := bytes.Repeat([]byte{3}, 32)
		kid := app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "aes", "obj_type": "AES", "value": b64(key)})["kid"].(string)
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "enc-only", "obj_type": "AES", "value": b64(key), "key_ops": []string{"ENCRYPT"}})
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "dec-only", "obj_type": "AES", "value": b64(key), "key_ops": []string{"DECRYPT"}})
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "opaque", "obj_type": "OPAQUE", "value": b64([]byte("o"))})
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "secret", "obj_type": "SECRET", "value": b64([]byte("s"))})
		app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "hmac", "obj_type": "HMAC", "value": b64(key)})
		app.key(t, map[string]any{"name": "ec", "obj_type": "EC", "elliptic_curve": "NistP256"})
		secretPlain := "plaintext-canary-7f3a"
		gcm := func(name string) map[string]any {
			return map[string]any{"key": map[string]any{"name": name}, "alg": "AES", "mode": "GCM", "tag_len": 128, "plain": b64([]byte(secretPlain))}
		}
		enc := app.ok(t, 200, "POST", "/crypto/v1/encrypt", gcm("aes"))
		dec := func(mut func(map[string]any)) map[string]any {
			d := map[string]any{"key": map[string]any{"name": "aes"}, "mode": "GCM", "tag_len": 128, "cipher": enc["cipher"], "iv": enc["iv"], "tag": enc["tag"]}
			mut(d)
			return d
		}
		flip := func(field string) func(map[string]any) {
			return func(d map[string]any) {
				b := unb64(t, d[field])
				b[0] ^= 1
				d[field] = b64(b)
			}
		}
		app.ok(t, 200, "POST", "/crypto/v1/decrypt", dec(func(map[string]any) {}))
		for _, c := range []struct {
			name   string
			status int
			msg    string
			path   string
			body   map[string]any
		}{
			{"tampered tag", 400, "decryption failed: the ciphertext, IV, tag or associated data do not match this key", "decrypt", dec(flip("tag"))},
			{"tampered cipher", 400, "decryption failed: the ciphertext, IV, tag or associated data do not match this key", "decrypt", dec(flip("cipher"))},
			{"tampered iv", 400, "decryption failed: the ciphertext, IV, tag or associated data do not match this key", "decrypt", dec(flip("iv"))},
			{"wrong ad", 400, "decryption failed: the ciphertext, IV, tag or associated data do not match this key", "decrypt", dec(func(d map[string]any) { d["ad"] = b64([]byte("x")) })},
			{"short tag", 400, "tag must be tag_len bits long", "decrypt", dec(func(d map[string]any) { d["tag"] = b64(unb64(t, d["tag"])[:8]) })},
			{"no iv", 400, "iv must be 12 bytes for AES GCM", "decrypt", dec(func(d map[string]any) { delete(d, "iv") })},
			{"no tag_len", 400, "tag_len is required for GCM", "encrypt", func() map[string]any { r := gcm("aes"); delete(r, "tag_len"); return r }()},
			{"no tag", 400, "tag is required for GCM", "decrypt", dec(func(d map[string]any) { delete(d, "tag"); delete(d, "tag_len") })},
			{"tag not the tag_len", 400, "tag must be tag_len bits long", "decrypt", dec(func(d map[string]any) { d["tag_len"] = 96 })},
			{"bad tag_len", 400, "tag_len must be 96, 104, 112, 120 or 128 bits", "encrypt", func() map[string]any { r := gcm("aes"); r["tag_len"] = 64; return r }()},
			{"bad iv length", 400, "iv must be 12 bytes for AES GCM", "encrypt", func() map[string]any { r := gcm("aes"); r["iv"] = b64([]byte("short")); return r }()},
			{"no mode", 400, "mode is required for AES (GCM, CBC or CTR)", "encrypt", func() map[string]any { r := gcm("aes"); delete(r, "mode"); return r }()},
			{"ECB", 400, "unsupported mode for AES (use GCM, CBC or CTR)", "encrypt", func() map[string]any { r := gcm("aes"); r["mode"] = "ECB"; return r }()},
			{"unknown mode", 400, "unknown mode", "encrypt", func() map[string]any { r := gcm("aes"); r["mode"] = "XTS"; return r }()},
			{"alg mismatch", 400, "alg does not match the key's type", "encrypt", func() map[string]any { r := gcm("aes"); r["alg"] = "RSA"; return r }()},
			{"no alg", 400, "alg is required", "encrypt", func() map[string]any { r := gcm("aes"); delete(r, "alg"); return r }()},
			{"no key", 400, "key is required", "encrypt", func() map[string]any { r := gcm("aes"); delete(r, "key"); return r }()},
			{"no ENCRYPT op", 403, "ENCRYPT is not among the security object's key_ops", "encrypt", gcm("dec-only")},
			{"no DECRYPT op", 403, "DECRYPT is not among the security object's key_ops", "decrypt", dec(func(d map[string]any) { d["key"] = map[string]any{"name": "enc-only"} })},
			{"OPAQUE", 400, "objects of this type cannot be used to encrypt (use an AES or RSA key)", "encrypt", gcm("opaque")},
			{"SECRET", 400, "objects of this type cannot be used to encrypt (use an AES or RSA key)", "encrypt", gcm("secret")},
			{"HMAC", 400, "objects of this type cannot be used to encrypt (use an AES or RSA key)", "encrypt", gcm("hmac")},
			{"EC", 400, "objects of this type cannot be used to encrypt (use an AES or RSA key)", "encrypt", gcm("ec")},
			{"EC decrypt", 400, "objects of this type cannot be used to decrypt (use an AES or RSA key)", "decrypt", dec(func(d map[string]any) { d["key"] = map[string]any{"name": "ec"} })},
			{"unknown key", 404, "sobject does not exist", "encrypt", gcm("missing")},
			{"CBC bad padding", 400, "decryption failed: the ciphertext, IV, tag or associated data do not match this key", "decrypt", map[string]any{"key": map[string]any{"name": "aes"}, "mode": "CBC", "iv": b64(make([]byte, 16)), "cipher": b64(make([]byte, 32))}},
			{"RSA padding for AES", 400, "unsupported mode for AES (use GCM, CBC or CTR)", "encrypt", func() map[string]any {
				r := gcm("aes")
				r["mode"] = map[string]any{"PKCS1_V15": map[string]any{}}
				return r
			}()},
		} {
			t.Run(c.name, func(t *testing.T) {
				msg := app.fail(t, c.status, c.msg, "POST", "/crypto/v1/"+c.path, c.body)
				if strings.Contains(msg, secretPlain) || strings.Contains(msg, b64([]byte(secretPlain))) {
					t.Errorf("error echoes the plaintext: %s", msg)
				}
			})
		}
		// A reader may not use keys.
		reader := v.NewMember(t, v.AccountID, "reader", "reader")
		(client{v: v, auth: "Basic " + reader.Key}).fail(t, 403, "this principal's role does not allow write operations in this account", "POST", "/crypto/v1/encrypt", gcm("aes"))

		msgs := logMessages(t, adm, kid)
		if count(msgs, "sobject.encrypt sobject: success") < 1 || count(msgs, "sobject.decrypt sobject: success") < 1 || count(msgs, "sobject.decrypt sobject: invalid") < 5 {
			t.Errorf("encrypt/decrypt not audited: %v", msgs)
		}
		if strings.Contains(v.Logs(), secretPlain) {
			t.Error("plaintext in the logs")
		}
	})
}

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
			k := sess.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"obj_type": "AES", "value": b64(key), "transient": true})
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
