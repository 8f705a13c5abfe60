package admin_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestSessionLifetimes: a login session ends after SessionIdleTimeout
// without use and after SessionMaxLifetime however much it is used; a
// DSM user session ends SessionMaxLifetime after it opened. The service
// runs with a controlled clock over the vault's real store.
func TestSessionLifetimes(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		w := newWorld(t, v)
		w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "gina", "account_id": w.acctA, "role": "reader", "email": "gina@example.com", "password": canary})
		clk := &clock{t: time.Now()}
		svc := vault.NewService(v.App.Service.Store(), v.App.Service.Sealer(), vault.Options{Now: clk.now})
		auth := func(tok string) error {
			_, err := svc.AuthenticateUserSession(ctx, tok, "")
			return err
		}
		// Idle timeout.
		tok, _, _, err := svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		clk.add(vault.SessionIdleTimeout - time.Minute)
		if err := auth(tok); err != nil {
			t.Fatalf("used within the idle timeout: %v", err)
		}
		clk.add(vault.SessionIdleTimeout - time.Second) // measured from the last use
		if err := auth(tok); err != nil {
			t.Fatalf("used again within the idle timeout: %v", err)
		}
		clk.add(vault.SessionIdleTimeout + time.Second)
		if err := auth(tok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("after the idle timeout: %v", err)
		}
		// Absolute lifetime, however busy.
		tok, _, _, err = svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		for used := time.Duration(0); used < vault.SessionMaxLifetime-vault.SessionIdleTimeout; used += 20 * time.Minute {
			clk.add(20 * time.Minute)
			if err := auth(tok); err != nil {
				t.Fatalf("busy session at %v: %v", used, err)
			}
		}
		clk.add(vault.SessionIdleTimeout - time.Minute)
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
			clk.add(5 * time.Minute)
			did, err := svc.AuthenticateDSM(ctx, "Bearer "+dtok)
			if err != nil {
				t.Fatalf("refreshed DSM session at %v: %v", elapsed, err)
			}
			if err := svc.RefreshSession(ctx, did); err != nil {
				t.Fatal(err)
			}
		}
		clk.add(6 * time.Minute)
		if _, err := svc.AuthenticateDSM(ctx, "Bearer "+dtok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("DSM user session after the absolute lifetime: %v", err)
		}
	})
}
