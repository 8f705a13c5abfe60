package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/vault"
)

type fixture struct {
	srv       *httptest.Server
	key       *ecdsa.PrivateKey
	discovery atomic.Value // the issuer the discovery document names
	private   atomic.Bool  // publish the private key (a broken issuer)
	fetches   atomic.Int64
	now       time.Time
	v         *Verifier
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{now: time.Now()}
	f.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": f.discovery.Load().(string), "jwks_uri": f.srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		f.fetches.Add(1)
		var k any = f.key.Public()
		if f.private.Load() {
			k = f.key
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k, KeyID: "k1"}}})
	})
	f.srv = httptest.NewTLSServer(mux)
	t.Cleanup(f.srv.Close)
	f.discovery.Store(f.srv.URL)
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.Certificate())
	allow, _ := netguard.ParseAllow("127.0.0.1")
	f.v = New(Options{Allow: allow, RootCAs: roots, Now: func() time.Time { return f.now }})
	return f
}

func (f *fixture) policy() *vault.TrustPolicy {
	return &vault.TrustPolicy{ID: "p", Issuer: f.srv.URL, KeySource: vault.KeysDiscovery, Audiences: []string{"a"},
		Claims: []vault.ClaimRule{{Claim: "sub", Pattern: "s"}}}
}

func (f *fixture) token(t *testing.T, kid string) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: f.key, KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(map[string]any{"iss": f.srv.URL, "sub": "s", "aud": "a", "iat": f.now.Unix(), "exp": f.now.Add(time.Hour).Unix()}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerify_KeySets(t *testing.T) {
	ctx := context.Background()
	t.Run("ok/cached-then-refetched-after-ttl", func(t *testing.T) {
		f := newFixture(t)
		for i := 0; i < 3; i++ {
			if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1")); err != nil {
				t.Fatal(err)
			}
		}
		if n := f.fetches.Load(); n != 1 {
			t.Fatalf("%d fetches for three tokens, want 1 (cached)", n)
		}
		f.now = f.now.Add(DefaultCacheTTL + time.Second)
		if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1")); err != nil {
			t.Fatal(err)
		}
		if n := f.fetches.Load(); n != 2 {
			t.Errorf("%d fetches after the cache TTL, want 2", n)
		}
	})
	t.Run("ok/no-kid", func(t *testing.T) {
		f := newFixture(t)
		if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "")); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("err/discovery-names-another-issuer", func(t *testing.T) {
		f := newFixture(t)
		f.discovery.Store("https://evil.example")
		_, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1"))
		if vault.KindOf(err) != vault.KindUnavailable || !strings.Contains(err.Error(), "discovery document names issuer") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(vault.Message(err), "evil") {
			t.Errorf("the client-safe message carries the reason: %q", vault.Message(err))
		}
	})
	t.Run("err/issuer-publishes-a-private-key", func(t *testing.T) {
		f := newFixture(t)
		f.private.Store(true)
		if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1")); vault.KindOf(err) != vault.KindUnavailable || !strings.Contains(err.Error(), "private") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("err/http-jwks-url", func(t *testing.T) {
		f := newFixture(t)
		p := f.policy()
		p.KeySource, p.JWKSURL = vault.KeysJWKSURL, strings.Replace(f.srv.URL, "https:", "http:", 1)+"/keys"
		if _, err := f.v.Verify(ctx, p, f.token(t, "k1")); vault.KindOf(err) != vault.KindUnavailable || !strings.Contains(err.Error(), "not an https URL") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("err/untrusted-certificate", func(t *testing.T) {
		f := newFixture(t)
		allow, _ := netguard.ParseAllow("127.0.0.1")
		v := New(Options{Allow: allow, Now: func() time.Time { return f.now }}) // system roots only
		if _, err := v.Verify(ctx, f.policy(), f.token(t, "k1")); vault.KindOf(err) != vault.KindUnavailable || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v", err)
		}
		if n := f.fetches.Load(); n != 0 {
			t.Errorf("keys fetched over an unverified TLS connection")
		}
	})
}
