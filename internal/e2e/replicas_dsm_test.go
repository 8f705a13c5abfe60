package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/vault"
)

// dsmClient speaks the DSM dialect to one replica with one Authorization
// header value ("Basic <api key>" or "Bearer <token>").
type dsmClient struct{ *client }

func (c dsmClient) with(auth string) dsmClient { return dsmClient{c.client.with(auth)} }

// must is client.must with the body decoded as a JSON object.
func (c dsmClient) must(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	return c.client.must(t, want, method, path, body).obj()
}

// TestReplicasDSM: DSM sessions, security objects and apps are shared state
// in PostgreSQL, so what one replica issues or creates is honoured by the
// other at once, a session terminated on one is dead on the other, and a
// key deleted on one is gone on the other within sqlstore.RevocationBound.
func TestReplicasDSM(t *testing.T) {
	wantEngine(t, "postgres")
	rs := startReplicas(t, 2)
	basic := "Basic " + rs.AdminKey
	a := dsmClient{newClient(rs.Procs[0].URL, "").with(basic)}
	b := dsmClient{newClient(rs.Procs[1].URL, "").with(basic)}

	t.Run("session from A works on B; terminate on B ends it on A", func(t *testing.T) {
		s := a.must(t, 200, "POST", "/sys/v1/session/auth", nil)
		tok, _ := s["access_token"].(string)
		if tok == "" || s["token_type"] != "Bearer" {
			t.Fatalf("session: %v", s)
		}
		bearer := "Bearer " + tok
		a.with(bearer).must(t, 200, "GET", "/sys/v1/groups", nil)
		b.with(bearer).must(t, 200, "GET", "/sys/v1/groups", nil)
		b.with(bearer).must(t, 204, "POST", "/sys/v1/session/refresh", nil)
		b.with(bearer).must(t, 204, "POST", "/sys/v1/session/terminate", nil)
		// At once on B, which terminated it; on A within the bound.
		b.with(bearer).must(t, 401, "GET", "/sys/v1/groups", nil)
		a.with(bearer).within(t, time.Now(), 401, "GET", "/sys/v1/groups", nil)
		a.with(bearer).must(t, 401, "POST", "/sys/v1/session/refresh", nil)
		// The Basic key itself is unaffected.
		a.must(t, 200, "GET", "/sys/v1/groups", nil)
	})

	g := a.must(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": "replicated"})["group_id"].(string)

	t.Run("key created on A signs on B", func(t *testing.T) {
		o := a.must(t, 201, "POST", "/crypto/v1/keys", map[string]any{"name": "rep-ec", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g})
		kid := o["kid"].(string)
		pub, err := base64.StdEncoding.DecodeString(o["pub_key"].(string))
		if err != nil {
			t.Fatal(err)
		}
		// B sees it at once, by kid and by name.
		if got := b.must(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "rep-ec"})["kid"]; got != kid {
			t.Fatalf("B: info by name: kid %v, want %s", got, kid)
		}
		digest := sha256.Sum256([]byte("signed on the other replica"))
		sig := b.must(t, 200, "POST", "/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": kid}, "hash_alg": "SHA256", "hash": base64.StdEncoding.EncodeToString(digest[:])})
		raw, err := base64.StdEncoding.DecodeString(sig["signature"].(string))
		if err != nil || sig["kid"] != kid {
			t.Fatalf("B: sign: %v (%v)", sig, err)
		}
		pk, err := x509.ParsePKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if !ecdsa.VerifyASN1(pk.(*ecdsa.PublicKey), digest[:], raw) {
			t.Fatal("the signature made on B does not verify with the public key A returned")
		}
		v := a.must(t, 200, "POST", "/crypto/v1/verify", map[string]any{"key": map[string]any{"kid": kid}, "hash_alg": "SHA256",
			"hash": base64.StdEncoding.EncodeToString(digest[:]), "signature": sig["signature"]})
		if v["result"] != true {
			t.Fatalf("A: verify of B's signature: %v", v)
		}
		// Deleted on B: gone on B at once, on A within the bound (A may
		// answer from its row cache until it sees the change).
		b.must(t, 204, "DELETE", "/crypto/v1/keys/"+kid, nil)
		b.must(t, 404, "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
		deleted := time.Now()
		for {
			sent := time.Now()
			r, err := a.do(context.Background(), "POST", "/crypto/v1/keys/info", map[string]any{"kid": kid})
			if err != nil {
				t.Fatal(err)
			}
			if r.Status == 404 {
				break
			}
			if r.Status != 200 || sent.Sub(deleted) > sqlstore.RevocationBound {
				t.Fatalf("A: info of a key deleted on B: %d after %v", r.Status, sent.Sub(deleted))
			}
		}
	})

	t.Run("app created on A authenticates on B", func(t *testing.T) {
		app := a.must(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "rep-app", "role": "crypto", "add_groups": map[string]any{g: []string{"SIGN", "VERIFY"}}})
		id := app["app_id"].(string)
		cred := a.must(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)
		key := vault.AppAPIKey(id, cred["credential"].(map[string]any)["secret"].(string))
		// The same secret on either replica.
		if again := b.must(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil); vault.AppAPIKey(id, again["credential"].(map[string]any)["secret"].(string)) != key {
			t.Fatal("B returned another secret")
		}

		appB := b.with("Basic " + key)
		if l := appB.must(t, 200, "POST", "/sys/v1/session/auth", nil); l["entity_id"] != id {
			t.Fatalf("B: app session: %v", l)
		}
		o := appB.must(t, 201, "POST", "/crypto/v1/keys", map[string]any{"name": "app-key", "obj_type": "AES", "key_size": 256})
		if o["group_id"] != g {
			t.Fatalf("B: the app's key went to group %v, want %s", o["group_id"], g)
		}
		s := appB.must(t, 200, "POST", "/sys/v1/session/auth", nil)
		bearer := "Bearer " + s["access_token"].(string)
		a.with(bearer).must(t, 200, "POST", "/crypto/v1/keys/info", map[string]any{"name": "app-key"})

		// Reset on A: the key and the session die on B (within the bound).
		a.must(t, 200, "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{})
		changed := time.Now()
		appB.within(t, changed, 401, "GET", "/sys/v1/groups", nil)
		b.with(bearer).within(t, changed, 401, "GET", "/sys/v1/groups", nil)
		// Disabled on B after a fresh secret: refused on A.
		key2 := vault.AppAPIKey(id, b.must(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string))
		a.with("Basic "+key2).must(t, 200, "GET", "/sys/v1/groups", nil)
		b.must(t, 200, "PATCH", "/sys/v1/apps/"+id, map[string]any{"enabled": false})
		a.with("Basic "+key2).within(t, time.Now(), 401, "GET", "/sys/v1/groups", nil)
	})
}
