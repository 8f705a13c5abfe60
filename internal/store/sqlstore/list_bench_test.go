package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// BenchmarkListCredentials: the store's part of an SGP listing, the first
// page of 100 in 10k credentials and a page deep in them, with every row in
// the row cache (as on a server that has served them once). The id scan, the cache lookups and
// the copies are what it measures; the loopback benchmark
// (cmd/credvault-bench, list-first) adds HTTP and JSON.
func BenchmarkListCredentials(b *testing.B) {
	for _, engine := range []string{SQLite, Postgres} {
		b.Run(engine, func(b *testing.B) {
			db := openDB(b, engine)
			ctx := context.Background()
			acct, cs := seedCredentials(b, db, 10_000, func(i int, c *vault.Credential) {
				c.Name, c.Metadata = fmt.Sprintf("c%05d", i), []byte(`{"team":"a"}`)
				c.CreatedAt = c.CreatedAt.Add(time.Duration(i) * time.Microsecond)
			})
			if err := db.Analyze(ctx); err != nil {
				b.Fatal(err)
			}
			// The deep page starts after row 9,800 of the 10,000 in the
			// listing's order (newest first), as the loopback benchmark's
			// list-deep does.
			first := vault.CredentialQuery{Limit: 100, SortBy: vault.SortCreatedAt, Desc: true}
			deep := first
			deep.After = cs[len(cs)-9_800].ID
			for _, c := range []struct {
				name string
				q    vault.CredentialQuery
			}{{"first", first}, {"deep", deep}} {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						p, err := db.ListCredentials(ctx, acct.ID, c.q)
						if err != nil || len(p.Items) != 100 {
							b.Fatalf("%v, %v", p, err)
						}
					}
				})
			}
		})
	}
}
