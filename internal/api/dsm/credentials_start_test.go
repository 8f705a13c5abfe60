package dsm_test

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestCredentials_StartPaging: besides offset, credential listings page
// by an exclusive start in the sort order (credvault's addition, a page
// whose cost does not depend on how deep it is): one page at a time, last
// id (or name) as the next start, until an empty page.
func TestCredentials_StartPaging(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		sk := adm.key(t, map[string]any{"name": "k", "obj_type": "RSA", "key_size": 2048, "allow_credential_use": true, "group_id": g})
		var ids []string
		for i := range 4 {
			c := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": fmt.Sprintf("Cred%d", 3-i), "group_id": g, "credential_details": ociDetails(sk["kid"])})
			ids = append(ids, c["credential_id"].(string))
		}
		slices.Sort(ids)
		walk := func(sortBy string, key string) []string {
			var got []string
			start := ""
			for range 10 {
				r := adm.ok(t, 200, "GET", "/sys/v1/credentials?"+url.Values{"sort_by": {sortBy}, "limit": {"1"}, "start": {start}}.Encode(), nil)
				items := r["items"].([]any)
				if md := r["metadata"].(map[string]any); md["total_count"].(float64) != 4 {
					t.Errorf("total_count %v, want 4", md["total_count"])
				}
				if len(items) == 0 {
					return got
				}
				start = items[0].(map[string]any)[key].(string)
				got = append(got, start)
			}
			t.Fatal("paging did not end")
			return nil
		}
		if diff := cmp.Diff(ids, walk("credential_id", "credential_id")); diff != "" {
			t.Errorf("by id (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"Cred3", "Cred2", "Cred1", "Cred0"}, walk("credential_name:desc", "name")); diff != "" {
			t.Errorf("by name, descending (-want +got):\n%s", diff)
		}
	})
}
