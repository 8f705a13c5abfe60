package sqlstore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/vault"
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
