package oidc

import (
	"context"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/testutil/oidctest"
	"github.com/credvault/credvault/internal/vault"
)

type fixture struct {
	is  *oidctest.Issuer // publishes one ES256 key, k1
	now time.Time
	v   *Verifier
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{is: oidctest.New(t), now: time.Now()}
	f.is.AddKey(t, "k1", jose.ES256, true)
	allow, _ := netguard.ParseAllow("127.0.0.1")
	f.v = New(Options{Allow: allow, RootCAs: f.is.Roots(), Now: func() time.Time { return f.now }})
	return f
}

func (f *fixture) policy() *vault.TrustPolicy {
	return &vault.TrustPolicy{ID: "p", Issuer: f.is.URL, KeySource: vault.KeysDiscovery, Audiences: []string{"a"},
		Claims: []vault.ClaimRule{{Claim: "sub", Pattern: "s"}}}
}

// token is signed by k1; its header names kid.
func (f *fixture) token(t *testing.T, kid string) string {
	return f.is.SignNamed(t, "k1", kid, oidctest.Claims(f.is.URL, "s", "a", f.now))
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
		if n := f.is.Fetches.Load(); n != 1 {
			t.Fatalf("%d fetches for three tokens, want 1 (cached)", n)
		}
		f.now = f.now.Add(DefaultCacheTTL + time.Second)
		if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1")); err != nil {
			t.Fatal(err)
		}
		if n := f.is.Fetches.Load(); n != 2 {
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
		f.is.NameIssuer("https://evil.example")
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
		f.is.PublishPrivate()
		if _, err := f.v.Verify(ctx, f.policy(), f.token(t, "k1")); vault.KindOf(err) != vault.KindUnavailable || !strings.Contains(err.Error(), "private") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("err/http-jwks-url", func(t *testing.T) {
		f := newFixture(t)
		p := f.policy()
		p.KeySource, p.JWKSURL = vault.KeysJWKSURL, strings.Replace(f.is.URL, "https:", "http:", 1)+"/keys"
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
		if n := f.is.Fetches.Load(); n != 0 {
			t.Errorf("keys fetched over an unverified TLS connection")
		}
	})
}
