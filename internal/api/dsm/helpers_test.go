package dsm_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// client is a DSM caller: a vault and an Authorization header value.
type client struct {
	v    *vaulttest.Vault
	auth string
}

func admin(v *vaulttest.Vault) client { return client{v: v, auth: "Basic " + v.AdminKey} }

func (c client) do(t *testing.T, method, path string, body any) *vaulttest.Response {
	t.Helper()
	if c.auth == "" {
		return c.v.Do(t, method, path, body)
	}
	return c.v.Do(t, method, path, body, "Authorization", c.auth)
}

// ok sends a request that must answer want and returns the decoded object
// (nil for empty bodies).
func (c client) ok(t *testing.T, want int, method, path string, body any) map[string]any {
	t.Helper()
	r := c.do(t, method, path, body)
	if r.Status != want {
		t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, r.Status, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	if m, isObj := r.JSON(t).(map[string]any); isObj {
		return m
	}
	return nil
}

// fail sends a request that must fail with status want and a plain-text
// message that contains msg (the part of the message that says which rule
// refused the request; "" only where the caller checks the body itself).
// It returns the body.
func (c client) fail(t *testing.T, want int, msg, method, path string, body any) string {
	t.Helper()
	r := c.do(t, method, path, body)
	if r.Status != want {
		t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, r.Status, r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("%s %s: error Content-Type %q", method, path, ct)
	}
	if !strings.Contains(string(r.Body), msg) {
		t.Errorf("%s %s: message %q does not say %q", method, path, r.Body, msg)
	}
	return string(r.Body)
}

func (c client) list(t *testing.T, path string) []any {
	t.Helper()
	r := c.do(t, "GET", path, nil)
	if r.Status != 200 {
		t.Fatalf("GET %s: %d %s", path, r.Status, r.Body)
	}
	l, ok := r.JSON(t).([]any)
	if !ok {
		t.Fatalf("GET %s: not an array: %s", path, r.Body)
	}
	return l
}

func (c client) group(t *testing.T, name string) string {
	t.Helper()
	return c.ok(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": name})["group_id"].(string)
}

// adminWithGroups returns the account admin of v and two groups it
// created, named a and b: how the tests that need apps in more than one
// group begin.
func adminWithGroups(t *testing.T, v *vaulttest.Vault, a, b string) (adm client, ga, gb string) {
	t.Helper()
	adm = admin(v)
	return adm, adm.group(t, a), adm.group(t, b)
}

// app creates an app in groups and returns a client authenticated with its
// API key (Basic) and the app id.
func (c client) app(t *testing.T, name, role string, groups ...string) (client, string) {
	t.Helper()
	key, id := c.v.NewDSMApp(t, c.auth, name, role, groups...)
	return client{v: c.v, auth: "Basic " + key}, id
}

// session authenticates c's Basic key and returns a Bearer client.
func (c client) session(t *testing.T) client {
	t.Helper()
	r := c.ok(t, 200, "POST", "/sys/v1/session/auth", nil)
	return client{v: c.v, auth: "Bearer " + r["access_token"].(string)}
}

// rsaKeyApp creates a group named group and a crypto app in it, and as the
// app imports a fresh RSA key named "RSA Key" (as the official client's
// examples name it). It returns the app, the private key and its kid.
func (c client) rsaKeyApp(t *testing.T, group string) (app client, priv *rsa.PrivateKey, kid string) {
	t.Helper()
	g := c.group(t, group)
	app, _ = c.app(t, group+"-app", "crypto", g)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	kid = app.ok(t, 201, "PUT", "/crypto/v1/keys", map[string]any{"name": "RSA Key", "obj_type": "RSA", "value": b64(der)})["kid"].(string)
	return app, priv, kid
}

func (c client) key(t *testing.T, body map[string]any) map[string]any {
	t.Helper()
	return c.ok(t, 201, "POST", "/crypto/v1/keys", body)
}

var (
	b64        = vaulttest.B64
	unb64      = vaulttest.UnB64
	ociDetails = vaulttest.OCIDetails
)

// verifyIndependently checks sig over digest with the object's pub_key
// using only the standard library.
func verifyIndependently(t *testing.T, pubDER []byte, h crypto.Hash, digest, sig []byte, pss bool) bool {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(pubDER)
	if err != nil {
		t.Fatalf("pub_key is not PKIX DER: %v", err)
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if pss {
			return rsa.VerifyPSS(k, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil
		}
		return rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	}
	t.Fatalf("unexpected public key type %T", pub)
	return false
}
