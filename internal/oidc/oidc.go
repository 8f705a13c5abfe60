// Package oidc verifies workload identity tokens (JWTs from an OIDC issuer:
// Kubernetes service-account tokens, GitHub Actions tokens) against a
// vault.TrustPolicy, with go-jose doing the JOSE work. It implements
// vault.TokenVerifier.
//
// What it checks, in order: the token is a compact JWS signed with RS256,
// ES256 or EdDSA (never "none", never an HMAC, whatever the header says);
// its key, found by kid in the issuer's key set, verifies the signature;
// iss equals the policy's issuer; aud contains one of its audiences; exp is
// present and not past, nbf not in the future and iat not in the future,
// each with Leeway; the token is at most MaxTokenAge old (iat, or exp when
// there is no iat); every claim rule of the policy matches.
//
// Key sets are fetched (OIDC discovery or a JWKS URL) over https only,
// with TLS verified, a timeout, a size limit, and through netguard: a
// non-public address is refused unless the operator allowed it. They are
// cached for CacheTTL and refetched early when a token names an unknown
// kid, at most once per MinRefresh per key set.
package oidc

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/vault"
)

// Defaults of Options.
const (
	DefaultLeeway      = 60 * time.Second
	DefaultMaxTokenAge = 24 * time.Hour
	DefaultMinRefresh  = time.Minute
	DefaultCacheTTL    = time.Hour
	DefaultTimeout     = 10 * time.Second
	maxDocument        = 1 << 20
)

// Algorithms are the only signature algorithms accepted.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// Options configures a Verifier. Zero values take the defaults above.
type Options struct {
	Allow       netguard.Allow // non-public issuer addresses the operator allows
	RootCAs     *x509.CertPool // nil: the system roots
	Timeout     time.Duration
	Leeway      time.Duration
	MaxTokenAge time.Duration
	MinRefresh  time.Duration
	CacheTTL    time.Duration
	Now         func() time.Time
}

// Verifier checks workload tokens. It is safe for concurrent use.
type Verifier struct {
	o      Options
	client *http.Client

	mu   sync.Mutex
	sets map[string]*keySet
}

type keySet struct {
	mu        sync.Mutex
	keys      *jose.JSONWebKeySet
	fetched   time.Time // of keys
	attempted time.Time // last fetch attempt
	err       error     // of the last attempt, if it failed
}

// New returns a Verifier.
func New(o Options) *Verifier {
	orDefault(&o.Timeout, DefaultTimeout)
	orDefault(&o.Leeway, DefaultLeeway)
	orDefault(&o.MaxTokenAge, DefaultMaxTokenAge)
	orDefault(&o.MinRefresh, DefaultMinRefresh)
	orDefault(&o.CacheTTL, DefaultCacheTTL)
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Verifier{o: o, client: o.Allow.Client(o.Timeout, o.RootCAs), sets: map[string]*keySet{}}
}

// orDefault sets *d, an option, to def unless it is positive.
func orDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func refuse(format string, args ...any) error {
	return vault.Errorf(vault.KindUnauthenticated, format, args...)
}

func parse(token string) (*jwt.JSONWebToken, error) {
	if strings.Count(token, ".") != 2 {
		return nil, vault.Errorf(vault.KindInvalid, "subject_token is not a JWT in compact form")
	}
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, refuse("the token's signature algorithm is not accepted (only RS256, ES256 and EdDSA are)")
		}
		return nil, vault.Errorf(vault.KindInvalid, "subject_token is not a valid signed JWT")
	}
	if len(tok.Headers) != 1 {
		return nil, vault.Errorf(vault.KindInvalid, "subject_token must have exactly one signature")
	}
	return tok, nil
}

// Issuer returns the unverified iss claim of token.
func (v *Verifier) Issuer(token string) (string, error) {
	tok, err := parse(token)
	if err != nil {
		return "", err
	}
	var c jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&c); err != nil || c.Issuer == "" {
		return "", vault.Errorf(vault.KindInvalid, "subject_token has no iss claim")
	}
	return c.Issuer, nil
}

// Verify checks token against p (see the package comment).
func (v *Verifier) Verify(ctx context.Context, p *vault.TrustPolicy, token string) (*vault.WorkloadClaims, error) {
	tok, err := parse(token)
	if err != nil {
		return nil, err
	}
	h := tok.Headers[0]
	keys, err := v.keysFor(ctx, p, h.KeyID)
	if err != nil {
		return nil, err
	}
	var std jwt.Claims
	var all map[string]any
	verified := false
	for _, k := range keys {
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if err := tok.Claims(k.Key, &std, &all); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, refuse("the token's signature does not verify with the issuer's keys")
	}
	now := v.o.Now()
	if std.Expiry == nil {
		return nil, refuse("the token has no exp claim")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: p.Issuer, AnyAudience: jwt.Audience(p.Audiences), Time: now}, v.o.Leeway)
	switch {
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, refuse("the token's issuer does not match the trust policy")
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, refuse("the token's audience is not one the trust policy accepts")
	case errors.Is(err, jwt.ErrExpired):
		return nil, refuse("the token has expired")
	case errors.Is(err, jwt.ErrNotValidYet):
		return nil, refuse("the token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, refuse("the token was issued in the future (iat)")
	case err != nil:
		return nil, refuse("the token's claims are not valid")
	}
	if std.IssuedAt != nil {
		if now.Sub(std.IssuedAt.Time()) > v.o.MaxTokenAge {
			return nil, refuse("the token is too old (issued more than %s ago)", v.o.MaxTokenAge)
		}
	} else if std.Expiry.Time().Sub(now) > v.o.MaxTokenAge {
		return nil, refuse("the token has no iat and is valid for more than %s", v.o.MaxTokenAge)
	}
	if std.Subject == "" {
		return nil, refuse("the token has no sub claim")
	}
	for _, r := range p.Claims {
		if !vault.MatchClaim(r.Pattern, all[r.Claim]) {
			return nil, refuse("the token's %q claim does not match the trust policy", r.Claim)
		}
	}
	return &vault.WorkloadClaims{Issuer: std.Issuer, Subject: std.Subject, Expiry: std.Expiry.Time()}, nil
}

