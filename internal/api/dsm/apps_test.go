package dsm_test

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// logMessages returns the messages of the audit records about objectID,
// newest first, as an account admin reads them.
func logMessages(t *testing.T, c client, objectID string) []string {
	t.Helper()
	var out []string
	for _, h := range c.ok(t, 200, "GET", "/sys/v1/logs?object_id="+objectID, nil)["hits"].([]any) {
		out = append(out, h.(map[string]any)["_source"].(map[string]any)["message"].(string))
	}
	return out
}

func count(msgs []string, prefix string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// The app-credential flow exactly as Fortanix's Terraform provider does it:
// create the app, read its credential, build the API key as
// base64(app_id:secret), authenticate and select the account, read the
// credential again on refresh (same secret), reset it, and see the old key
// refused once the migration period is over.
func TestAppCredential_TerraformFlow(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "tf-group")
		// resource_app.go's body: name, default_group, app_Type, description, add_groups.
		app := adm.ok(t, 200, "POST", "/sys/v1/apps", map[string]any{"name": "tf-app", "default_group": g, "app_Type": "default", "description": "",
			"add_groups": map[string]any{g: []string{"SIGN", "VERIFY", "ENCRYPT", "DECRYPT", "EXPORT"}}})
		id, acct := app["app_id"].(string), app["acct_id"].(string)

		cred := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)
		secret := cred["credential"].(map[string]any)["secret"].(string)
		if cred["app_id"] != id || secret == "" {
			t.Fatalf("credential: %v", cred)
		}
		key := vault.AppAPIKey(id, secret) // base64(app_id + ":" + secret), as the provider builds it
		// The secret alone is not a key.
		(client{v: v, auth: "Basic " + secret}).fail(t, 401, "invalid or missing API key", "GET", "/sys/v1/groups", nil)

		// Provider login: session/auth with Basic, then select_account.
		basic := client{v: v, auth: "Basic " + key}
		sess := basic.ok(t, 200, "POST", "/sys/v1/session/auth", nil)
		if sess["entity_id"] != id {
			t.Fatalf("session: %v", sess)
		}
		bearer := client{v: v, auth: "Bearer " + sess["access_token"].(string)}
		bearer.ok(t, 200, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": acct})
		bearer.ok(t, 200, "GET", "/sys/v1/apps/"+id, nil)

		// terraform plan: read again — same secret, no 409.
		for i := 0; i < 2; i++ {
			again := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)
			if again["credential"].(map[string]any)["secret"] != secret {
				t.Fatalf("read %d returned another secret", i+2)
			}
		}
		if n := count(logMessages(t, adm, id), "app.credential app: success"); n != 3 {
			t.Errorf("credential reads audited: %d, want 3", n)
		}

		// Reset with a migration period: the old key and its session keep
		// working for that long, next to the new key.
		reset := adm.ok(t, 200, "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{"credential_migration_period": 1})
		if reset["app_id"] != id {
			t.Fatalf("reset: %v", reset)
		}
		secret2 := adm.ok(t, 200, "GET", "/sys/v1/apps/"+id+"/credential", nil)["credential"].(map[string]any)["secret"].(string)
		if secret2 == secret {
			t.Fatal("reset returned the same secret")
		}
		basic2 := client{v: v, auth: "Basic " + vault.AppAPIKey(id, secret2)}
		basic2.ok(t, 200, "GET", "/sys/v1/groups/"+g, nil)
		basic.ok(t, 200, "GET", "/sys/v1/groups/"+g, nil)
		// Then the old key and its session are refused; the new key is not.
		v.Clock.Advance(2 * time.Second)
		basic.fail(t, 401, "invalid or missing API key", "GET", "/sys/v1/groups/"+g, nil)
		bearer.fail(t, 401, "invalid, expired or terminated session; authenticate again", "GET", "/sys/v1/groups/"+g, nil)
		basic2.ok(t, 200, "GET", "/sys/v1/groups/"+g, nil)

		// Reset without a period: the key stops at once.
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{})
		basic2.fail(t, 401, "invalid or missing API key", "GET", "/sys/v1/groups/"+g, nil)
		adm.fail(t, 400, "credential_migration_period must be between 0 and 31536000 seconds", "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{"credential_migration_period": -1})
	})
}

