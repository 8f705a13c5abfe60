package sgp_test

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
	gocmp "github.com/google/go-cmp/cmp"
)

// sortFields are the accepted sort_by values.
var sortFields = []string{"created_at", "updated_at", "name", "type", "id"}

// ordered sorts cs the way the server must: by field, ties broken by id,
// all reversed for desc.
func ordered(t testing.TB, cs []credential, field string, desc bool) []credential {
	t.Helper()
	key := func(c credential) string {
		switch field {
		case "created_at":
			return fmt.Sprintf("%020d", parseTime(t, c.CreatedAt).UnixMicro())
		case "updated_at":
			return fmt.Sprintf("%020d", parseTime(t, c.UpdatedAt).UnixMicro())
		case "name":
			return c.Name
		case "type":
			return c.Type
		case "id":
			return c.ID
		}
		t.Fatalf("unknown sort field %q", field)
		return ""
	}
	out := slices.Clone(cs)
	slices.SortStableFunc(out, func(a, b credential) int {
		// Go compares strings bytewise: the order both engines must use.
		return cmp.Or(cmp.Compare(key(a), key(b)), cmp.Compare(a.ID, b.ID))
	})
	if desc {
		slices.Reverse(out)
	}
	return out
}

func listQuery(limit int, sortBy, order string) url.Values {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if sortBy != "" {
		q.Set("sort_by", sortBy)
	}
	if order != "" {
		q.Set("sort_order", order)
	}
	return q
}

// walkForward pages with starting_after as the SDKs do (last item's id)
// and checks every page's bookkeeping. It returns all items in order.
func walkForward(t testing.TB, a api, base url.Values, total int) []credential {
	t.Helper()
	return walk(t, a, cloneValues(base), total, true)
}

// walkBackward pages with ending_before from before (exclusive) to the
// start, as the SDKs do (first item's id), and returns the items in order.
func walkBackward(t testing.TB, a api, base url.Values, before string, total int) []credential {
	t.Helper()
	q := cloneValues(base)
	q.Set("ending_before", before)
	return walk(t, a, q, total, false)
}

// walk pages from q on, forward (starting_after) or backward
// (ending_before), checks every page and that the page past the end is
// empty, and returns the items in order.
func walk(t testing.TB, a api, q url.Values, total int, forward bool) []credential {
	t.Helper()
	limit, _ := strconv.Atoi(q.Get("limit"))
	dir, param, past := "forward", "starting_after", "after the last item"
	cursor := func(items []credential) string { return items[len(items)-1].ID }
	if !forward {
		dir, param, past = "backward", "ending_before", "before the first item"
		cursor = func(items []credential) string { return items[0].ID }
	}
	var all []credential
	for i := 0; ; i++ {
		if i > total+2 {
			t.Fatalf("%s walk does not end", dir)
		}
		p := a.list(t, q)
		checkPage(t, p, limit, total)
		if forward {
			all = append(all, p.Items...)
		} else {
			all = append(slices.Clone(p.Items), all...)
		}
		if !p.HasMore {
			if len(p.Items) > 0 {
				// One more request past the end: an empty page.
				q.Set(param, cursor(p.Items))
				end := a.list(t, q)
				if len(end.Items) != 0 || end.HasMore || end.Total != total {
					t.Errorf("page %s: %d items, has_more %v, total %d; want none, false, %d",
						past, len(end.Items), end.HasMore, end.Total, total)
				}
			}
			return all
		}
		if len(p.Items) != limit {
			t.Fatalf("has_more with a short page (%d of %d)", len(p.Items), limit)
		}
		q.Set(param, cursor(p.Items))
	}
}

