package e2e

import (
	"context"
	"net/http"
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

// within is client.within for a DSM client (GET requests without a body).
func (c dsmClient) within(t *testing.T, since time.Time, want int, method, path string, _ any) {
	t.Helper()
	for {
		sent := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		hr, err := c.hc.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("%s %s: %v", method, path, err)
		}
		hr.Body.Close()
		cancel()
		if hr.StatusCode == want {
			return
		}
		if sent.Sub(since) > sqlstore.RevocationBound {
			t.Fatalf("%s %s on %s: status %d, want %d within %v of the change on the other replica", method, path, c.base, hr.StatusCode, want, sqlstore.RevocationBound)
		}
	}
}
