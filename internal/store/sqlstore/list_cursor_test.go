package sqlstore

import (
	"context"
	"testing"

	"github.com/credvault/credvault/internal/vault"
)

// TestListCredentials_CursorAndTotal: a page asked after a cursor the row
// cache does not hold reads the cursor's row and keeps it (the next page
// asked after the same cursor runs no query for it), and each page's total
// — which comes in the same statement as its ids — counts what the filter
// matches, not the page.
func TestListCredentials_CursorAndTotal(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			db := openDB(t, engine)
			ctx := context.Background()
			acct, cs := seedCredentials(t, db, 5, func(i int, c *vault.Credential) { c.Name = string(rune('a' + i)) })
			cursor := cs[1].ID
			if c, _, _ := db.creds.get(&db.changes, readOnly, acct.ID, cursor); c != nil {
				t.Fatal("the cursor's row is cached before any read: the test proves nothing")
			}
			page, err := db.ListCredentials(ctx, acct.ID, vault.CredentialQuery{After: cursor, Limit: 2, SortBy: vault.SortName})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page.Items); got != "c d" || !page.HasMore || page.Total != 5 {
				t.Errorf("after b: items %q, has_more %v, total %d; want \"c d\", true, 5", got, page.HasMore, page.Total)
			}
			if c, _, _ := db.creds.get(&db.changes, readOnly, acct.ID, cursor); c == nil || c.Name != "b" {
				t.Errorf("the cursor's row was not kept in the row cache (got %v)", c)
			}

			name := "d"
			page, err = db.ListCredentials(ctx, acct.ID, vault.CredentialQuery{Name: &name, Limit: 10, SortBy: vault.SortName})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page.Items); got != "d" || page.HasMore || page.Total != 1 {
				t.Errorf("name d: items %q, has_more %v, total %d; want \"d\", false, 1", got, page.HasMore, page.Total)
			}

			if err := db.DeleteCredential(ctx, acct.ID, cs[4].ID); err != nil {
				t.Fatal(err)
			}
			page, err = db.ListCredentials(ctx, acct.ID, vault.CredentialQuery{After: cursor, Limit: 10, SortBy: vault.SortName})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page.Items); got != "c d" || page.HasMore || page.Total != 4 {
				t.Errorf("after b, e deleted: items %q, has_more %v, total %d; want \"c d\", false, 4", got, page.HasMore, page.Total)
			}
		})
	}
}

func names(cs []vault.Credential) string {
	s := ""
	for i, c := range cs {
		if i > 0 {
			s += " "
		}
		s += c.Name
	}
	return s
}
