package trust_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/credvault/credvault/internal/testutil/oapi"
	"github.com/credvault/credvault/internal/testutil/oidctest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func do(t *testing.T, v *vaulttest.Vault, key, method, path string, body any, headers ...string) *vaulttest.Response {
	t.Helper()
	r := v.Do(t, method, path, body, append([]string{"x-api-key", key}, headers...)...)
	oapi.Trust(t).Response(t, method, strings.Split(path, "?")[0], r.Status, r.Header, r.Body)
	return r
}

func policy(accountID string) map[string]any {
	return map[string]any{
		"name": "ci", "account_id": accountID, "issuer": "https://token.actions.githubusercontent.com", "key_source": "discovery",
		"audiences": []string{"credvault"},
		"claims": []map[string]string{
			{"claim": "sub", "pattern": "repo:acme/api:ref:refs/heads/main"},
			{"claim": "repository", "pattern": "acme/api"},
		},
		"role": "reader",
	}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestTrustPolicies_CRUD(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		r := do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", policy(v.AccountID))
		if r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		created := r.Object(t)
		id := created["id"].(string)
		if created["ttl_seconds"].(float64) != 900 {
			t.Errorf("default ttl: %v", created["ttl_seconds"])
		}
		if r := do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", policy(v.AccountID)); r.Status != http.StatusConflict {
			t.Errorf("duplicate name: %d %s", r.Status, r.Body)
		}
		r = do(t, v, v.AdminKey, "GET", "/admin/v1/trust-policies/"+id, nil)
		if r.Status != 200 || r.Object(t)["issuer"] != "https://token.actions.githubusercontent.com" {
			t.Fatalf("get: %d %s", r.Status, r.Body)
		}
		r = do(t, v, v.AdminKey, "GET", "/admin/v1/trust-policies", nil)
		var list struct {
			Items []map[string]any `json:"items"`
		}
		r.Decode(t, &list)
		if r.Status != 200 || len(list.Items) != 1 || list.Items[0]["id"] != id {
			t.Fatalf("list: %d %s", r.Status, r.Body)
		}

		// Another account's admin neither sees nor deletes it, nor creates
		// policies in this account; a non-admin member may not either.
		other := v.NewTenant(t, "other", vault.RoleAdmin)
		if r := do(t, v, other.Key, "GET", "/admin/v1/trust-policies/"+id, nil); r.Status != 404 {
			t.Errorf("other tenant get: %d", r.Status)
		}
		if r := do(t, v, other.Key, "DELETE", "/admin/v1/trust-policies/"+id, nil); r.Status != 404 {
			t.Errorf("other tenant delete: %d", r.Status)
		}
		if r := do(t, v, other.Key, "GET", "/admin/v1/trust-policies?account_id="+v.AccountID, nil); r.Status != 403 {
			t.Errorf("other tenant list: %d", r.Status)
		}
		if r := do(t, v, other.Key, "POST", "/admin/v1/trust-policies", with(policy(v.AccountID), "name", "sneaky")); r.Status != 400 {
			t.Errorf("other tenant create in this account: %d %s", r.Status, r.Body)
		}
		writer := v.NewMember(t, v.AccountID, "w", vault.RoleWriter)
		if r := do(t, v, writer.Key, "POST", "/admin/v1/trust-policies", with(policy(v.AccountID), "name", "w")); r.Status != 403 {
			t.Errorf("writer create: %d %s", r.Status, r.Body)
		}
		// The operator (admin of the system account) manages every account's.
		r = do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", with(policy(other.AccountID), "name", "theirs"))
		if r.Status != http.StatusCreated {
			t.Errorf("operator create in another account: %d %s", r.Status, r.Body)
		}
		if r := do(t, v, other.Key, "GET", "/admin/v1/trust-policies", nil); r.Status != 200 || !strings.Contains(string(r.Body), "theirs") {
			t.Errorf("other tenant lists its own: %d %s", r.Status, r.Body)
		}

		if r := v.Do(t, "GET", "/openapi/trust-v1.openapi.yaml", nil); r.Status != 200 || !strings.Contains(string(r.Body), "/oauth/token") {
			t.Errorf("contract not served: %d", r.Status)
		}
		if r := do(t, v, "", "GET", "/admin/v1/trust-policies", nil); r.Status != 401 {
			t.Errorf("no key: %d", r.Status)
		}
		if r := do(t, v, v.AdminKey, "DELETE", "/admin/v1/trust-policies/"+id, nil); r.Status != 204 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		if r := do(t, v, v.AdminKey, "DELETE", "/admin/v1/trust-policies/"+id, nil); r.Status != 404 {
			t.Errorf("delete again: %d", r.Status)
		}
		recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, ObjectID: id, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, r := range recs {
			actions = append(actions, r.Action+"/"+r.Outcome)
		}
		if got := strings.Join(actions, ","); !strings.Contains(got, "trust_policy.delete/success") || !strings.Contains(got, "trust_policy.create/success") {
			t.Errorf("audit of the policy: %s", got)
		}
	})
}

