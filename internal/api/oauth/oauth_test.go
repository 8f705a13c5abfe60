package oauth_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/testutil/oapi"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is the vault's injected clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// issuer is a local OIDC issuer: discovery and JWKS over TLS on 127.0.0.1,
// with keys generated here.
type issuer struct {
	srv     *httptest.Server
	URL     string
	mu      sync.Mutex
	keys    map[string]crypto.Signer // kid → private key
	publish []string                 // kids in the JWKS
	fetches atomic.Int64             // JWKS fetches
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{keys: map[string]crypto.Signer{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.URL, "jwks_uri": is.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		is.fetches.Add(1)
		_ = json.NewEncoder(w).Encode(is.jwks())
	})
	is.srv = httptest.NewTLSServer(mux)
	t.Cleanup(is.srv.Close)
	is.URL = is.srv.URL
	return is
}

func (is *issuer) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(is.srv.Certificate())
	return p
}

// addKey generates a key of alg and publishes it (publish=false: only
// known to the test, as a key the issuer never announced).
func (is *issuer) addKey(t *testing.T, kid string, alg jose.SignatureAlgorithm, publish bool) {
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

// rotate publishes only kids.
func (is *issuer) rotate(kids ...string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.publish = kids
}

func (is *issuer) jwks() jose.JSONWebKeySet {
	is.mu.Lock()
	defer is.mu.Unlock()
	var set jose.JSONWebKeySet
	for _, kid := range is.publish {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: is.keys[kid].Public(), KeyID: kid, Use: "sig"})
	}
	return set
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

