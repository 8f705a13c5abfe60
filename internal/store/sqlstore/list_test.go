package sqlstore

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// TestListCredentials_OrderIsSQLOrder: every sort field, both directions,
// page by page forward and back, lists exactly what the database's ORDER BY
// gives — with names and types that differ only in case or accents, and
// times and types shared by many rows (so the id breaks the ties). The
// pages' ids come back aggregated as one JSON array (pageIDs); on SQLite
// their order is then checked in Go, so credentialOrder must order as
// SQLite does, which the test also checks on shuffled rows.
func TestListCredentials_OrderIsSQLOrder(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			db := openDB(t, engine)
			ctx := context.Background()
			names := []string{"b", "B", "a", "A", "é", "e", "Z", "a b", "a-b", "ä", "zz", "Ω", "0", "_x", "~"}
			acct, cs := seedCredentials(t, db, len(names), func(i int, c *vault.Credential) {
				c.Name, c.Type = names[i], []string{"key", "Key", "json"}[i%3]
				c.CreatedAt = c.CreatedAt.Add(time.Duration(i%3) * time.Second) // three rows share each time
				c.UpdatedAt = c.CreatedAt.Add(time.Duration(i%2) * time.Hour)
			})
			// pages lists from q on, page by page, until a page says there is
			// no more; next moves q past the page whose ids it is given. It
			// returns the ids of each page, in the order they came.
			pages := func(way string, q vault.CredentialQuery, next func(q *vault.CredentialQuery, ids []string)) [][]string {
				var out [][]string
				for len(out) <= len(names) {
					p, err := db.ListCredentials(ctx, acct.ID, q)
					if err != nil {
						t.Fatal(err)
					}
					var ids []string
					for _, c := range p.Items {
						ids = append(ids, c.ID)
					}
					out = append(out, ids)
					if !p.HasMore {
						return out
					}
					next(&q, ids)
				}
				t.Fatalf("%s desc=%v: paging %s does not end (%v)", q.SortBy, q.Desc, way, out)
				return nil
			}
			for _, field := range vault.SortFields {
				for _, desc := range []bool{false, true} {
					col, unique, err := sortColumn(field)
					if err != nil {
						t.Fatal(err)
					}
					dir := " ASC"
					if desc {
						dir = " DESC"
					}
					order := col + dir
					if !unique {
						order += ", id" + dir
					}
					var want []string
					err = forRows(ctx, db.r, db.q(`SELECT id FROM credentials WHERE account_id = ? ORDER BY `+order), []any{acct.ID}, func(s scanner) error {
						var id string
						err := s.Scan(&id)
						want = append(want, id)
						return err
					})
					if err != nil {
						t.Fatal(err)
					}
					// Forward in pages of 4, then back from the end.
					got := slices.Concat(pages("forward", vault.CredentialQuery{Limit: 4, SortBy: field, Desc: desc},
						func(q *vault.CredentialQuery, ids []string) { q.After = ids[len(ids)-1] })...)
					if !slices.Equal(got, want) {
						t.Errorf("%s desc=%v forward:\n got %v\nwant %v", field, desc, got, want)
					}
					backPages := pages("backward", vault.CredentialQuery{Limit: 4, SortBy: field, Desc: desc, Before: want[len(want)-1]},
						func(q *vault.CredentialQuery, ids []string) { q.Before = ids[0] })
					slices.Reverse(backPages) // the last page came first
					back := slices.Concat(backPages...)
					if !slices.Equal(back, want[:len(want)-1]) {
						t.Errorf("%s desc=%v backward:\n got %v\nwant %v", field, desc, back, want[:len(want)-1])
					}
					if engine == SQLite {
						byID := map[string]vault.Credential{}
						for _, c := range cs {
							byID[c.ID] = *c
						}
						rows := make([]vault.Credential, len(want))
						for i, id := range want {
							rows[i] = byID[id]
						}
						for range 5 {
							rand.Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
							slices.SortFunc(rows, credentialOrder(col, !desc))
							for i := range rows {
								if rows[i].ID != want[i] {
									t.Fatalf("%s desc=%v: credentialOrder puts %q at %d, SQLite puts %q", field, desc, rows[i].Name, i, byID[want[i]].Name)
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestParseIDs: the page's ids as either database aggregates them, and as
// encoding/json reads anything else.
func TestParseIDs(t *testing.T) {
	for in, want := range map[string][]string{
		``:                         nil,
		`[]`:                       {},
		`["a"]`:                    {"a"},
		`["a","b","c"]`:            {"a", "b", "c"},
		`["a", "b", "c"]`:          {"a", "b", "c"},
		` [ "a" ,"b" ] `:           {"a", "b"},
		`["a\"b","c\\d","\u00e9"]`: {`a"b`, `c\d`, "é"},
		`["", "x"]`:                {"", "x"},
	} {
		got, err := parseIDs(in)
		if err != nil || !slices.Equal(got, want) || (got == nil) != (want == nil) {
			t.Errorf("parseIDs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{`[`, `["a"`, `["a" "b"]`, `[1]`, `{"a":1}`, `["a",]`} {
		if got, err := parseIDs(bad); err == nil {
			t.Errorf("parseIDs(%q) = %q, want an error", bad, got)
		}
	}
}

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