func checkPage(t testing.TB, p listPage, limit, total int) {
	t.Helper()
	if p.Object != "list" || p.Limit != limit || p.Total != total || len(p.Items) > limit {
		t.Errorf("page bookkeeping: object %q limit %d total %d items %d; want list, %d, %d, ≤ %d",
			p.Object, p.Limit, p.Total, len(p.Items), limit, total, limit)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}

// paginationFixture creates six credentials whose orders by created_at,
// updated_at, name, type and id all differ, with ties in type.
func paginationFixture(t *testing.T, a api) []credential {
	t.Helper()
	specs := []struct{ name, typ string }{
		{"delta", "key"},
		{"Alpha", "json"},
		{"charlie two", "key"},
		{"bravo", "token"},
		{"alpha", "json"},
		{"echo/5", "key"},
	}
	var cs []credential
	for _, s := range specs {
		payload := "p"
		if s.typ == "json" {
			payload = `{"p":1}`
		}
		cs = append(cs, a.create(t, map[string]any{"type": s.typ, "name": s.name, "payload": payload}))
	}
	// Touch some in a scrambled order so that updated_at differs from created_at.
	for _, i := range []int{3, 0, 4} {
		r := a.do(t, "PATCH", "/v5/credentials/"+cs[i].ID, map[string]any{"description": "touched"})
		wantStatus(t, r, 200)
		r.Decode(t, &cs[i])
	}
	return cs
}

func TestCredentials_ListPagination(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		cs := paginationFixture(t, a)
		n := len(cs)

		t.Run("ok/default-order-is-created-at-asc", func(t *testing.T) {
			p := a.list(t, nil)
			want := listPage{Object: "list", Items: ordered(t, cs, "created_at", false), Total: n, Limit: 100}
			if diff := gocmp.Diff(want, p); diff != "" {
				t.Errorf("default list (-want +got):\n%s", diff)
			}
		})

		t.Run("ok/exact-page-boundary", func(t *testing.T) {
			all := ordered(t, cs, "created_at", false)
			q := url.Values{"limit": {"3"}}
			p1 := a.list(t, q)
			if diff := gocmp.Diff(listPage{Object: "list", Items: all[:3], Total: n, HasMore: true, Limit: 3}, p1); diff != "" {
				t.Errorf("page 1 (-want +got):\n%s", diff)
			}
			q.Set("starting_after", all[2].ID)
			p2 := a.list(t, q)
			if diff := gocmp.Diff(listPage{Object: "list", Items: all[3:], Total: n, HasMore: false, Limit: 3}, p2); diff != "" {
				t.Errorf("page 2 (-want +got):\n%s", diff)
			}
			q.Set("starting_after", all[5].ID)
			p3 := a.list(t, q)
			if diff := gocmp.Diff(listPage{Object: "list", Items: []credential{}, Total: n, HasMore: false, Limit: 3}, p3); diff != "" {
				t.Errorf("page after the last item (-want +got):\n%s", diff)
			}
			// And backwards from the end, the same boundary.
			q = url.Values{"limit": {"3"}, "ending_before": {all[3].ID}}
			b := a.list(t, q)
			if diff := gocmp.Diff(listPage{Object: "list", Items: all[:3], Total: n, HasMore: false, Limit: 3}, b); diff != "" {
				t.Errorf("page before the boundary (-want +got):\n%s", diff)
			}
		})

		t.Run("ok/every-limit-both-directions", func(t *testing.T) {
			want := ordered(t, cs, "created_at", false)
			for limit := 1; limit <= n+1; limit++ {
				q := listQuery(limit, "", "")
				if diff := gocmp.Diff(ids(want), ids(walkForward(t, a, q, n))); diff != "" {
					t.Errorf("limit %d forward (-want +got):\n%s", limit, diff)
				}
				back := walkBackward(t, a, q, want[n-1].ID, n)
				if diff := gocmp.Diff(ids(want[:n-1]), ids(back)); diff != "" {
					t.Errorf("limit %d backward (-want +got):\n%s", limit, diff)
				}
			}
		})

		for _, field := range sortFields {
			for _, order := range []string{"asc", "desc"} {
				t.Run("ok/sort/"+field+"/"+order, func(t *testing.T) {
					want := ordered(t, cs, field, order == "desc")
					// One page holding everything.
					p := a.list(t, listQuery(100, field, order))
					if diff := gocmp.Diff(want, p.Items); diff != "" {
						t.Errorf("single page (-want +got):\n%s", diff)
					}
					// Keyset pages in both directions.
					for _, limit := range []int{1, 2, 4} {
						q := listQuery(limit, field, order)
						if diff := gocmp.Diff(ids(want), ids(walkForward(t, a, q, n))); diff != "" {
							t.Errorf("limit %d forward (-want +got):\n%s", limit, diff)
						}
						back := walkBackward(t, a, q, want[n-1].ID, n)
						if diff := gocmp.Diff(ids(want[:n-1]), ids(back)); diff != "" {
							t.Errorf("limit %d backward (-want +got):\n%s", limit, diff)
						}
					}
				})
			}
		}

		t.Run("ok/sort-order-default-asc", func(t *testing.T) {
			p := a.list(t, url.Values{"sort_by": {"name"}})
			if diff := gocmp.Diff(ids(ordered(t, cs, "name", false)), ids(p.Items)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})

		t.Run("ok/name-filter", func(t *testing.T) {
			for _, c := range cs {
				p := a.list(t, url.Values{"name": {c.Name}})
				if diff := gocmp.Diff(listPage{Object: "list", Items: []credential{c}, Total: 1, Limit: 100}, p); diff != "" {
					t.Errorf("name=%q (-want +got):\n%s", c.Name, diff)
				}
			}
			for _, name := range []string{"nope", "alph", "ALPHA", "charlie", "", "\x00", "alpha\x00", "\xff"} {
				p := a.list(t, url.Values{"name": {name}})
				if diff := gocmp.Diff(listPage{Object: "list", Items: []credential{}, Total: 0, Limit: 100}, p); diff != "" {
					t.Errorf("name=%q (-want +got):\n%s", name, diff)
				}
			}
			// A filter with a cursor, as an SDK's follow-up request would send it.
			p := a.list(t, url.Values{"name": {"bravo"}, "starting_after": {cs[0].ID}})
			if len(p.Items) != 1 || p.Items[0].Name != "bravo" || p.Total != 1 {
				t.Errorf("name filter with cursor: %+v", p)
			}
		})

		// Deleting mutates the fixture: keep these last.
		t.Run("ok/deleted-cursor", func(t *testing.T) {
			// Delete two credentials that sit in the middle of most orders.
			gone := []credential{cs[2], cs[3]}
			var live []credential
			for _, c := range cs {
				if c.ID != gone[0].ID && c.ID != gone[1].ID {
					live = append(live, c)
				}
			}
			for _, c := range gone {
				wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+c.ID, nil), 200)
			}
			total := len(live)
			for _, field := range sortFields {
				for _, order := range []string{"asc", "desc"} {
					withGone := ordered(t, append(slices.Clone(live), gone...), field, order == "desc")
					for _, d := range gone {
						pos := slices.IndexFunc(withGone, func(c credential) bool { return c.ID == d.ID })
						var after, before []string
						for _, c := range withGone[pos+1:] {
							if c.ID != gone[0].ID && c.ID != gone[1].ID {
								after = append(after, c.ID)
							}
						}
						for _, c := range withGone[:pos] {
							if c.ID != gone[0].ID && c.ID != gone[1].ID {
								before = append(before, c.ID)
							}
						}
						q := listQuery(100, field, order)
						q.Set("starting_after", d.ID)
						p := a.list(t, q)
						if diff := gocmp.Diff(after, ids(p.Items), emptyIsNil); diff != "" || p.HasMore || p.Total != total {
							t.Errorf("%s %s starting_after deleted %q: has_more %v total %d (-want +got):\n%s", field, order, d.Name, p.HasMore, p.Total, diff)
						}
						q.Del("starting_after")
						q.Set("ending_before", d.ID)
						p = a.list(t, q)
						if diff := gocmp.Diff(before, ids(p.Items), emptyIsNil); diff != "" || p.HasMore || p.Total != total {
							t.Errorf("%s %s ending_before deleted %q: has_more %v total %d (-want +got):\n%s", field, order, d.Name, p.HasMore, p.Total, diff)
						}
						// Paged from the deleted cursor, one item at a time.
						q = listQuery(1, field, order)
						var walked []string
						q.Set("starting_after", d.ID)
						for {
							p := a.list(t, q)
							walked = append(walked, ids(p.Items)...)
							if !p.HasMore {
								break
							}
							q.Set("starting_after", p.Items[0].ID)
						}
						if diff := gocmp.Diff(after, walked, emptyIsNil); diff != "" {
							t.Errorf("%s %s: walk from deleted %q (-want +got):\n%s", field, order, d.Name, diff)
						}
					}
				}
			}
		})

		t.Run("ok/deleted-name-reused-cursor", func(t *testing.T) {
			// A new credential takes a deleted one's name; the deleted id
			// still works as a cursor and the new one is listed once.
			reborn := a.create(t, map[string]any{"type": "token", "name": cs[3].Name, "payload": "p"})
			live := []credential{cs[0], cs[1], cs[4], cs[5], reborn}
			all := walkForward(t, a, listQuery(2, "name", "asc"), len(live))
			if diff := gocmp.Diff(ids(ordered(t, live, "name", false)), ids(all)); diff != "" {
				t.Errorf("name order after reuse (-want +got):\n%s", diff)
			}
			// In (name, id) order the deleted "bravo" sits just before the new
			// one (ids are time-ordered): forward from it the new one comes
			// first; backward from it, it is not there.
			byName := ordered(t, append(slices.Clone(live), cs[3]), "name", false)
			i := slices.IndexFunc(byName, func(c credential) bool { return c.ID == cs[3].ID })
			for _, tc := range []struct {
				order, cursor string
				want          []credential
			}{
				{"asc", "starting_after", byName[i+1:]},
				{"asc", "ending_before", byName[:i]},
				{"desc", "starting_after", reversed(byName[:i])},
				{"desc", "ending_before", reversed(byName[i+1:])},
			} {
				q := listQuery(100, "name", tc.order)
				q.Set(tc.cursor, cs[3].ID)
				if diff := gocmp.Diff(ids(tc.want), ids(a.list(t, q).Items), emptyIsNil); diff != "" {
					t.Errorf("name %s, %s the deleted namesake (-want +got):\n%s", tc.order, tc.cursor, diff)
				}
			}

			q := listQuery(100, "created_at", "asc")
			q.Set("starting_after", cs[3].ID)
			p := a.list(t, q)
			want := ordered(t, live, "created_at", false)
			j := slices.IndexFunc(want, func(c credential) bool { return c.ID == cs[4].ID })
			if diff := gocmp.Diff(ids(want[j:]), ids(p.Items)); diff != "" {
				t.Errorf("created_at after deleted cursor (-want +got):\n%s", diff)
			}
		})
	})
}

