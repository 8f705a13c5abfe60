package oauth_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/client"
	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/testutil/oapi"
	"github.com/credvault/credvault/internal/testutil/oidctest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
	jose "github.com/go-jose/go-jose/v4"
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

func b64(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}

// env is a vault with a local issuer and a trust policy on it.
type env struct {
	v     *vaulttest.Vault
	is    *oidctest.Issuer
	clock *clock
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

// newEnv starts a vault on engine (with opts) that trusts a local issuer
// with keys k1 (RS256), k-ec (ES256) and k-ed (EdDSA).
func newEnv(t *testing.T, engine string, opts ...vaulttest.Option) *env {
	is := oidctest.New(t)
	is.AddKey(t, "k1", jose.RS256, true)
	is.AddKey(t, "k-ec", jose.ES256, true)
	is.AddKey(t, "k-ed", jose.EdDSA, true)
	clk := &clock{t: time.Now().UTC().Truncate(time.Second)}
	allow, _ := netguard.ParseAllow("127.0.0.1")
	v := vaulttest.New(t, engine, append([]vaulttest.Option{func(c *app.Config) {
		c.Clock = clk.Now
		c.OIDC = oidc.Options{Allow: allow, RootCAs: is.Roots()}
	}}, opts...)...)
	return &env{v: v, is: is, clock: clk}
}

// createDB stores the credential the workloads read: "db", payload s3cret.
func (e *env) createDB(t *testing.T) {
	t.Helper()
	if r := e.v.SGP(t, e.v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "db", "payload": "s3cret"}); r.Status != 200 {
		t.Fatalf("create credential: %d %s", r.Status, r.Body)
	}
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
		e := newEnv(t, engine)
		v := e.v
		e.createDB(t)
		policyID := e.createPolicy(t, basePolicy(e, "secret_reader"))

		t.Run("ok/reads-what-its-role-allows", func(t *testing.T) {
			for _, kid := range []string{"k1", "k-ec", "k-ed"} {
				tok := e.is.Sign(t, kid, e.claims(nil))
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
			e.is.AddKey(t, "stranger", jose.RS256, false)
			good := e.is.Sign(t, "k1", e.claims(nil))
			parts := strings.Split(good, ".")
			forged := e.is.Sign(t, "stranger", e.claims(nil))
			wrongSig := parts[0] + "." + parts[1] + "." + strings.Split(forged, ".")[2]
			none := b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."
			// HS256 with the issuer's public key as the HMAC secret.
			pub, _ := x509.MarshalPKIXPublicKey(e.is.Public("k1"))
			hsInput := b64(map[string]any{"alg": "HS256", "typ": "JWT", "kid": "k1"}) + "." + parts[1]
			mac := hmac.New(sha256.New, pub)
			mac.Write([]byte(hsInput))
			hs256 := hsInput + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
			otherKid := e.is.Sign(t, "stranger", e.claims(nil))

			for _, tc := range []struct {
				name, code, says string
				token            func(now time.Time) string
			}{
				{"wrong-signature", "invalid_grant", "signature does not verify", func(now time.Time) string { return wrongSig }},
				{"alg-none", "invalid_grant", "algorithm is not accepted", func(now time.Time) string { return none }},
				{"hs256-with-public-key", "invalid_grant", "algorithm is not accepted", func(now time.Time) string { return hs256 }},
				{"wrong-issuer", "invalid_grant", "no trust policy accepts tokens of this issuer", func(now time.Time) string {
					return e.is.Sign(t, "k1", e.claims(map[string]any{"iss": "https://evil.example"}))
				}},
				{"wrong-audience", "invalid_grant", "audience", func(now time.Time) string { return e.is.Sign(t, "k1", e.claims(map[string]any{"aud": "someone-else"})) }},
				{"expired", "invalid_grant", "expired", func(now time.Time) string {
					return e.is.Sign(t, "k1", e.claims(map[string]any{"iat": now.Add(-time.Hour).Unix(), "nbf": now.Add(-time.Hour).Unix(), "exp": now.Add(-2 * time.Minute).Unix()}))
				}},
				{"no-exp", "invalid_grant", "no exp", func(now time.Time) string { return e.is.Sign(t, "k1", e.claims(map[string]any{"exp": nil})) }},
				{"not-yet-valid", "invalid_grant", "not valid yet", func(now time.Time) string {
					return e.is.Sign(t, "k1", e.claims(map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}))
				}},
				{"too-old", "invalid_grant", "too old", func(now time.Time) string {
					return e.is.Sign(t, "k1", e.claims(map[string]any{"iat": now.Add(-48 * time.Hour).Unix(), "nbf": now.Add(-48 * time.Hour).Unix()}))
				}},
				{"claim-rule-miss", "invalid_grant", `"sub" claim does not match`, func(now time.Time) string {
					return e.is.Sign(t, "k1", e.claims(map[string]any{"sub": "system:serviceaccount:billing:api"}))
				}},
				{"unknown-kid-after-refresh", "invalid_grant", "key id is not among the issuer's keys", func(now time.Time) string { return otherKid }},
				{"not-a-jwt", "invalid_request", "not a JWT", func(now time.Time) string { return "hello" }},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := e.is.Fetches.Load()
					e.clock.Advance(2 * time.Minute) // past the refresh rate limit
					tok := tc.token(e.clock.Now())
					wantRefusal(t, e.exchange(t, tok), tc.code, tc.says)
					if tc.name == "unknown-kid-after-refresh" {
						if got := e.is.Fetches.Load() - before; got != 1 {
							t.Errorf("an unknown kid caused %d JWKS fetches, want 1 refresh", got)
						}
						// Again at once: refused without another fetch (rate limit).
						wantRefusal(t, e.exchange(t, tok), tc.code, tc.says)
						if got := e.is.Fetches.Load() - before; got != 1 {
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
			e.is.AddKey(t, "k2", jose.ES256, false)
			e.is.Rotate("k2")
			e.clock.Advance(2 * time.Minute)
			key := e.mustExchange(t, e.is.Sign(t, "k2", e.claims(nil)))
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Errorf("key from a rotated issuer key: %d %s", r.Status, r.Body)
			}
		})

		t.Run("ok/key-expires", func(t *testing.T) {
			key := e.mustExchange(t, e.is.Sign(t, "k2", e.claims(nil)))
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
			key := e.mustExchange(t, e.is.Sign(t, "k2", e.claims(nil)))
			// Used once first, so that a server caching authentications
			// has it cached: the deletion must reach the cache too.
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
				t.Fatalf("a fresh key: %d %s", r.Status, r.Body)
			}
			if r := e.do(t, "DELETE", "/admin/v1/trust-policies/"+policyID, nil, "x-api-key", v.AdminKey); r.Status != 204 {
				t.Fatalf("delete: %d %s", r.Status, r.Body)
			}
			wantRefusal(t, e.exchange(t, e.is.Sign(t, "k2", e.claims(nil))), "invalid_grant", "no trust policy")
			if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 401 {
				t.Errorf("a key issued through a deleted policy still works: %d", r.Status)
			}
			if r := e.do(t, "GET", "/admin/v1/trust-policies/"+policyID, nil, "x-api-key", v.AdminKey); r.Status != 404 {
				t.Errorf("get deleted policy: %d", r.Status)
			}
		})
	})
}