// sign returns a JWT with claims signed by key kid.
func (is *issuer) sign(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	is.mu.Lock()
	k := is.keys[kid]
	is.mu.Unlock()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: algOf(k), Key: jose.JSONWebKey{Key: k, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// env is a vault with a local issuer and a trust policy on it.
type env struct {
	v      *vaulttest.Vault
	is     *issuer
	clock  *clock
	policy map[string]any
}

const sub = "system:serviceaccount:payments:api"

func (e *env) claims(over map[string]any) map[string]any {
	now := e.clock.Now()
	c := map[string]any{
		"iss": e.is.URL, "sub": sub, "aud": []string{"credvault"},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
		"kubernetes.io": map[string]any{"namespace": "payments"},
	}
	for k, v := range over {
		if v == nil {
			delete(c, k)
			continue
		}
		c[k] = v
	}
	return c
}

func newEnv(t *testing.T, engine string, allowIssuer bool) *env {
	is := newIssuer(t)
	is.addKey(t, "k1", jose.RS256, true)
	is.addKey(t, "k-ec", jose.ES256, true)
	is.addKey(t, "k-ed", jose.EdDSA, true)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	var allow netguard.Allow
	if allowIssuer {
		allow, _ = netguard.ParseAllow("127.0.0.1")
	}
	v := vaulttest.New(t, engine, func(c *app.Config) {
		c.Clock = clk.Now
		c.OIDC = oidc.Options{Allow: allow, RootCAs: is.roots()}
	})
	return &env{v: v, is: is, clock: clk}
}

// do sends a request and validates the response against the trust contract.
func (e *env) do(t *testing.T, method, path string, body any, headers ...string) *vaulttest.Response {
	t.Helper()
	r := e.v.Do(t, method, path, body, headers...)
	oapi.Trust(t).Response(t, method, strings.Split(path, "?")[0], r.Status, r.Header, r.Body)
	return r
}

func (e *env) createPolicy(t *testing.T, in map[string]any) string {
	t.Helper()
	r := e.do(t, "POST", "/admin/v1/trust-policies", in, "x-api-key", e.v.AdminKey, "Content-Type", "application/json")
	if r.Status != http.StatusCreated {
		t.Fatalf("create trust policy: %d %s", r.Status, r.Body)
	}
	return r.Object(t)["id"].(string)
}

func (e *env) exchange(t *testing.T, token string, extra ...string) *vaulttest.Response {
	t.Helper()
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {token},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}
	for i := 0; i+1 < len(extra); i += 2 {
		form.Set(extra[i], extra[i+1])
	}
	r := e.do(t, "POST", "/oauth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
	if strings.Contains(string(r.Body), token) && r.Status != http.StatusOK {
		t.Errorf("the error echoes the token: %s", r.Body)
	}
	return r
}

func (e *env) mustExchange(t *testing.T, token string) string {
	t.Helper()
	r := e.exchange(t, token)
	if r.Status != http.StatusOK {
		t.Fatalf("exchange: %d %s", r.Status, r.Body)
	}
	m := r.Object(t)
	if m["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || m["token_type"] != "Bearer" || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("exchange response: %v %v", m, r.Header)
	}
	return m["access_token"].(string)
}

func wantRefusal(t *testing.T, r *vaulttest.Response, code, says string) {
	t.Helper()
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	r.Decode(t, &body)
	if r.Status != http.StatusBadRequest || body.Error != code || !strings.Contains(body.Description, says) {
		t.Errorf("got %d %s, want 400 %s saying %q", r.Status, r.Body, code, says)
	}
}

func basePolicy(e *env, role string) map[string]any {
	return map[string]any{
		"name": "payments", "account_id": e.v.AccountID, "issuer": e.is.URL, "key_source": "discovery",
		"audiences": []string{"credvault"},
		"claims": []map[string]string{
			{"claim": "sub", "pattern": "system:serviceaccount:payments:*"},
			{"claim": "kubernetes.io", "pattern": "*"}, // an object claim never matches a pattern
		}[:1],
		"role": role,
	}
}

func TestTokenExchange(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine, true)
		v := e.v
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "db", "payload": "s3cret"}); r.Status != 200 {
			t.Fatalf("create credential: %d %s", r.Status, r.Body)
		}
		policyID := e.createPolicy(t, basePolicy(e, "secret_reader"))

		t.Run("ok/reads-what-its-role-allows", func(t *testing.T) {
			for _, kid := range []string{"k1", "k-ec", "k-ed"} {
				tok := e.is.sign(t, kid, e.claims(nil))
				key := e.mustExchange(t, tok)
				t.Cleanup(func() {
					// Neither the workload's token nor the issued key is logged.
					sig := tok[strings.LastIndex(tok, ".")+1:]
					if logs := v.Logs(); strings.Contains(logs, sig) || strings.Contains(logs, key) {
						t.Errorf("the server log holds the token or the issued key")
					}
				})
				if _, ok := vault.APIKeyID(key); !ok {
					t.Fatalf("access token has not the API-key form")
				}
				r := v.SGP(t, key, "", "POST", "/v5/credentials/name/db/secret", nil)
				if r.Status != 200 || !strings.Contains(string(r.Body), "s3cret") {
					t.Fatalf("%s: read secret: %d %s", kid, r.Status, r.Body)
				}
				// secret_reader: nothing more.
				if r := v.SGP(t, key, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "x", "payload": "y"}); r.Status != 403 {
					t.Errorf("%s: create with a secret_reader key: %d %s", kid, r.Status, r.Body)
				}
				if r := e.do(t, "GET", "/admin/v1/trust-policies", nil, "x-api-key", key); r.Status != 403 {
					t.Errorf("%s: list trust policies with a secret_reader key: %d %s", kid, r.Status, r.Body)
				}
				// The same key is a DSM app key (Authorization: Basic).
				if r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", "Basic "+key); r.Status != 200 {
					t.Errorf("%s: DSM session with the key: %d %s", kid, r.Status, r.Body)
				}
			}
		})

		t.Run("ok/audited", func(t *testing.T) {
			recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, PrincipalID: policyID, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, r := range recs {
				if r.Action == "workload.exchange" && r.Outcome == "success" && r.ObjectType == "workload" && r.ObjectID == sub {
					found = true
				}
				if strings.Contains(r.ObjectID, ".") {
					t.Errorf("an audit record holds what looks like a token: %+v", r)
				}
			}
			if !found {
				t.Errorf("no audit record of the exchange by policy %s for %s: %+v", policyID, sub, recs)
			}
		})

		t.Run("err/refusals", func(t *testing.T) {
			e.is.addKey(t, "stranger", jose.RS256, false)
			good := e.is.sign(t, "k1", e.claims(nil))
			parts := strings.Split(good, ".")
			forged := e.is.sign(t, "stranger", e.claims(nil))
			wrongSig := parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]
			none := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
			// HS256 with the issuer's public key as the HMAC secret.
			pub, _ := x509.MarshalPKIXPublicKey(e.is.keys["k1"].Public())
			hsInput := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "." + parts[1]
			mac := hmac.New(sha256.New, pub)
			mac.Write([]byte(hsInput))
			hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
			otherKid := e.is.sign(t, "stranger", e.claims(nil))

			for _, tc := range []struct {
				name, code, says string
				token            func(now time.Time) string
			}{
				{"wrong-signature", "invalid_grant", "signature does not verify", func(now time.Time) string { return wrongSig }},
				{"alg-none", "invalid_grant", "algorithm is not accepted", func(now time.Time) string { return none }},
				{"hs256-with-public-key", "invalid_grant", "algorithm is not accepted", func(now time.Time) string { return hs256 }},
				{"wrong-issuer", "invalid_grant", "no trust policy accepts tokens of this issuer", func(now time.Time) string {
					return e.is.sign(t, "k1", e.claims(map[string]any{"iss": "https://evil.example"}))
				}},
				{"wrong-audience", "invalid_grant", "audience", func(now time.Time) string { return e.is.sign(t, "k1", e.claims(map[string]any{"aud": "someone-else"})) }},
				{"expired", "invalid_grant", "expired", func(now time.Time) string {
					return e.is.sign(t, "k1", e.claims(map[string]any{"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(-2 * time.Minute).Unix()}))
				}},
				{"no-exp", "invalid_grant", "no exp", func(now time.Time) string { return e.is.sign(t, "k1", e.claims(map[string]any{"exp": nil})) }},
				{"not-yet-valid", "invalid_grant", "not valid yet", func(now time.Time) string {
					return e.is.sign(t, "k1", e.claims(map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}))
				}},
				{"too-old", "invalid_grant", "too old", func(now time.Time) string {
					return e.is.sign(t, "k1", e.claims(map[string]any{"iat": now.Add(-48 * time.Hour).Unix(), "nbf": now.Add(-48 * time.Hour).Unix()}))
				}},
				{"claim-rule-miss", "invalid_grant", `"sub" claim does not match`, func(now time.Time) string {
					return e.is.sign(t, "k1", e.claims(map[string]any{"sub": "system:serviceaccount:billing:api"}))
				}},
				{"unknown-kid-after-refresh", "invalid_grant", "key id is not among the issuer's keys", func(now time.Time) string { return otherKid }},
				{"not-a-jwt", "invalid_request", "not a JWT", func(now time.Time) string { return "hello" }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := e.is.fetches.Load()
					e.clock.Advance(2 * time.Minute) // past the refresh rate limit
					tok := tc.token(e.clock.Now())
					wantRefusal(t, e.exchange(t, tok), tc.code, tc.says)
					if tc.name == "unknown-kid-after-refresh" {
						if got := e.is.fetches.Load() - before; got != 1 {
							t.Errorf("an unknown kid caused %d JWKS fetches, want 1 refresh", got)
						}
						// Again at once: refused without another fetch (rate limit).
						wantRefusal(t, e.exchange(t, tok), tc.code, tc.says)
						if got := e.is.fetches.Load() - before; got != 1 {
							t.Errorf("a second unknown kid within the refresh interval fetched again (%d fetches)", got)
						}
					}
				})
			}
			t.Run("wrong-grant-type", func(t *testing.T) {
				r := e.exchange(t, good, "grant_type", "client_credentials")
				if r.Status != 400 || !strings.Contains(string(r.Body), `"unsupported_grant_type"`) {
					t.Errorf("got %d %s", r.Status, r.Body)
				}
			})
			t.Run("refusals-audited", func(t *testing.T) {
				recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, PrincipalID: policyID, Limit: 200})
				if err != nil {
					t.Fatal(err)
				}
				refused := 0
				for _, r := range recs {
					if r.Action == "workload.exchange" && r.Outcome != "success" {
						refused++
					}
				}
				if refused < 5 {
					t.Errorf("%d refused exchanges audited under the policy, want one per refusal a policy saw", refused)
				}
			})
			t.Run("wrong-resource", func(t *testing.T) {
				wantRefusal(t, e.exchange(t, good, "resource", vault.NewID()), "invalid_grant", "no trust policy")
			})
		})

		t.Run("ok/issuer-key-rotation", func(t *testing.T) {
			e.is.addKey(t, "k2", jose.ES256, false)
			e.is.rotate("k2")
			e.clock.Advance(2 * time.Minute)
			key := e.mustExchange(t, e.is.sign(t, "k2", e.claims(nil)))
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Errorf("key from a rotated issuer key: %d %s", r.Status, r.Body)
			}
		})

		t.Run("ok/key-expires", func(t *testing.T) {
			key := e.mustExchange(t, e.is.sign(t, "k2", e.claims(nil)))
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Fatalf("fresh key: %d", r.Status)
			}
			e.clock.Advance(vault.DefaultWorkloadKeyTTL - time.Second)
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Fatalf("key a second before expiry: %d", r.Status)
			}
			e.clock.Advance(time.Second)
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 401 {
				t.Errorf("key at expiry: %d %s", r.Status, r.Body)
			}
		})

		t.Run("err/deleted-trust-policy", func(t *testing.T) {
			key := e.mustExchange(t, e.is.sign(t, "k2", e.claims(nil)))
			// Used once first, so that a server caching authentications
			// has it cached: the deletion must reach the cache too.
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Fatalf("a fresh key: %d %s", r.Status, r.Body)
			}
			if r := e.do(t, "DELETE", "/admin/v1/trust-policies/"+policyID, nil, "x-api-key", v.AdminKey); r.Status != 204 {
				t.Fatalf("delete: %d %s", r.Status, r.Body)
			}
			wantRefusal(t, e.exchange(t, e.is.sign(t, "k2", e.claims(nil))), "invalid_grant", "no trust policy")
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 401 {
				t.Errorf("a key issued through a deleted policy still works: %d", r.Status)
			}
			if r := e.do(t, "GET", "/admin/v1/trust-policies/"+policyID, nil, "x-api-key", v.AdminKey); r.Status != 404 {
				t.Errorf("get deleted policy: %d", r.Status)
			}
		})
	})
}
