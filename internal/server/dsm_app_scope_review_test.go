package server_test

import (
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// An admin app reaches only its own groups. It may see an app that shares
// one of them, but it must not take over an app that also reaches groups
// it does not: resetting that app's secret and fetching the new one would
// hand it a key to those other groups (and it could also disable, re-role
// or delete an app it does not fully govern).
func TestAdminAppCannotTakeOverAppsReachingOtherGroups(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		basic := "Basic " + v.AdminKey
		do := func(auth string, want int, method, path string, body any) map[string]any {
			t.Helper()
			r := v.Do(t, method, path, body, "Authorization", auth)
			if r.Status != want {
				t.Fatalf("%s %s: want %d, got %d: %s", method, path, want, r.Status, r.Body)
			}
			if want >= 300 || len(r.Body) == 0 {
				return nil
			}
			m, _ := r.JSON(t).(map[string]any)
			return m
		}
		group := func(name string) string {
			return do(basic, 200, "POST", "/sys/v1/groups", map[string]any{"name": name})["group_id"].(string)
		}
		shared, private := group("shared"), group("private")

		newApp := func(name, role string, groups ...string) (string, string) {
			gs := map[string][]string{}
			for _, g := range groups {
				gs[g] = []string{"SIGN", "EXPORT"}
			}
			id := do(basic, 200, "POST", "/sys/v1/apps", map[string]any{"name": name, "role": role, "add_groups": gs})["app_id"].(string)
			key := vault.AppAPIKey(id, do(basic, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string))
			return id, "Basic " + key
		}
		_, attacker := newApp("scoped-admin", "admin", shared)
		victim, victimKey := newApp("victim", "crypto", shared, private)

		v.NoValidate = true // 403s on these operations are outside the contract document
		// It may still see the victim (they share a group) ...
		do(attacker, 200, "GET", "/sys/v1/apps/"+victim, nil)
		// ... but may not take it over.
		do(attacker, 403, "POST", "/sys/v1/apps/"+victim+"/reset_secret", map[string]any{})
		do(attacker, 403, "GET", "/sys/v1/apps/"+victim+"/credential", nil)
		do(attacker, 403, "PATCH", "/sys/v1/apps/"+victim, map[string]any{"enabled": false})
		do(attacker, 403, "DELETE", "/sys/v1/apps/"+victim, nil)
		// The victim's secret was not reset.
		do(victimKey, 200, "GET", "/sys/v1/groups/"+private, nil)
		// An account admin (all groups) still manages it.
		do(basic, 200, "PATCH", "/sys/v1/apps/"+victim, map[string]any{"description": "ok"})
	})
}
