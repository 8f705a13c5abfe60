package app_test

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// statusWithin polls v with key until the status is want, and fails if a
// request sent more than bound after start still got another status.
func statusWithin(t *testing.T, v *vaulttest.Vault, key string, want int, start time.Time, bound time.Duration) {
	t.Helper()
	for {
		sent := time.Now()
		got := v.SGP(t, key, "", "GET", "/v5/credentials?limit=1", nil).Status
		if got == want {
			return
		}
		if sent.Sub(start) > bound {
			t.Fatalf("a request sent %v after the change got status %d, want %d (bound %v)", sent.Sub(start), got, want, bound)
		}
	}
}

// warm authenticates with key on every vault a few times, so that each one
// answers from its authentication cache.
func warm(t *testing.T, key string, vs ...*vaulttest.Vault) {
	t.Helper()
	for _, v := range vs {
		for range 3 {
			if got := v.SGP(t, key, "", "GET", "/v5/credentials?limit=1", nil).Status; got != 200 {
				t.Fatalf("warm-up: status %d", got)
			}
		}
	}
}

// TestAuthCache_Revocation: authentication is cached in each server, and a
// change stops working at once on the server that made it and within
// sqlstore.RevocationBound on another replica (PostgreSQL: two servers on
// one database; SQLite: two servers on one file) or after the admin CLI
// changed the database directly.
func TestAuthCache_Revocation(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		ctx := context.Background()
		b := a.Replica(t)

		t.Run("revoked key: at once here, within the bound on another replica", func(t *testing.T) {
			m := a.NewMember(t, a.AccountID, "revoke-me", vault.RoleAdmin)
			warm(t, m.Key, a, b)
			kid, _ := vault.APIKeyID(m.Key)
			if err := a.App.Service.RevokeAPIKey(ctx, kid); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if got := a.SGP(t, m.Key, "", "GET", "/v5/credentials?limit=1", nil).Status; got != 401 {
				t.Fatalf("the replica that revoked the key: status %d right after the revocation, want 401", got)
			}
			statusWithin(t, b, m.Key, 401, start, sqlstore.RevocationBound)
		})

		t.Run("membership changed: role drops within the bound on another replica", func(t *testing.T) {
			m := a.NewMember(t, a.AccountID, "demote-me", vault.RoleAdmin)
			warm(t, m.Key, a, b)
			if err := b.App.Service.AddMembership(ctx, m.PrincipalID, a.AccountID, vault.RoleReader); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			create := func(v *vaulttest.Vault) int {
				return v.SGP(t, m.Key, "", "POST", "/v5/credentials", map[string]any{"name": "x-" + vault.NewID(), "type": "key", "payload": "p"}).Status
			}
			if got := create(b); got != 403 {
				t.Fatalf("the replica that changed the role: create as reader: status %d, want 403", got)
			}
			for {
				sent := time.Now()
				if create(a) == 403 {
					break
				}
				if sent.Sub(start) > sqlstore.RevocationBound {
					t.Fatalf("the other replica still let a demoted key create %v after the change", sent.Sub(start))
				}
			}
		})

		t.Run("revoked by the admin CLI on the database: within the bound", func(t *testing.T) {
			m := a.NewMember(t, a.AccountID, "cli-revokes-me", vault.RoleAdmin)
			warm(t, m.Key, a)
			adm, err := app.OpenAdmin(ctx, a.Config, "test")
			if err != nil {
				t.Fatal(err)
			}
			defer adm.Store.Close()
			kid, _ := vault.APIKeyID(m.Key)
			if err := adm.Service.RevokeAPIKey(vault.WithActor(ctx, adm.Actor), kid); err != nil {
				t.Fatal(err)
			}
			statusWithin(t, a, m.Key, 401, time.Now(), sqlstore.RevocationBound)
		})
	})
}
