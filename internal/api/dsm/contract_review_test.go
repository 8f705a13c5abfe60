package dsm_test

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// collect pages through a DSM listing with continuation_token the way the
// contract describes it (and DSM's clients do): start with an empty token,
// send back the token of each response, stop when a response has none.
// It returns the ids (field idField) in the order received.
func collect(t *testing.T, c client, path, idField string, limit int) (ids []string, count float64) {
	t.Helper()
	token := ""
	for range 20 {
		q := url.Values{"continuation_token": {token}}
		if limit > 0 {
			q.Set("limit", fmt.Sprint(limit))
		}
		body := c.ok(t, 200, "GET", path+"?"+q.Encode(), nil)
		for _, it := range body["items"].([]any) {
			ids = append(ids, it.(map[string]any)[idField].(string))
		}
		md := body["metadata"].(map[string]any)
		count = md["count"].(float64)
		next, _ := md["continuation_token"].(string)
		if next == "" {
			return ids, count
		}
		token = next
	}
	t.Fatalf("%s: no end after 20 pages", path)
	return nil, 0
}

// A client that pages GET /sys/v1/groups and /sys/v1/apps with
// continuation_token and a limit must see every item: a response without a
// continuation_token means "complete", so a limited page must carry one.
func TestContinuationTokenPagesGroupsAndApps(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		var groups []string
		for i := range 5 {
			groups = append(groups, adm.group(t, fmt.Sprintf("g%d", i)))
		}
		for i := range 3 {
			adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": fmt.Sprintf("a%d", i), "add_groups": []string{groups[0]}})
		}
		for _, limit := range []int{0, 1, 2, 5, 6} {
			ids, count := collect(t, adm, "/sys/v1/groups", "group_id", limit)
			if len(ids) != 5 || count != 5 {
				t.Errorf("groups limit=%d: got %d ids (count %v), want 5: %v", limit, len(ids), count, ids)
			}
			seen := map[string]bool{}
			for _, id := range ids {
				if seen[id] {
					t.Errorf("groups limit=%d: %s twice", limit, id)
				}
				seen[id] = true
			}
			ids, count = collect(t, adm, "/sys/v1/apps", "app_id", limit)
			if len(ids) != 3 || count != 3 {
				t.Errorf("apps limit=%d: got %d ids (count %v), want 3: %v", limit, len(ids), count, ids)
			}
		}
		// A token that this server did not issue is refused, not ignored.
		adm.fail(t, 400, "continuation_token must be empty or a token returned by a previous", "GET", "/sys/v1/groups?continuation_token=garbage", nil)
		adm.fail(t, 400, "continuation_token must be empty or a token returned by a previous", "GET", "/sys/v1/apps?continuation_token=garbage", nil)
	})
}
