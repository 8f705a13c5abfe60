package oauth_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/client"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

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
