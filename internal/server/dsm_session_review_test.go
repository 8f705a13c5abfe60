package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

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
