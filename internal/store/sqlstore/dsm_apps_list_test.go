package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/vault"
)

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