// keysFor returns the keys that may have signed a token with key id kid.
func (v *Verifier) keysFor(ctx context.Context, p *vault.TrustPolicy, kid string) ([]jose.JSONWebKey, error) {
	if p.KeySource == vault.KeysJWKS {
		var set jose.JSONWebKeySet
		if err := json.Unmarshal([]byte(p.JWKS), &set); err != nil {
			return nil, vault.Wrap(vault.KindUnavailable, err, "the trust policy's JWKS document cannot be read")
		}
		if ks := pick(&set, kid); len(ks) > 0 {
			return ks, nil
		}
		return nil, refuse("the token's key id is not in the trust policy's JWKS document")
	}
	cacheKey := string(p.KeySource) + " " + p.Issuer + " " + p.JWKSURL
	v.mu.Lock()
	ks := v.sets[cacheKey]
	if ks == nil {
		ks = &keySet{}
		v.sets[cacheKey] = ks
	}
	v.mu.Unlock()

	ks.mu.Lock()
	defer ks.mu.Unlock()
	now := v.o.Now()
	canFetch := ks.attempted.IsZero() || now.Sub(ks.attempted) >= v.o.MinRefresh
	if ks.keys == nil || now.Sub(ks.fetched) >= v.o.CacheTTL {
		if canFetch {
			v.refresh(ctx, p, ks, now)
		}
		if ks.keys == nil {
			return nil, ks.err
		}
	}
	if found := pick(ks.keys, kid); len(found) > 0 {
		return found, nil
	}
	// An unknown kid: the issuer may have rotated its keys. Refetch, at
	// most once per MinRefresh, so that tokens with made-up key ids cannot
	// make us hammer the issuer.
	if canFetch && ks.attempted != now {
		v.refresh(ctx, p, ks, now)
		if found := pick(ks.keys, kid); len(found) > 0 {
			return found, nil
		}
	}
	return nil, refuse("the token's key id is not among the issuer's keys")
}

// pick returns the keys of set with key id kid, or every key if kid is "".
func pick(set *jose.JSONWebKeySet, kid string) []jose.JSONWebKey {
	if set == nil {
		return nil
	}
	if kid == "" {
		return set.Keys
	}
	return set.Key(kid)
}

func (v *Verifier) refresh(ctx context.Context, p *vault.TrustPolicy, ks *keySet, now time.Time) {
	ks.attempted = now
	set, err := v.fetchKeys(ctx, p)
	if err != nil {
		ks.err = vault.Wrap(vault.KindUnavailable, fmt.Errorf("oidc: keys of %s: %w", p.Issuer, err), "the issuer's keys could not be fetched; try again later (the server log has the reason)")
		return
	}
	ks.keys, ks.fetched, ks.err = set, now, nil
}

func (v *Verifier) fetchKeys(ctx context.Context, p *vault.TrustPolicy) (*jose.JSONWebKeySet, error) {
	jwksURL := p.JWKSURL
	if p.KeySource == vault.KeysDiscovery {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := v.getJSON(ctx, strings.TrimSuffix(p.Issuer, "/")+"/.well-known/openid-configuration", &doc); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		if doc.Issuer != p.Issuer {
			return nil, fmt.Errorf("discovery document names issuer %q", doc.Issuer)
		}
		jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := v.getJSON(ctx, jwksURL, &set); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() {
			return nil, errors.New("jwks holds a private or symmetric key")
		}
	}
	return &set, nil
}

func (v *Verifier) getJSON(ctx context.Context, u string, dst any) error {
	if !strings.HasPrefix(u, "https://") {
		return fmt.Errorf("%s is not an https URL", u)
	}
	ctx, cancel := context.WithTimeout(ctx, v.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument+1))
	if err != nil {
		return err
	}
	if len(b) > maxDocument {
		return fmt.Errorf("GET %s: larger than %d bytes", u, maxDocument)
	}
	return json.Unmarshal(b, dst)
}

var _ vault.TokenVerifier = (*Verifier)(nil)

// CheckJWKS checks a JWKS document pasted into a trust policy: it must
// parse, hold at least one key, and only public keys (a private or
// symmetric key there would be a leaked secret, and an HMAC key would let
// anyone who reads the policy sign tokens). It returns the document
// re-encoded.
func CheckJWKS(doc []byte) (string, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(doc, &set); err != nil {
		return "", vault.FieldError("jwks", "jwks is not a valid JWKS document")
	}
	if len(set.Keys) == 0 {
		return "", vault.FieldError("jwks", "jwks holds no keys")
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			return "", vault.FieldError("jwks", "jwks must hold only public signing keys (no private or symmetric keys)")
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		return "", vault.FieldError("jwks", "jwks cannot be re-encoded")
	}
	return string(b), nil
}