// A session opened with a key that expires sooner than the session TTL
// reports (and has) the key's remaining life, not 600 s.
func TestSession_ExpiresInNeverExceedsTheKey(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		appc, id := adm.app(t, "short", "crypto", g)
		if s := appc.ok(t, 200, "POST", "/sys/v1/session/auth", nil); s["expires_in"].(float64) != 600 {
			t.Fatalf("a key without expiry: expires_in %v, want 600", s["expires_in"])
		}
		// The previous key lives 100 s more after a reset with a migration period.
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+id+"/reset_secret", map[string]any{"credential_migration_period": 100})
		s := appc.ok(t, 200, "POST", "/sys/v1/session/auth", nil)
		if e := s["expires_in"].(float64); e > 100 || e < 90 {
			t.Fatalf("expires_in %v for a key with 100 s left", e)
		}
		bearer := client{v: v, auth: "Bearer " + s["access_token"].(string)}
		if r := bearer.ok(t, 200, "POST", "/sys/v1/session/reauth", nil); r["expires_in"].(float64) > 100 {
			t.Fatalf("reauth: expires_in %v", r["expires_in"])
		}
		bearer.ok(t, 204, "POST", "/sys/v1/session/refresh", nil)
	})
}

// select_account accepts the caller's account, moves a session to another
// account its principal is a member of, and refuses any other account.
func TestSelectAccount(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		adm.ok(t, 200, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": v.AccountID})
		sess := adm.session(t)
		sess.ok(t, 200, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": strings.ToUpper(v.AccountID)})

		other := v.NewTenant(t, "other", vault.RoleAdmin)
		for _, c := range []client{adm, sess} {
			msg := c.fail(t, 403, "the caller is not a member of that account", "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": other.AccountID})
			if strings.Contains(msg, other.AccountID) {
				t.Errorf("error echoes the account id: %s", msg)
			}
			c.fail(t, 403, "the caller is not a member of that account", "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": vault.NewID()})
			c.fail(t, 400, "acct_id must be a UUID", "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": "not-a-uuid"})
			c.fail(t, 400, "acct_id is required", "POST", "/sys/v1/session/select_account", map[string]any{})
		}
		(client{v: v}).fail(t, 401, "missing or malformed Authorization header; use Basic <api key> or", "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": v.AccountID})

		// A member of both accounts moves its session; the session then acts there.
		g := adm.group(t, "home-group")
		if err := v.App.Store.PutMembership(t.Context(), vault.Membership{PrincipalID: v.PrincipalID, AccountID: other.AccountID, Role: vault.RoleAdmin}); err != nil {
			t.Fatal(err)
		}
		adm.fail(t, 400, "switching accounts needs a session (Authorization: Bearer); an API", "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": other.AccountID}) // an API key cannot switch
		sess.ok(t, 200, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": other.AccountID})
		sess.fail(t, 404, "group not found", "GET", "/sys/v1/groups/"+g, nil)
		sess.ok(t, 200, "POST", "/sys/v1/session/select_account", map[string]any{"acct_id": v.AccountID})
		sess.ok(t, 200, "GET", "/sys/v1/groups/"+g, nil)
	})
}

// An app whose secret was issued before credvault kept app secrets cannot
// show it again: the core says so in its own words, and the DSM dialect
// names its own way out (reset_secret on this app's path).
func TestAppCredential_LegacySecretNamesResetPath(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "legacy")
		_, appID := adm.app(t, "legacy-app", "crypto", g)
		adm.ok(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)

		// The secret as an older credvault left it: issued, hash only.
		if _, err := v.RawDB(t).Exec(`DELETE FROM dsm_app_secrets`); err != nil {
			t.Fatal(err)
		}
		msg := adm.fail(t, 409, "reset_secret", "GET", "/sys/v1/apps/"+appID+"/credential", nil)
		if want := "call POST /sys/v1/apps/" + appID + "/reset_secret"; !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+appID+"/reset_secret", map[string]any{})
		adm.ok(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)
	})
}

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
