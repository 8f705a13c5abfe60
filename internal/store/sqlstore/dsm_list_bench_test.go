package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// benchRows is how many security objects and integration credentials the
// listing benchmark puts in one account.
const benchRows = 100_000

// seedDSMListing fills a fresh account with benchRows objects and
// benchRows credentials in one group, inserted set-wise through SQL (the
// listing, not the insert, is measured). Ids and names sort by number.
func seedDSMListing(b *testing.B, db *DB) (accountID string) {
	ctx := context.Background()
	now := time.Now()
	acct := &vault.Account{ID: vault.NewID(), Name: "bench", CreatedAt: now}
	g := &vault.Group{ID: vault.NewID(), AccountID: acct.ID, Name: "g", Creator: vault.Creator{Kind: vault.PrincipalUser, ID: "u"}, CreatedAt: now, UpdatedAt: now}
	tmpl := &vault.Sobject{AccountID: acct.ID, KID: vault.NewID(), GroupID: g.ID, Name: "template", ObjType: vault.ObjAES, KeySize: 256,
		KeyOps: []string{"ENCRYPT"}, CustomMetadata: map[string]string{"team": "a"}, Enabled: true, State: vault.StateActive,
		Creator: g.Creator, CreatedAt: now, UpdatedAt: now, ActivationDate: now, Version: 1, Ciphertext: []byte("not a real ciphertext")}
	if err := db.CreateAccount(ctx, acct); err != nil {
		b.Fatal(err)
	}
	if err := db.CreateGroup(ctx, g); err != nil {
		b.Fatal(err)
	}
	if err := db.CreateSobject(ctx, tmpl); err != nil {
		b.Fatal(err)
	}
	// n runs from 10000000, so that every id has the same width.
	series := fmt.Sprintf(`WITH RECURSIVE s(n) AS (SELECT 10000000 UNION ALL SELECT n + 1 FROM s WHERE n < %d) `, 10000000+benchRows-1)
	copied := `account_id, CAST(n AS TEXT) || '-0000-4000-8000-000000000000', group_id, 'object ' || CAST(n AS TEXT)`
	for _, q := range []string{
		`INSERT INTO dsm_sobjects (` + sobjectCols + `) ` + series + `SELECT ` + copied + `,` + sobjectCols[len("account_id, kid, group_id, name,"):] +
			` FROM dsm_sobjects, s WHERE kid = '` + tmpl.KID + `'`,
		`INSERT INTO dsm_credentials (` + credCols + `) ` + series + `SELECT account_id, CAST(n AS TEXT) || '-0000-4000-8000-000000000000', group_id,
			'credential ' || CAST(n AS TEXT), NULL, '{"provider":"Oci","auth":"ApiKey"}', creator_kind, creator_id, created_at, updated_at
			FROM dsm_sobjects, s WHERE kid = '` + tmpl.KID + `'`,
		`DELETE FROM dsm_group_stats`,
		`INSERT INTO dsm_group_stats (account_id, group_id, sobjects, credentials) SELECT account_id, group_id,
			(SELECT COUNT(*) FROM dsm_sobjects), (SELECT COUNT(*) FROM dsm_credentials) FROM dsm_sobjects WHERE kid = '` + tmpl.KID + `'`,
		`ANALYZE`,
	} {
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			b.Fatalf("seed: %v\n%s", err, q)
		}
	}
	if db.d.name == Postgres {
		// Settle the new rows' visibility map, as autovacuum would.
		if _, err := db.w.ExecContext(ctx, `VACUUM ANALYZE dsm_sobjects, dsm_credentials`); err != nil {
			b.Fatal(err)
		}
	}
	return acct.ID
}

// BenchmarkDSMListing: a page of security objects or integration
// credentials costs the same at the start of 100k rows and deep in them.
// Objects page as DSM's clients do (sort=kid, exclusive start), with and
// without counts; credentials by their keyset start. "deep" starts after row
// 90000. Each iteration reads the first and the deep page back to back (in
// alternating order), so that the load of a shared machine hits both alike;
// the benchmark reports each one's mean and their ratio, deep/first.
// Totals come from per-group counters, so even counts do not grow with the
// account. credentials/deep-offset shows, for comparison, that a deep
// offset is not constant: it is skipped row by row.
func BenchmarkDSMListing(b *testing.B) {
	for _, engine := range []string{SQLite, Postgres} {
		b.Run(engine, func(b *testing.B) {
			db := openDB(b, engine)
			acct := seedDSMListing(b, db)
			deep := fmt.Sprintf("%d-0000-4000-8000-000000000000", 10000000+90000)
			ctx := context.Background()
			objects := func(count bool) func(start string, offset int) (int, error) {
				return func(start string, offset int) (int, error) {
					p, err := db.ListSobjects(ctx, acct, nil, vault.SobjectListQuery{SortBy: "kid", Start: start, Offset: offset, Limit: 100, Count: count})
					return len(p.Items), err
				}
			}
			credentials := func(start string, offset int) (int, error) {
				p, err := db.ListIntegrationCredentials(ctx, acct, nil, vault.CredentialListQuery{SortBy: "id", Start: start, Offset: offset, Limit: 100})
				return len(p.Items), err
			}
			for _, c := range []struct {
				name       string
				list       func(start string, offset int) (int, error)
				deepStart  string
				deepOffset int
			}{
				{"objects", objects(false), deep, 0},
				{"objects-with-counts", objects(true), deep, 0},
				{"credentials", credentials, deep, 0},
				{"credentials-offset", credentials, "", 90000},
			} {
				b.Run(c.name, func(b *testing.B) {
					var first, deeper time.Duration
					page := func(start string, offset int, into *time.Duration) {
						t0 := time.Now()
						if n, err := c.list(start, offset); err != nil || n != 100 {
							b.Fatalf("%d items, %v", n, err)
						}
						*into += time.Since(t0)
					}
					i := 0
					for b.Loop() {
						if i++; i%2 == 0 {
							page("", 0, &first)
							page(c.deepStart, c.deepOffset, &deeper)
						} else {
							page(c.deepStart, c.deepOffset, &deeper)
							page("", 0, &first)
						}
					}
					b.ReportMetric(float64(first.Microseconds())/float64(i), "first-µs")
					b.ReportMetric(float64(deeper.Microseconds())/float64(i), "deep-µs")
					b.ReportMetric(float64(deeper)/float64(first), "deep/first")
				})
			}
		})
	}
}