var emptyIsNil = gocmp.Transformer("emptyIsNil", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

func TestCredentials_ListDefaultLimit(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		const n = 101
		// Create concurrently: also shows that concurrent creates keep the
		// count right.
		var wg sync.WaitGroup
		errs := make(chan error, n)
		sem := make(chan struct{}, 8)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("bulk-%03d", i), "payload": "p"})
				if r.Status != 200 {
					errs <- fmt.Errorf("create %d: %d %s", i, r.Status, r.Body)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}

		t.Run("ok/default-limit-100", func(t *testing.T) {
			p := a.list(t, nil)
			if len(p.Items) != 100 || !p.HasMore || p.Total != n || p.Limit != 100 {
				t.Errorf("default page: %d items, has_more %v, total %d, limit %d; want 100, true, %d, 100", len(p.Items), p.HasMore, p.Total, p.Limit, n)
			}
			q := url.Values{"starting_after": {p.Items[99].ID}}
			rest := a.list(t, q)
			if len(rest.Items) != 1 || rest.HasMore || rest.Total != n {
				t.Errorf("second page: %d items, has_more %v, total %d", len(rest.Items), rest.HasMore, rest.Total)
			}
			seen := map[string]bool{}
			for _, c := range append(p.Items, rest.Items...) {
				if seen[c.ID] {
					t.Errorf("duplicate %s", c.ID)
				}
				seen[c.ID] = true
			}
		})

		t.Run("ok/limit-echoed", func(t *testing.T) {
			for _, limit := range []int{1, 7, 100, 101, 10000} {
				p := a.list(t, url.Values{"limit": {strconv.Itoa(limit)}})
				if p.Limit != limit || len(p.Items) != min(limit, n) || p.HasMore != (limit < n) || p.Total != n {
					t.Errorf("limit=%d: limit %d, %d items, has_more %v, total %d", limit, p.Limit, len(p.Items), p.HasMore, p.Total)
				}
			}
		})

		t.Run("ok/name-order-by-bytes", func(t *testing.T) {
			p := a.list(t, url.Values{"sort_by": {"name"}, "limit": {"3"}, "sort_order": {"desc"}})
			if diff := gocmp.Diff([]string{"bulk-100", "bulk-099", "bulk-098"}, names(p.Items)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	})
}