func TestTrustPolicies_BadInput(t *testing.T) {
	v := vaulttest.New(t, "sqlite")
	symmetric := `{"keys":[{"kty":"oct","k":"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0","kid":"h"}]}`
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	privJWK, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: ec, KeyID: "p"}}})
	for _, tc := range []struct {
		name string
		body any
		says string
	}{
		{"http-issuer", with(policy(v.AccountID), "issuer", "http://issuer.example"), "https"},
		{"no-sub-rule", with(policy(v.AccountID), "claims", []map[string]string{{"claim": "repository", "pattern": "acme/api"}}), "sub claim"},
		{"no-audience", with(policy(v.AccountID), "audiences", []string{}), "audience"},
		{"bad-role", with(policy(v.AccountID), "role", "god"), "role"},
		{"ttl-too-long", with(policy(v.AccountID), "ttl_seconds", 13*3600), "between"},
		{"ttl-too-short", with(policy(v.AccountID), "ttl_seconds", 5), "between"},
		{"bad-glob", with(policy(v.AccountID), "claims", []map[string]string{{"claim": "sub", "pattern": "repo:[acme"}}), "glob"},
		{"jwks-url-without-url", with(policy(v.AccountID), "key_source", "jwks_url"), "jwks_url"},
		{"jwks-symmetric-key", with(policy(v.AccountID), "key_source", "jwks", "jwks", json.RawMessage(symmetric)), "public"},
		{"jwks-private-key", with(policy(v.AccountID), "key_source", "jwks", "jwks", json.RawMessage(privJWK)), "public"},
		{"unknown-field", with(policy(v.AccountID), "secret", "x"), "unknown field"},
		{"unknown-account", with(policy(vault.NewID())), "no such account"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", tc.body)
			if r.Status != 400 || !strings.Contains(string(r.Body), tc.says) {
				t.Errorf("got %d %s, want 400 saying %q", r.Status, r.Body, tc.says)
			}
		})
	}
	if strings.Contains(v.Logs(), "c2VjcmV0c2VjcmV0") {
		t.Errorf("a refused symmetric key reached the log")
	}
	r := do(t, v, v.AdminKey, "GET", "/admin/v1/trust-policies", nil)
	if r.Status != 200 || string(r.Body) != `{"items":[]}` {
		t.Errorf("refused policies were stored: %s", r.Body)
	}
}

// A policy with a pasted JWKS document needs no issuer endpoint; an issuer
// on a loopback address the operator did not allow is never contacted.
func TestTrustPolicies_KeySources(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		cluster := oidctest.New(t) // only its keys: the policy has them pasted
		cluster.AddKey(t, "cluster-1", jose.ES256, true)
		pub, _ := json.Marshal(cluster.JWKS())
		local := oidctest.New(t)

		pasted := with(policy(v.AccountID), "name", "k8s", "issuer", "https://kubernetes.default.svc.cluster.local", "key_source", "jwks", "jwks", json.RawMessage(pub),
			"claims", []map[string]string{{"claim": "sub", "pattern": "system:serviceaccount:payments:*"}})
		if r := do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", pasted); r.Status != 201 {
			t.Fatalf("create pasted: %d %s", r.Status, r.Body)
		}
		blocked := with(policy(v.AccountID), "name", "local", "issuer", local.URL, "key_source", "jwks_url", "jwks_url", local.URL+"/keys",
			"claims", []map[string]string{{"claim": "sub", "pattern": "*"}})
		if r := do(t, v, v.AdminKey, "POST", "/admin/v1/trust-policies", blocked); r.Status != 201 {
			t.Fatalf("create blocked: %d %s", r.Status, r.Body)
		}

		sign := func(iss string) string {
			return cluster.Sign(t, "cluster-1", oidctest.Claims(iss, "system:serviceaccount:payments:api", "credvault", time.Now()))
		}
		exchange := func(tok string) *vaulttest.Response {
			form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok},
				"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}}
			r := v.Do(t, "POST", "/oauth/token", form.Encode(), "Content-Type", "application/x-www-form-urlencoded")
			oapi.Trust(t).Response(t, "POST", "/oauth/token", r.Status, r.Header, r.Body)
			return r
		}
		r := exchange(sign("https://kubernetes.default.svc.cluster.local"))
		if r.Status != 200 {
			t.Fatalf("exchange with a pasted JWKS: %d %s", r.Status, r.Body)
		}
		key := r.Object(t)["access_token"].(string)
		if r := v.SGP(t, key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
			t.Errorf("reader key: %d", r.Status)
		}

		r = exchange(sign(local.URL))
		if r.Status != http.StatusServiceUnavailable || !strings.Contains(string(r.Body), "temporarily_unavailable") {
			t.Errorf("loopback issuer not allowed: %d %s", r.Status, r.Body)
		}
		if n := local.Requests.Load(); n != 0 {
			t.Errorf("the loopback issuer was contacted %d times", n)
		}
		if !strings.Contains(v.Logs(), "not a public address") {
			t.Errorf("the log does not say why the issuer's keys were not fetched")
		}
	})
}
