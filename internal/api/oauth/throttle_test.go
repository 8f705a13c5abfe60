package oauth_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

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
