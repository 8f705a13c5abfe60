// Package oidctest runs a local OpenID Connect issuer for tests: a
// discovery document and a JWKS over TLS on 127.0.0.1, with keys generated
// here, and signs tokens with them.
//
// It imports nothing of credvault, so the oidc package's own tests can use
// it too.
package oidctest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Issuer is a local OIDC issuer, stopped when the test ends.
type Issuer struct {
	URL string
	// Fetches counts the JWKS fetches, Requests every request.
	Fetches, Requests atomic.Int64

	srv       *httptest.Server
	mu        sync.Mutex
	keys      map[string]crypto.Signer // kid → private key
	publish   []string                 // kids in the JWKS
	discovery string                   // the issuer the discovery document names; "" is URL
	private   bool                     // the JWKS carries the private keys (a broken issuer)
}

// New starts an issuer with no keys (AddKey adds them).
func New(t testing.TB) *Issuer {
	t.Helper()
	is := &Issuer{keys: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		iss := is.discovery
		is.mu.Unlock()
		if iss == "" {
			iss = is.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": is.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.Fetches.Add(1)
		_ = json.NewEncoder(w).Encode(is.jwks())
	})
	is.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		is.Requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	return is
}

// Roots returns a pool with the issuer's TLS certificate.
func (is *Issuer) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(is.srv.Certificate())
	return p
}

// AddKey generates a key of alg (RS256, ES256 or EdDSA) named kid and
// publishes it (publish=false: only known to the test, as a key the issuer
// never announced).
func (is *Issuer) AddKey(t testing.TB, kid string, alg jose.SignatureAlgorithm, publish bool) {
	t.Helper()
	var k crypto.Signer
	var err error
	switch alg {
	case jose.RS256:
		k, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.ES256:
		k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.EdDSA:
		_, k, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("oidctest: unsupported algorithm %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	is.keys[kid] = k
	if publish {
		is.publish = append(is.publish, kid)
	}
}

// Rotate publishes only kids.
func (is *Issuer) Rotate(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.publish = kids
}

// NameIssuer makes the discovery document name iss as the issuer instead of
// the issuer's own URL.
func (is *Issuer) NameIssuer(iss string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.discovery = iss
}

// PublishPrivate makes the JWKS carry the private keys instead of the
// public ones (a broken issuer).
func (is *Issuer) PublishPrivate() {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.private = true
}

// Public returns the public key of kid.
func (is *Issuer) Public(kid string) crypto.PublicKey {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.keys[kid].Public()
}

// JWKS returns the key set the issuer publishes.
func (is *Issuer) JWKS() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.jwks()
}

func (is *Issuer) jwks() jose.JSONWebKeySet {
	var set jose.JSONWebKeySet
	for _, kid := range is.publish {
		var k any = is.keys[kid].Public()
		if is.private {
			k = is.keys[kid]
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"})
	}
	return set
}

// Sign returns a JWT with claims signed by key kid, which its header names.
func (is *Issuer) Sign(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	return is.SignNamed(t, kid, kid, claims)
}

// SignNamed returns a JWT with claims signed by key kid whose header names
// the key header instead ("" for a header with no kid).
func (is *Issuer) SignNamed(t testing.TB, kid, header string, claims map[string]any) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[kid]
	is.mu.Unlock()
	if k == nil {
		t.Fatalf("oidctest: no key %q", kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: algOf(k), Key: jose.JSONWebKey{Key: k, KeyID: header}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Claims returns the claims of a token of iss for sub and aud, issued at now
// and valid for an hour.
func Claims(iss, sub, aud string, now time.Time) map[string]any {
	return map[string]any{"iss": iss, "sub": sub, "aud": aud, "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

func algOf(k crypto.Signer) jose.SignatureAlgorithm {
	switch k.(type) {
	case *rsa.PrivateKey:
		return jose.RS256
	case *ecdsa.PrivateKey:
		return jose.ES256
	}
	return jose.EdDSA
}
