package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/server"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestFailedAuthNeverRefusesCorrectCredentials: wrong secrets for a key id
// (which is not secret) and floods of wrong keys from one address are
// throttled, but the correct key keeps working, in both dialects and with
// both DSM schemes.
func TestFailedAuthNeverRefusesCorrectCredentials(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		v.NoValidate = true // 401/429 are outside the SGP contract's declared statuses
		keyID, ok := vault.APIKeyID(v.AdminKey)
		if !ok {
			t.Fatalf("bootstrap key has no key id")
		}
		wrongSecret := base64.StdEncoding.EncodeToString([]byte(keyID + ":" + strings.Repeat("w", 43)))
		// A session opened before the attack, and one opened during it.
		sess := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", "Basic "+v.AdminKey).Object(t)["access_token"].(string)

		// 16 wrong secrets for the admin's key id, from this address.
		var last *vaulttest.Response
		for i := 0; i < 16; i++ {
			last = v.SGP(t, wrongSecret, "", "GET", "/v5/credentials", nil)
			if last.Status != http.StatusUnauthorized && last.Status != http.StatusTooManyRequests {
				t.Fatalf("wrong secret %d: %d %s", i, last.Status, last.Body)
			}
		}
		if last.Status != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
			t.Fatalf("16th wrong secret for one key id: want 429 with Retry-After, got %d %v", last.Status, last.Header)
		}
		// 30 wrong keys (no key id at all) from this address.
		for i := 0; i < 30; i++ {
			v.SGP(t, "not-a-key-"+strings.Repeat("x", 40), "", "GET", "/v5/credentials", nil)
		}
		if r := v.SGP(t, "not-a-key-"+strings.Repeat("x", 40), "", "GET", "/v5/credentials", nil); r.Status != http.StatusTooManyRequests {
			t.Fatalf("31st wrong key from one address: want 429, got %d", r.Status)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Basic "+wrongSecret); r.Status != http.StatusTooManyRequests {
			t.Errorf("DSM Basic with a wrong secret while throttled: want 429, got %d", r.Status)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Bearer wrong-token"); r.Status != http.StatusTooManyRequests {
			t.Errorf("DSM Bearer with a wrong token while throttled: want 429, got %d", r.Status)
		}

		// The correct credentials still work, from the same address.
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
			t.Errorf("SGP x-api-key with the correct key: want 200, got %d %s", r.Status, r.Body)
		}
		other := v.NewTenant(t, "other", "writer")
		if r := v.SGP(t, other.Key, "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
			t.Errorf("another valid key from the same address: want 200, got %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Basic "+v.AdminKey); r.Status != http.StatusOK {
			t.Errorf("DSM Basic with the correct key: want 200, got %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Bearer "+sess); r.Status != http.StatusOK {
			t.Errorf("DSM Bearer with a valid session: want 200, got %d %s", r.Status, r.Body)
		}
		r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", "Basic "+v.AdminKey)
		if r.Status != http.StatusOK {
			t.Fatalf("DSM session/auth with the correct key: want 200, got %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Bearer "+r.Object(t)["access_token"].(string)); r.Status != http.StatusOK {
			t.Errorf("DSM Bearer with a session opened while throttled: want 200, got %d %s", r.Status, r.Body)
		}

		// Throttled failures are cheap: not written to the audit trail.
		failures := 0
		if err := v.App.Store.ScanAudit(context.Background(), func(rec vault.AuditRecord) error {
			if rec.Action == "auth.failure" {
				failures++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if failures == 0 || failures > 30 {
			t.Errorf("audited auth failures: %d, want the ones within the burst only (1..30)", failures)
		}
	})
}

// TestTrustedProxies: X-Forwarded-For names the client only when the peer
// is a configured proxy, and then its right-most untrusted entry.
func TestTrustedProxies(t *testing.T) {
	bad := "not-a-key-" + strings.Repeat("x", 40)
	fail := func(t *testing.T, v *vaulttest.Vault, xff string) int {
		t.Helper()
		return v.Do(t, "GET", "/v5/credentials", nil, "x-api-key", bad, "X-Forwarded-For", xff).Status
	}
	t.Run("trusted", func(t *testing.T) {
		v := vaulttest.New(t, "sqlite", func(c *app.Config) {
			c.FailedAuthPerMinute, c.FailedAuthBurst = 1, 2
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8")}
		})
		v.NoValidate = true
		for i := 0; i < 2; i++ {
			if s := fail(t, v, "198.51.100.7"); s != 401 {
				t.Fatalf("failure %d: %d", i, s)
			}
		}
		if s := fail(t, v, "198.51.100.7"); s != 429 {
			t.Fatalf("client over its limit: want 429, got %d", s)
		}
		// The client cannot escape by writing its own entries on the left;
		// trusted hops on the right are skipped.
		if s := fail(t, v, "192.0.2.1, 198.51.100.7, 10.1.2.3"); s != 429 {
			t.Errorf("spoofed left-hand entry: want 429 (same client), got %d", s)
		}
		// Another client behind the same proxy has its own budget.
		if s := fail(t, v, "198.51.100.8"); s != 401 {
			t.Errorf("another client behind the proxy: want 401, got %d", s)
		}
		// The audit trail records the client, not the proxy.
		var addrs []string
		_ = v.App.Store.ScanAudit(context.Background(), func(rec vault.AuditRecord) error {
			if rec.Action == "auth.failure" {
				addrs = append(addrs, rec.ClientAddr)
			}
			return nil
		})
		if len(addrs) != 3 || addrs[0] != "198.51.100.7" || addrs[2] != "198.51.100.8" {
			t.Errorf("audited client addresses: %v", addrs)
		}
		if !strings.Contains(v.Logs(), `"client":"198.51.100.8"`) {
			t.Errorf("the access log does not name the client behind the proxy")
		}
	})
	t.Run("untrusted-peer", func(t *testing.T) {
		v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.FailedAuthPerMinute, c.FailedAuthBurst = 1, 2 })
		v.NoValidate = true
		fail(t, v, "198.51.100.7")
		fail(t, v, "198.51.100.8")
		if s := fail(t, v, "198.51.100.9"); s != 429 {
			t.Errorf("X-Forwarded-For from an untrusted peer was believed: want 429 (one peer), got %d", s)
		}
	})
}

func TestForwardedClient(t *testing.T) {
	trusted := func(a netip.Addr) bool { return netip.MustParsePrefix("10.0.0.0/8").Contains(a) }
	peer := netip.MustParseAddr("10.0.0.1")
	for _, tc := range []struct {
		xff  []string
		want string
	}{
		{nil, "10.0.0.1"},
		{[]string{"203.0.113.5"}, "203.0.113.5"},
		{[]string{"1.1.1.1, 203.0.113.5"}, "203.0.113.5"},
		{[]string{"1.1.1.1, 203.0.113.5, 10.0.0.9"}, "203.0.113.5"},
		{[]string{"1.1.1.1", "203.0.113.5, 10.0.0.9"}, "203.0.113.5"},
		{[]string{"10.0.0.7, 10.0.0.9"}, "10.0.0.7"},
		{[]string{"garbage, 10.0.0.9"}, "10.0.0.9"},
		{[]string{"2001:db8::1"}, "2001:db8::1"},
		{[]string{"::ffff:203.0.113.5"}, "203.0.113.5"},
	} {
		if got := server.ForwardedClient(tc.xff, peer, trusted).String(); got != tc.want {
			t.Errorf("ForwardedClient(%q) = %s, want %s", tc.xff, got, tc.want)
		}
	}
}

// A DSM session is opened with an API key. Revoking that key ("it stops
// working at once") must also end what the key opened: otherwise a leaked
// key, once revoked, keeps working through a session that can be
// refreshed for ever.
func TestDSMSessionEndsWhenItsKeyIsRevoked(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		v.NoValidate = true // the contract declares no 401 for these operations
		m := v.NewMember(t, v.AccountID, "ops", vault.RoleAdmin)
		r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", "Basic "+m.Key)
		if r.Status != 200 {
			t.Fatalf("session/auth: %d %s", r.Status, r.Body)
		}
		bearer := "Bearer " + r.Object(t)["access_token"].(string)
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", bearer); r.Status != 200 {
			t.Fatalf("with the session: %d %s", r.Status, r.Body)
		}
		keyID, _ := vault.APIKeyID(m.Key)
		if err := v.App.Service.RevokeAPIKey(context.Background(), keyID); err != nil {
			t.Fatal(err)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Basic "+m.Key); r.Status != 401 {
			t.Fatalf("revoked key: want 401, got %d", r.Status)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", bearer); r.Status != 401 {
			t.Errorf("session of a revoked key: want 401, got %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "POST", "/sys/v1/session/refresh", nil, "Authorization", bearer); r.Status != 401 {
			t.Errorf("refresh of a revoked key's session: want 401, got %d %s", r.Status, r.Body)
		}
	})
}

