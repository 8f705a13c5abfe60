package server_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/netip"
	"strings"
	"testing"

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
