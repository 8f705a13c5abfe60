package dsm_test

import (
	"fmt"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestLogsPaging walks the audit trail newest first with size and
// previous_id, and filters it by object.
func TestLogsPaging(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		var groups []string
		for i := 0; i < 5; i++ {
			g := adm.ok(t, 200, "POST", "/sys/v1/groups", map[string]any{"name": fmt.Sprint("g", i)})
			groups = append(groups, g["group_id"].(string))
		}
		// Page through everything, 3 at a time.
		var ids []string
		seen := map[string]bool{}
		path := "/sys/v1/logs?size=3"
		for page := 0; page < 50; page++ {
			hits := adm.ok(t, 200, "GET", path, nil)["hits"].([]any)
			if len(hits) == 0 {
				break
			}
			for _, h := range hits {
				id := h.(map[string]any)["_id"].(string)
				if seen[id] {
					t.Fatalf("record %s served twice", id)
				}
				seen[id] = true
				ids = append(ids, id)
			}
			path = "/sys/v1/logs?size=3&previous_id=" + ids[len(ids)-1]
		}
		all := adm.ok(t, 200, "GET", "/sys/v1/logs?size=1000", nil)["hits"].([]any)
		if len(ids) != len(all) || len(ids) < 5 {
			t.Fatalf("paged %d records, one page of 1000 has %d", len(ids), len(all))
		}
		for i, h := range all {
			if got := h.(map[string]any)["_id"]; got != ids[i] {
				t.Fatalf("record %d: paged %s, full page %s", i, ids[i], got)
			}
		}
		// Filter by object: exactly the creation of that group.
		hits := adm.ok(t, 200, "GET", "/sys/v1/logs?object_id="+groups[2], nil)["hits"].([]any)
		if len(hits) != 1 || hits[0].(map[string]any)["_source"].(map[string]any)["object_id"] != groups[2] {
			t.Fatalf("object filter: %v", hits)
		}
		adm.fail(t, 400, "previous_id is not the id of an audit record", "GET", "/sys/v1/logs?previous_id=00000000-0000-0000-0000-000000000000", nil)
	})
}
