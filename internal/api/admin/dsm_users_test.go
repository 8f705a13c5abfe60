package admin_test

import (
	"encoding/base64"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestDSMUsers: a user with an email and a password authenticates to DSM's
// session/auth with Basic email:password, selects another of its accounts,
// lists its accounts and reads itself, as Fortanix's crud_user and get_user
// examples do; responses validate against the DSM contract.
func TestDSMUsers(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		u := str(w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "frank", "account_id": w.acctA, "role": "admin", "email": "frank@example.com", "password": canary}), "id")
		w.adminB.want(t, 200, "PUT", "/admin/v1/principals/"+u+"/memberships/"+w.acctB, map[string]any{"role": "reader"})
		basic := func(user, pw string) string {
			return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw))
		}
		if r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", basic("frank@example.com", "not the password")); r.Status != 401 {
			t.Fatalf("wrong password: %d %s", r.Status, r.Body)
		}
		r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", basic("frank@example.com", canary))
		if r.Status != 200 {
			t.Fatalf("session/auth: %d %s", r.Status, r.Body)
		}
		auth := r.Object(t)
		if str(auth, "entity_id") != u {
			t.Fatalf("entity_id %v, want %s", auth["entity_id"], u)
		}
		bearer := []string{"Authorization", "Bearer " + str(auth, "access_token")}
		get := func(path string, want int) *vaulttest.Response {
			t.Helper()
			r := v.Do(t, "GET", path, nil, bearer...)
			if r.Status != want {
				t.Fatalf("GET %s: %d, want %d: %s", path, r.Status, want, r.Body)
			}
			return r
		}
		if accts := get("/sys/v1/accounts", 200).JSON(t).([]any); len(accts) != 2 {
			t.Fatalf("accounts: %v", accts)
		}
		get("/sys/v1/accounts/"+w.acctB, 200)
		get("/sys/v1/accounts/"+v.AccountID, 404)
		me := get("/sys/v1/users/"+u, 200).Object(t)
		if str(me, "user_email") != "frank@example.com" || me["has_password"] != true || me["last_logged_in_at"] == nil {
			t.Fatalf("user: %v", me)
		}
		if role := me["account_role"].([]any); role[0] != "ACCOUNTADMINISTRATOR" {
			t.Fatalf("account_role: %v", role)
		}
		if users := get("/sys/v1/users", 200).JSON(t).([]any); len(users) != 1 {
			t.Fatalf("users: %v", users)
		}
		// limit and offset page the listing.
		for _, name := range []string{"gina", "hugo"} {
			w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": name, "account_id": w.acctA, "role": "reader", "email": name + "@example.com", "password": canary})
		}
		for q, want := range map[string]int{"": 3, "?limit=2": 2, "?limit=2&offset=2": 1, "?offset=3": 0, "?limit=1&offset=1": 1} {
			if users := get("/sys/v1/users"+q, 200).JSON(t).([]any); len(users) != want {
				t.Errorf("users%s: %d, want %d", q, len(users), want)
			}
		}
		// The user acts as admin in A: it may create a group there.
		if r := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": "g1"}, bearer...); r.Status != 200 && r.Status != 201 {
			t.Fatalf("create group: %d %s", r.Status, r.Body)
		}
		// select_account moves the session to B, where it is a reader.
		if r := v.Do(t, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": w.acctB}, bearer...); r.Status != 200 {
			t.Fatalf("select_account: %d %s", r.Status, r.Body)
		}
		if role := get("/sys/v1/users/"+u, 200).Object(t)["account_role"].([]any); role[0] != "ACCOUNTAUDITOR" {
			t.Fatalf("account_role in B: %v", role)
		}
		if r := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": "g2"}, bearer...); r.Status != 403 {
			t.Fatalf("reader creates a group: %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": v.AccountID}, bearer...); r.Status != 403 {
			t.Fatalf("select_account outside the user's accounts: %d %s", r.Status, r.Body)
		}
		// Another user of A is visible from A only; apps see no users.
		get("/sys/v1/users/"+w.adminAID, 404) // a service account is not a DSM user
		// Disabling the user ends its DSM session at once.
		w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+u, map[string]any{"disabled": true})
		get("/sys/v1/users/"+u, 401)
		if r := v.Do(t, "POST", "/sys/v1/session/auth", nil, "Authorization", basic("frank@example.com", canary)); r.Status != 401 {
			t.Fatalf("disabled user authenticates: %d", r.Status)
		}
	})
}

// TestDSMAppsPageByStart: GET /sys/v1/apps?sort=app_id&start=<id> lists the
// apps after start (exclusive), so that the Go client's paging loop in
// Fortanix's crud_user example ends with an empty page instead of
// repeating the last app forever.
func TestDSMAppsPageByStart(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		auth := []string{"Authorization", "Basic " + v.AdminKey}
		g := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": "g"}, auth...).Object(t)
		var ids []string
		for _, n := range []string{"b-app", "a-app", "c-app"} {
			r := v.Do(t, "POST", "/sys/v1/apps", map[string]any{"name": n, "add_groups": map[string][]string{str(g, "group_id"): {"ENCRYPT"}}}, auth...)
			if r.Status != 200 {
				t.Fatalf("create app: %d %s", r.Status, r.Body)
			}
			ids = append(ids, str(r.Object(t), "app_id"))
		}
		list := func(q string) []string {
			t.Helper()
			r := v.Do(t, "GET", "/sys/v1/apps?"+q, nil, auth...)
			if r.Status != 200 {
				t.Fatalf("list %s: %d %s", q, r.Status, r.Body)
			}
			var out []string
			for _, a := range r.JSON(t).([]any) {
				out = append(out, str(a.(map[string]any), "app_id"))
			}
			return out
		}
		if got := list("sort=app_id:asc"); len(got) != 3 || got[0] != ids[0] || got[2] != ids[2] {
			t.Fatalf("sorted by id: %v, want %v", got, ids)
		}
		if got := list("sort=app_id:asc&start=" + ids[1]); len(got) != 1 || got[0] != ids[2] {
			t.Fatalf("after %s: %v", ids[1], got)
		}
		if got := list("sort=app_id:asc&start=" + ids[2]); len(got) != 0 {
			t.Fatalf("after the last: %v", got)
		}
		if got := list("sort=app_id:desc&start=" + ids[1]); len(got) != 1 || got[0] != ids[0] {
			t.Fatalf("descending after %s: %v", ids[1], got)
		}
		if got := list("sort=app_name&start=b-app"); len(got) != 1 || got[0] != ids[2] {
			t.Fatalf("by name after b-app: %v", got)
		}
		if r := v.Do(t, "GET", "/sys/v1/apps?sort=bogus", nil, auth...); r.Status != 400 {
			t.Fatalf("bad sort: %d", r.Status)
		}
	})
}
