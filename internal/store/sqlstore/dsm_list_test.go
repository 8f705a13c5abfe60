package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
	"github.com/google/go-cmp/cmp"
)

// TestDSMListing_CountsAndPages: listings count from the per-group
// counters, which follow creates and deletes in each group; filters, order,
// an exclusive start, offset and limit are applied by the query.
func TestDSMListing_CountsAndPages(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now()
		acct := newAccount(t, db, now)
		who := vault.Creator{Kind: vault.PrincipalUser, ID: "u"}
		groups := newGroups(t, db, acct.ID, now, "g1", "g2")
		g1, g2 := groups[0], groups[1]
		kid := func(i int) string { return fmt.Sprintf("%08d-0000-4000-8000-000000000000", i) }
		// Objects 0..5: even ones in g1, odd ones in g2; credentials 0..3 in g1
		// (referencing object 0), 4..5 in g2 (referencing object 1).
		for i := range 6 {
			g := map[bool]string{true: g1, false: g2}[i%2 == 0]
			o := &vault.Sobject{AccountID: acct.ID, KID: kid(i), GroupID: g, Name: fmt.Sprintf("o%d", 5-i), ObjType: vault.ObjRSA,
				KeyOps: []string{}, CustomMetadata: map[string]string{"n": fmt.Sprint(i % 3)}, Enabled: true, State: vault.StateActive,
				AllowCredentialUse: true, Creator: who, CreatedAt: now, UpdatedAt: now, ActivationDate: now, Version: 1, Ciphertext: []byte("x")}
			if err := db.CreateSobject(ctx, o); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 6 {
			g, ref := g1, kid(0)
			if i >= 4 {
				g, ref = g2, kid(1)
			}
			c := &vault.IntegrationCredential{ID: kid(100 + i), AccountID: acct.ID, GroupID: g, Name: fmt.Sprintf("c%d", i),
				Details: vault.CredentialDetails{Provider: vault.ProviderOCI, Auth: vault.AuthOCIAPIKey, SigningKey: ref}, Creator: who, CreatedAt: now, UpdatedAt: now}
			if err := db.CreateIntegrationCredential(ctx, c, func(vault.SobjectGetter) error { return nil }); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.DeleteSobject(ctx, acct.ID, kid(4)); err != nil {
			t.Fatal(err)
		}
		if err := db.DeleteIntegrationCredential(ctx, acct.ID, kid(100)); err != nil {
			t.Fatal(err)
		}

		// The counters of a database that had rows before them are filled
		// by their migration.
		for _, q := range []string{`DROP TABLE dsm_group_stats`, `DELETE FROM schema_migrations WHERE version = 7`} {
			if _, err := db.w.ExecContext(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.migrate(ctx); err != nil {
			t.Fatal(err)
		}

		for name, c := range map[string]listCase[vault.SobjectListQuery]{
			"all":             {nil, vault.SobjectListQuery{SortBy: "kid", Limit: 10, Count: true}, []string{kid(0), kid(1), kid(2), kid(3), kid(5)}, 5, 5},
			"g1":              {[]string{g1}, vault.SobjectListQuery{SortBy: "kid", Limit: 10, Count: true}, []string{kid(0), kid(2)}, 2, 2},
			"no-groups":       {[]string{}, vault.SobjectListQuery{SortBy: "kid", Limit: 10, Count: true}, nil, 0, 0},
			"start-desc":      {nil, vault.SobjectListQuery{SortBy: "kid", Desc: true, Start: kid(3), Limit: 10, Count: true}, []string{kid(2), kid(1), kid(0)}, 5, 5},
			"name-start":      {nil, vault.SobjectListQuery{SortBy: "name", Start: "o3", Limit: 10}, []string{kid(1), kid(0)}, 0, 0},
			"offset-limit":    {nil, vault.SobjectListQuery{SortBy: "kid", Offset: 1, Limit: 2, Count: true}, []string{kid(1), kid(2)}, 5, 5},
			"metadata":        {nil, vault.SobjectListQuery{SortBy: "kid", CustomMetadata: map[string]string{"n": "0"}, Limit: 10, Count: true}, []string{kid(0), kid(3)}, 5, 2},
			"metadata-absent": {nil, vault.SobjectListQuery{SortBy: "kid", CustomMetadata: map[string]string{"none": ""}, Limit: 10, Count: true}, []string{kid(0), kid(1), kid(2), kid(3), kid(5)}, 5, 5},
			"group-filter":    {nil, vault.SobjectListQuery{SortBy: "kid", GroupID: g2, Limit: 10, Count: true}, []string{kid(1), kid(3), kid(5)}, 5, 3},
		} {
			t.Run("objects/"+name, func(t *testing.T) {
				p, err := db.ListSobjects(ctx, acct.ID, c.groups, c.q)
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range p.Items {
					if o.Ciphertext != nil {
						t.Error("a listing carries ciphertext")
					}
				}
				checkPage(t, c, p.Items, func(o vault.Sobject) string { return o.KID }, p.TotalCount, p.FilteredCount)
			})
		}

		for name, c := range map[string]listCase[vault.CredentialListQuery]{
			"all":        {nil, vault.CredentialListQuery{SortBy: "id", Limit: 10}, []string{kid(101), kid(102), kid(103), kid(104), kid(105)}, 5, 5},
			"g2":         {[]string{g2}, vault.CredentialListQuery{SortBy: "id", Limit: 10}, []string{kid(104), kid(105)}, 2, 2},
			"start":      {nil, vault.CredentialListQuery{SortBy: "id", Start: kid(103), Limit: 10}, []string{kid(104), kid(105)}, 5, 5},
			"name-desc":  {nil, vault.CredentialListQuery{SortBy: "name", Desc: true, Limit: 2}, []string{kid(105), kid(104)}, 5, 5},
			"filter":     {nil, vault.CredentialListQuery{SortBy: "id", Limit: 10, Filter: vault.CredentialFilter{Names: []string{"c1", "c5"}, Types: []string{"Oci"}}}, []string{kid(101), kid(105)}, 5, 2},
			"filter-in0": {nil, vault.CredentialListQuery{SortBy: "id", Limit: 10, Filter: vault.CredentialFilter{IDs: []string{}}}, nil, 5, 0},
			"type-none":  {nil, vault.CredentialListQuery{SortBy: "id", Limit: 10, Filter: vault.CredentialFilter{Types: []string{"Azure"}}}, nil, 5, 0},
		} {
			t.Run("credentials/"+name, func(t *testing.T) {
				p, err := db.ListIntegrationCredentials(ctx, acct.ID, c.groups, c.q)
				if err != nil {
					t.Fatal(err)
				}
				checkPage(t, c, p.Items, func(x vault.IntegrationCredential) string { return x.ID }, p.TotalCount, p.FilteredCount)
			})
		}
	})
}

// listCase is a listing query q on groups, and the ids, total and filtered
// counts of the page it must give.
type listCase[Q any] struct {
	groups       []string
	q            Q
	ids          []string
	total, match int
}

// checkPage compares the ids of a page's items (id gives an item's) and its
// total and filtered counts with c's.
func checkPage[Q, T any](t *testing.T, c listCase[Q], items []T, id func(T) string, total, match int) {
	t.Helper()
	var ids []string
	for _, x := range items {
		ids = append(ids, id(x))
	}
	if diff := cmp.Diff(c.ids, ids); diff != "" || total != c.total || match != c.match {
		t.Errorf("total %d filtered %d (want %d %d); ids (-want +got):\n%s", total, match, c.total, c.match, diff)
	}
}

// TestListApps_PagesLikeTheListInGo: the apps listing filters (reach, role,
// group), orders (id or name, either way, byte by byte), starts after a key
// and pages (offset and limit, or from a continuation token) in the query,
// and every page holds exactly what the listing did when it loaded every
// app and did all this in Go (appsPageInGo, the former code).
func TestListApps_PagesLikeTheListInGo(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now()
		acct := newAccount(t, db, now)
		groups := newGroups(t, db, acct.ID, now, "g1", "g2", "g3")
		who := vault.Creator{Kind: vault.PrincipalUser, ID: "u"}
		// Names whose byte order differs from a locale's ("beta-" before
		// "beta0", upper case before lower case, non-ASCII last).
		prefixes := []string{"Zeta", "alpha", "Ärger", "beta-", "beta", "_x", "10", "9"}
		var all []vault.App
		for i := range 41 {
			a := vault.App{ID: vault.NewID(), AccountID: acct.ID, Name: fmt.Sprintf("%s%02d", prefixes[i%len(prefixes)], i), AppType: "default",
				Role: vault.DSMRoleCrypto, Enabled: true, Creator: who, CreatedAt: now, UpdatedAt: now, Groups: []vault.AppGroup{}}
			if i%4 == 0 {
				a.Role = vault.DSMRoleAdmin
			}
			for j, g := range groups {
				if i%[]int{2, 3, 5}[j] == 0 {
					a.Groups = append(a.Groups, vault.AppGroup{GroupID: g, Permissions: []string{"SIGN"}})
				}
			}
			p := &vault.Principal{ID: a.ID, Kind: vault.PrincipalApp, Name: a.Name, DefaultAccountID: acct.ID, CreatedAt: now}
			if err := db.CreateApp(ctx, &a, p, a.Role.CoreRole()); err != nil {
				t.Fatal(err)
			}
			all = append(all, a)
		}
		slices.SortFunc(all, func(a, b vault.App) int { return strings.Compare(a.ID, b.ID) })
		byName := slices.Clone(all)
		slices.SortFunc(byName, func(a, b vault.App) int { return strings.Compare(a.Name, b.Name) })

		reaches := map[string]*vault.AppReach{
			"all":        nil,
			"g1":         {Self: all[1].ID, Groups: []string{groups[0]}},
			"g2g3":       {Self: all[0].ID, Groups: []string{groups[1], groups[2]}},
			"self-only":  {Self: all[7].ID, Groups: []string{}},
			"no-such-id": {Self: "x", Groups: []string{groups[2]}},
		}
		n := 0
		for rname, reach := range reaches {
			for _, role := range []vault.DSMRole{"", vault.DSMRoleAdmin} {
				for _, group := range []string{"", groups[1]} {
					for _, sortBy := range []string{"id", "name"} {
						for _, desc := range []bool{false, true} {
							mid := all[len(all)/2].ID
							if sortBy == "name" {
								mid = byName[len(byName)/3].Name
							}
							for _, start := range []string{"", mid} {
								for _, from := range []string{"", all[9].ID, all[30].ID, "ffffffff-ffff-4fff-bfff-ffffffffffff"} {
									for _, b := range [][2]int{{0, 0}, {0, 5}, {3, 5}, {7, 0}, {0, 100}} {
										q := vault.AppListQuery{Role: role, GroupID: group, SortBy: sortBy, Desc: desc, Start: start, From: from,
											Offset: b[0], Limit: b[1], Count: true}
										name := fmt.Sprintf("%s/%+v", rname, q)
										page, err := db.ListApps(ctx, acct.ID, reach, q)
										if err != nil {
											t.Fatalf("%s: %v", name, err)
										}
										want, count, more := appsPageInGo(all, reach, q)
										var got []string
										for _, a := range page.Items {
											got = append(got, a.ID)
										}
										if diff := cmp.Diff(want, got); diff != "" || page.Count != count || page.More != more {
											t.Fatalf("%s: count %d more %v (want %d %v); ids (-want +got):\n%s", name, page.Count, page.More, count, more, diff)
										}
										n++
									}
								}
							}
						}
					}
				}
			}
		}
		// Each app comes with its groups.
		page, err := db.ListApps(ctx, acct.ID, nil, vault.AppListQuery{SortBy: "id", Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		for i, a := range page.Items {
			if diff := cmp.Diff(all[i].Groups, a.Groups); a.ID != all[i].ID || diff != "" {
				t.Errorf("app %d: %s (want %s); groups (-want +got):\n%s", i, a.ID, all[i].ID, diff)
			}
		}
		t.Logf("%d pages compared", n)
	})
}

// appsPageInGo is the former listing, done in Go over every app (sorted by
// id): visible to reach, role and group filters, a stable sort, an
// exclusive start, then the page from Offset (or from the first app whose
// id is greater than From) with up to Limit apps.
func appsPageInGo(all []vault.App, reach *vault.AppReach, q vault.AppListQuery) (ids []string, count int, more bool) {
	var items []vault.App
	for _, a := range all {
		visible := reach == nil || a.ID == reach.Self || slices.ContainsFunc(a.Groups, func(g vault.AppGroup) bool { return slices.Contains(reach.Groups, g.GroupID) })
		if !visible || (q.Role != "" && a.Role != q.Role) || (q.GroupID != "" && !slices.Contains(a.GroupIDs(), q.GroupID)) {
			continue
		}
		items = append(items, a)
	}
	key := func(a *vault.App) string {
		if q.SortBy == "name" {
			return a.Name
		}
		return a.ID
	}
	slices.SortStableFunc(items, func(a, b vault.App) int {
		c := strings.Compare(key(&a), key(&b))
		if q.Desc {
			c = -c
		}
		return c
	})
	if q.Start != "" {
		items = slices.DeleteFunc(items, func(a vault.App) bool {
			c := strings.Compare(key(&a), q.Start)
			return !((!q.Desc && c > 0) || (q.Desc && c < 0))
		})
	}
	offset := q.Offset
	if q.From != "" {
		offset = len(items)
		for i := range items {
			if items[i].ID > q.From {
				offset = i
				break
			}
		}
	}
	out := items[min(offset, len(items)):]
	if q.Limit > 0 && q.Limit < len(out) {
		out, more = out[:q.Limit], true
	}
	for _, a := range out {
		ids = append(ids, a.ID)
	}
	return ids, len(items), more
}

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
