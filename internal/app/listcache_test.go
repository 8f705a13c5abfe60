package app_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestListing_CoherentRows: a listing takes its rows from the row cache
// where it holds them, yet shows an update or a deletion made through the
// same server at once, one made through another replica within
// sqlstore.RevocationBound, and never loses or duplicates a row.
func TestListing_CoherentRows(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, a *vaulttest.Vault) {
		b := a.Replica(t)
		var ids []string
		for i := range 5 {
			r := a.SGP(t, a.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("row-%d", i), "payload": "p", "description": "v1"})
			if r.Status != 200 {
				t.Fatalf("create: %d %s", r.Status, r.Body)
			}
			ids = append(ids, r.Object(t)["id"].(string))
		}
		// list returns the descriptions by id, in the listing's order.
		list := func(v *vaulttest.Vault) (order []string, desc map[string]string) {
			r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials?limit=100&sort_by=name", nil)
			if r.Status != 200 {
				t.Fatalf("list: %d %s", r.Status, r.Body)
			}
			desc = map[string]string{}
			for _, it := range r.Object(t)["items"].([]any) {
				m := it.(map[string]any)
				order = append(order, m["id"].(string))
				desc[m["id"].(string)], _ = m["description"].(string)
			}
			return order, desc
		}
		for _, v := range []*vaulttest.Vault{a, b} {
			for range 2 { // fill the caches (get and list)
				list(v)
				for _, id := range ids {
					v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+id, nil)
				}
			}
		}
		if r := a.SGP(t, a.AdminKey, "", "PATCH", "/v5/credentials/"+ids[2], map[string]any{"description": "v2"}); r.Status != 200 {
			t.Fatalf("update: %d %s", r.Status, r.Body)
		}
		if r := a.SGP(t, a.AdminKey, "", "DELETE", "/v5/credentials/"+ids[4], nil); r.Status/100 != 2 {
			t.Fatalf("delete: %d %s", r.Status, r.Body)
		}
		want := func(order []string, desc map[string]string) bool {
			if fmt.Sprint(order) != fmt.Sprint(ids[:4]) {
				return false
			}
			for i, id := range ids[:4] {
				if w := map[bool]string{true: "v2", false: "v1"}[i == 2]; desc[id] != w {
					return false
				}
			}
			return true
		}
		if order, desc := list(a); !want(order, desc) {
			t.Fatalf("listing right after an update and a delete on the same server: %v %v", order, desc)
		}
		start := time.Now()
		for {
			sent := time.Now()
			order, desc := list(b)
			if want(order, desc) {
				break
			}
			if len(order) < 4 {
				t.Fatalf("the other replica's listing lost a row: %v", order)
			}
			if sent.Sub(start) > sqlstore.RevocationBound {
				t.Fatalf("the other replica still listed stale rows %v after the change: %v %v", sent.Sub(start), order, desc)
			}
		}
	})
}
