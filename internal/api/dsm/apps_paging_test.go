package dsm_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestApps_PagingThroughMany: GET /sys/v1/apps pages through many apps as
// DSM's clients do — sort with an exclusive start (the Go client's loop:
// the last key of a page is the next start, an empty page ends it), and
// continuation tokens — and every app comes exactly once, in order, with
// the count of all matches; an app caller pages through the apps it may
// see only.
func TestApps_PagingThroughMany(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm, g, g2 := adminWithGroups(t, v, "paging", "paging-2")
		byID := map[string]string{} // app id → name
		for i := range 23 {
			add := map[string]any{g: []string{"SIGN"}}
			if i%7 == 0 {
				add[g2] = []string{"SIGN"}
			}
			a := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": fmt.Sprintf("app-%02d", i), "add_groups": add})
			byID[a["app_id"].(string)] = a["name"].(string)
		}
		keys := func(l []any, field string) []string {
			var out []string
			for _, a := range l {
				out = append(out, a.(map[string]any)[field].(string))
			}
			return out
		}
		all := keys(adm.list(t, "/sys/v1/apps"), "app_id")
		if len(all) != len(byID) || !slices.IsSorted(all) {
			t.Fatalf("all apps by id: %v", all)
		}

		// start paging, by id ascending and by name descending.
		for _, c := range []struct {
			sort, field string
			limit       int
			want        []string
		}{
			{"app_id", "app_id", 5, all},
			{"app_name:desc", "name", 4, func() []string {
				var names []string
				for _, n := range byID {
					names = append(names, n)
				}
				slices.Sort(names)
				slices.Reverse(names)
				return names
			}()},
		} {
			var got []string
			start := ""
			for pages := 0; ; pages++ {
				if pages > len(all) {
					t.Fatalf("sort=%s: no end of pages", c.sort)
				}
				page := keys(adm.list(t, fmt.Sprintf("/sys/v1/apps?sort=%s&limit=%d&start=%s", c.sort, c.limit, url.QueryEscape(start))), c.field)
				if len(page) > c.limit {
					t.Fatalf("sort=%s: page of %d", c.sort, len(page))
				}
				if len(page) == 0 {
					break
				}
				got = append(got, page...)
				start = page[len(page)-1]
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("sort=%s: paged\n%v\nwant\n%v", c.sort, got, c.want)
			}
		}

		// Continuation tokens.
		var got []string
		tok := ""
		for pages := 0; ; pages++ {
			if pages > len(all) {
				t.Fatal("continuation tokens: no end of pages")
			}
			r := adm.ok(t, 200, "GET", "/sys/v1/apps?limit=6&continuation_token="+tok, nil)
			md := r["metadata"].(map[string]any)
			if md["count"].(float64) != float64(len(all)) {
				t.Fatalf("count %v, want %d", md["count"], len(all))
			}
			got = append(got, keys(r["items"].([]any), "app_id")...)
			next, ok := md["continuation_token"].(string)
			if !ok {
				break
			}
			tok = next
		}
		if !slices.Equal(got, all) {
			t.Errorf("continuation tokens: paged\n%v\nwant\n%v", got, all)
		}

		// An app of g2 sees itself and the apps sharing g2, page by page.
		app, self := adm.app(t, "paging-app", "crypto", g2)
		want := []string{self}
		for id := range byID {
			var n int
			if _, err := fmt.Sscanf(byID[id], "app-%d", &n); err != nil {
				t.Fatal(err)
			}
			if n%7 == 0 {
				want = append(want, id)
			}
		}
		slices.Sort(want)
		got, start := nil, ""
		for pages := 0; pages <= len(want); pages++ {
			page := keys(app.list(t, "/sys/v1/apps?sort=app_id&limit=2&start="+start), "app_id")
			if len(page) == 0 {
				break
			}
			got, start = append(got, page...), page[len(page)-1]
		}
		if !slices.Equal(got, want) {
			t.Errorf("as an app of g2: paged\n%v\nwant\n%v", got, want)
		}
	})
}