func reversed(cs []credential) []credential {
	out := slices.Clone(cs)
	slices.Reverse(out)
	return out
}

func names(cs []credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func TestSortFieldsMatchCore(t *testing.T) {
	t.Parallel()
	if diff := gocmp.Diff(vault.SortFields, sortFields); diff != "" {
		t.Errorf("the tests cover other sort fields than the core accepts (-core +tests):\n%s", diff)
	}
}

// TestTombstonesExpire: a deleted credential's id works as a cursor for the
// cursor horizon (sqlstore.TombstoneTTL) and no longer after it; an expired
// tombstone (the deleted credential's name and type) is left out of backups
// and purged. Time is moved with the vault's injected clock, never slept.
func TestTombstonesExpire(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		a.createNamed(t, "a-first", "p")
		gone := a.createNamed(t, "m-deleted-credential-name", "p")
		c := a.createNamed(t, "z-last", "p")
		wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+gone.ID, nil), 200)
		// A deleted credential stays in the trash (with its name) for the
		// delete retention (7 days, well inside the 30-day cursor horizon);
		// purged now, only its tombstone is left (see TestTrashRestorePurge).
		wantStatus(t, a.do(t, "DELETE", "/v5/trash/credentials/"+gone.ID, nil), 200)
		after := url.Values{"starting_after": {gone.ID}, "sort_by": {"name"}, "sort_order": {"asc"}}

		// Within the horizon the deleted id is a valid cursor.
		v.Clock.Set(sqlstore.TombstoneTTL - time.Minute)
		if p := a.list(t, after); len(p.Items) != 1 || p.Items[0].ID != c.ID {
			t.Fatalf("within the horizon: page %+v; want [z-last]", p.Items)
		}
		if !bytes.Contains(backupOf(t, v), []byte("m-deleted-credential-name")) {
			t.Fatal("a live tombstone is missing from the backup")
		}

		// Past the horizon it is refused like an unknown id, the backup no
		// longer carries the name, and the purge removes the row.
		v.Clock.Set(sqlstore.TombstoneTTL + time.Minute)
		want422At(t, a.do(t, "GET", "/v5/credentials?"+after.Encode(), nil), "value_error", "query", "starting_after")
		if bytes.Contains(backupOf(t, v), []byte("m-deleted-credential-name")) {
			t.Error("an expired tombstone is in the backup")
		}
		// (The server's own purge loop may have run already: at most one.)
		if n, err := v.App.Store.PurgeTombstones(context.Background()); err != nil || n > 1 {
			t.Fatalf("purge: %d, %v; want at most 1", n, err)
		}
		// The row is gone, not merely expired: even with the clock set back
		// inside the horizon the cursor is unknown now.
		v.Clock.Set(0)
		want422At(t, a.do(t, "GET", "/v5/credentials?"+after.Encode(), nil), "value_error", "query", "starting_after")
		if p := a.list(t, nil); len(p.Items) != 2 || p.Total != 2 {
			t.Errorf("live credentials after the purge: %+v total %d", p.Items, p.Total)
		}
	})
}

// backupOf returns the uncompressed backup of v (through app.Backup, as the
// CLI takes it, with v's store clock).
func backupOf(t *testing.T, v *vaulttest.Vault) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := app.BackupStore(context.Background(), v.Config, v.App.Store, &buf); err != nil {
		t.Fatalf("backup: %v", err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
