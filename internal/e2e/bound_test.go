package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
)

// within is must for a change made through ANOTHER replica: each server
// caches authentication and credential rows, and a change reaches the
// others within sqlstore.RevocationBound (usually milliseconds, through
// PostgreSQL NOTIFY). It polls until c answers want and fails if a request
// sent more than the bound after since still got another status.
func (c *client) within(t testing.TB, since time.Time, want int, method, path string, body any) *resp {
	t.Helper()
	for {
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		r, err := c.do(ctx, method, path, body)
		cancel()
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		if r.Status == want {
			return r
		}
		if sent.Sub(since) > sqlstore.RevocationBound {
			t.Fatalf("%s %s: status %d, want %d within %v of the change on the other replica: %s", method, path, r.Status, want, sqlstore.RevocationBound, r.Body)
		}
	}
}
