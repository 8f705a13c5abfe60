package admin_test

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestSessionLifetimes: a login session ends after SessionIdleTimeout
// without use and after SessionMaxLifetime however much it is used; a
// DSM user session ends SessionMaxLifetime after it opened. The vault's
// clock (vaulttest.Vault.Clock) is moved, not waited for.
func TestSessionLifetimes(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		w := newWorld(t, v)
		w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "gina", "account_id": w.acctA, "role": "reader", "email": "gina@example.com", "password": canary})
		clk, svc := v.Clock, v.App.Service
		auth := func(tok string) error {
			_, err := svc.AuthenticateUserSession(ctx, tok, "")
			return err
		}
		// Idle timeout.
		tok, _, _, err := svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(vault.SessionIdleTimeout - time.Minute)
		if err := auth(tok); err != nil {
			t.Fatalf("used within the idle timeout: %v", err)
		}
		clk.Advance(vault.SessionIdleTimeout - time.Second) // measured from the last use
		if err := auth(tok); err != nil {
			t.Fatalf("used again within the idle timeout: %v", err)
		}
		clk.Advance(vault.SessionIdleTimeout + time.Second)
		if err := auth(tok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("after the idle timeout: %v", err)
		}
		// Absolute lifetime, however busy.
		tok, _, _, err = svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		for used := time.Duration(0); used < vault.SessionMaxLifetime-vault.SessionIdleTimeout; used += 20 * time.Minute {
			clk.Advance(20 * time.Minute)
			if err := auth(tok); err != nil {
				t.Fatalf("busy session at %v: %v", used, err)
			}
		}
		clk.Advance(vault.SessionIdleTimeout - time.Minute)
		if err := auth(tok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("after the absolute lifetime: %v", err)
		}
		// A DSM user session is capped at the same absolute lifetime.
		id, err := svc.AuthenticateDSMUser(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		dtok, _, err := svc.CreateSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for elapsed := time.Duration(0); elapsed < vault.SessionMaxLifetime-5*time.Minute; elapsed += 5 * time.Minute {
			clk.Advance(5 * time.Minute)
			did, err := svc.AuthenticateKeyOrSession(ctx, "", dtok)
			if err != nil {
				t.Fatalf("refreshed DSM session at %v: %v", elapsed, err)
			}
			if err := svc.RefreshSession(ctx, did); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(6 * time.Minute)
		if _, err := svc.AuthenticateKeyOrSession(ctx, "", dtok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("DSM user session after the absolute lifetime: %v", err)
		}
	})
}