// Likewise a session cannot outlive the expiry of the key that opened it.
func TestDSMSessionEndsWhenItsKeyExpires(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		v.NoValidate = true
		ctx := context.Background()
		p, err := v.App.Service.CreatePrincipal(ctx, vault.PrincipalServiceAccount, "short", v.AccountID, vault.RoleAdmin)
		if err != nil {
			t.Fatal(err)
		}
		_, key, err := v.App.Service.CreateAPIKey(ctx, p.ID, "short", 1500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", "Basic "+key)
		if r.Status != 200 {
			t.Fatalf("session/auth: %d %s", r.Status, r.Body)
		}
		bearer := "Bearer " + r.Object(t)["access_token"].(string)
		v.Clock.Advance(2 * time.Second)
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Basic "+key); r.Status != 401 {
			t.Fatalf("expired key: want 401, got %d", r.Status)
		}
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", bearer); r.Status != 401 {
			t.Errorf("session of an expired key: want 401, got %d %s", r.Status, r.Body)
		}
	})
}

// An admin app reaches only its own groups. It may see an app that shares
// one of them, but it must not take over an app that also reaches groups
// it does not: resetting that app's secret and fetching the new one would
// hand it a key to those other groups (and it could also disable, re-role
// or delete an app it does not fully govern).
func TestAdminAppCannotTakeOverAppsReachingOtherGroups(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		basic := "Basic " + v.AdminKey
		do := func(auth string, want int, method, path string, body any) map[string]any {
			t.Helper()
			r := v.Do(t, method, path, body, "Authorization", auth)
			if r.Status != want {
				t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, r.Status, r.Body)
			}
			if want >= 300 || len(r.Body) == 0 {
				return nil
			}
			m, _ := r.JSON(t).(map[string]any)
			return m
		}
		group := func(name string) string {
			return do(basic, 200, "POST", "/sys/v1/groups", map[string]any{"name": name})["group_id"].(string)
		}
		shared, private := group("shared"), group("private")

		newApp := func(name, role string, groups ...string) (string, string) {
			gs := map[string][]string{}
			for _, g := range groups {
				gs[g] = []string{"SIGN", "EXPORT"}
			}
			id := do(basic, 200, "POST", "/sys/v1/apps", map[string]any{"name": name, "role": role, "add_groups": gs})["app_id"].(string)
			key := vault.AppAPIKey(id, do(basic, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string))
			return id, "Basic " + key
		}
		_, attacker := newApp("scoped-admin", "admin", shared)
		victim, victimKey := newApp("victim", "crypto", shared, private)

		v.NoValidate = true // 403s on these operations are outside the contract document
		// It may still see the victim (they share a group) ...
		do(attacker, 200, "GET", "/sys/v1/apps/"+victim, nil)
		// ... but may not take it over.
		do(attacker, 403, "POST", "/sys/v1/apps/"+victim+"/reset_secret", map[string]any{})
		do(attacker, 403, "GET", "/sys/v1/apps/"+victim+"/credential", nil)
		do(attacker, 403, "PATCH", "/sys/v1/apps/"+victim, map[string]any{"enabled": false})
		do(attacker, 403, "DELETE", "/sys/v1/apps/"+victim, nil)
		// The victim's secret was not reset.
		do(victimKey, 200, "GET", "/sys/v1/groups/"+private, nil)
		// An account admin (all groups) still manages it.
		do(basic, 200, "PATCH", "/sys/v1/apps/"+victim, map[string]any{"description": "ok"})
	})
}