// The SDK with workload identity reads a credential with no stored key and
// exchanges its token again before the key expires.
func TestSDK_WorkloadIdentity(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine)
		v := e.v
		e.createDB(t)
		e.createPolicy(t, basePolicy(e, "secret_reader"))

		var exchanges atomic.Int64
		c, err := client.New(v.URL, "", client.WithWorkloadIdentity(client.WorkloadIdentity{
			Token: func(context.Context) (string, error) {
				exchanges.Add(1)
				return e.is.Sign(t, "k1", e.claims(nil)), nil
			},
			Now: e.clock.Now,
		}))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		read := func() {
			t.Helper()
			s, err := c.Credentials.DecryptByName(ctx, "db")
			if err != nil || string(s) != "s3cret" {
				t.Fatalf("read: %q %v", s, err)
			}
		}
		read()
		read()
		if n := exchanges.Load(); n != 1 {
			t.Fatalf("%d exchanges for two reads, want 1", n)
		}
		// Past three quarters of the key's lifetime: a new key, before the
		// old one expires.
		e.clock.Advance(vault.DefaultWorkloadKeyTTL*3/4 + time.Second)
		read()
		if n := exchanges.Load(); n != 2 {
			t.Fatalf("%d exchanges after 3/4 of the lifetime, want 2", n)
		}
		// The first key has expired by now; the client carries on.
		e.clock.Advance(vault.DefaultWorkloadKeyTTL / 2)
		read()

		// A refused exchange is an API error saying why.
		bad, _ := client.New(v.URL, "", client.WithWorkloadIdentity(client.WorkloadIdentity{
			Token: func(context.Context) (string, error) {
				return e.is.Sign(t, "k1", e.claims(map[string]any{"aud": "nope"})), nil
			},
			Now: e.clock.Now,
		}))
		_, err = bad.Credentials.DecryptByName(ctx, "db")
		var ae *client.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || ae.Detail != "invalid_grant: the token's audience is not one the trust policy accepts" {
			t.Errorf("refused exchange: %v", err)
		}
	})
}

// A flood of refused exchanges is throttled like failed API keys: past the
// burst the answer is 429 slow_down with Retry-After, and nothing more is
// written to the audit trail; a good token is still exchanged.
func TestTokenExchange_RefusalsThrottled(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		e := newEnv(t, engine, func(c *app.Config) { c.FailedAuthPerMinute, c.FailedAuthBurst = 1, 4 })
		v := e.v
		policyID := e.createPolicy(t, basePolicy(e, "reader"))
		audited := func() int {
			recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, PrincipalID: policyID, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			return len(recs)
		}
		bad := e.is.Sign(t, "k1", e.claims(map[string]any{"aud": "other"}))
		for i := 0; i < 2; i++ { // the per-policy burst is half the address burst
			wantRefusal(t, e.exchange(t, bad), "invalid_grant", "audience")
		}
		n := audited()
		r := e.exchange(t, bad)
		if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || r.Object(t)["error"] != "slow_down" {
			t.Fatalf("past the burst: %d %v %s", r.Status, r.Header, r.Body)
		}
		if got := audited(); got != n {
			t.Errorf("a throttled refusal wrote %d audit records", got-n)
		}
		e.mustExchange(t, e.is.Sign(t, "k1", e.claims(nil)))
	})
}
