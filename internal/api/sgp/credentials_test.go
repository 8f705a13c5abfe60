package sgp_test

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// ignoreUpdatedAt compares credentials except for updated_at.
var ignoreUpdatedAt = cmpopts.IgnoreFields(credential{}, "UpdatedAt")

func TestCredentials_Create(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)

		t.Run("ok", func(t *testing.T) {
			before := time.Now().Add(-time.Minute)
			r := a.do(t, "POST", "/v5/credentials", map[string]any{
				"type":                "key",
				"name":                "openai",
				"description":         "the OpenAI key",
				"payload":             "sk-123",
				"credential_metadata": map[string]any{"env": "prod", "nested": map[string]any{"n": 1.5, "l": []any{"x", true}}},
			})
			got := okNoPayload[credential](t, r)
			want := credential{
				ID:                    got.ID,
				Object:                "credential",
				CreatedByUserID:       v.PrincipalID,
				CreatedByIdentityType: "user",
				Type:                  "key",
				Name:                  "openai",
				Description:           "the OpenAI key",
				CredentialMetadata:    map[string]any{"env": "prod", "nested": map[string]any{"n": 1.5, "l": []any{"x", true}}},
				CreatedAt:             got.CreatedAt,
				UpdatedAt:             got.CreatedAt,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("create response mismatch (-want +got):\n%s", diff)
			}
			if got.ID == "" {
				t.Error("empty id")
			}
			if c := parseTime(t, got.CreatedAt); c.Before(before) || c.After(time.Now().Add(time.Minute)) {
				t.Errorf("created_at %v is not now", c)
			}
			a.wantPayload(t, got.ID, "sk-123")
		})

		t.Run("ok/minimal", func(t *testing.T) {
			got := a.create(t, map[string]any{"type": "key", "name": "minimal", "payload": "p"})
			if got.Description != "" || len(got.CredentialMetadata) != 0 || got.CredentialMetadata == nil {
				t.Errorf("defaults: description %q, metadata %#v; want \"\" and {}", got.Description, got.CredentialMetadata)
			}
		})

		t.Run("ok/nulls-are-absent", func(t *testing.T) {
			got := a.create(t, map[string]any{"type": "key", "name": "nulls", "payload": "p", "description": nil, "credential_metadata": nil})
			if got.Description != "" || got.CredentialMetadata == nil || len(got.CredentialMetadata) != 0 {
				t.Errorf("description %q, metadata %#v; want \"\" and {}", got.Description, got.CredentialMetadata)
			}
		})

		t.Run("ok/json-type-keeps-payload-text", func(t *testing.T) {
			const payload = "{ \"client_id\" : \"abc\",\n  \"scopes\": [1, 2] }"
			got := a.create(t, map[string]any{"type": "json", "name": "json-cred", "payload": payload})
			if got.Type != "json" {
				t.Errorf("type = %q", got.Type)
			}
			a.wantPayload(t, got.ID, payload) // the text as sent, not re-encoded
		})

		t.Run("ok/free-form-type", func(t *testing.T) {
			got := a.create(t, map[string]any{"type": "ssh-private-key", "name": "ssh", "payload": "-----BEGIN-----"})
			if got.Type != "ssh-private-key" {
				t.Errorf("type = %q", got.Type)
			}
		})

		t.Run("ok/metadata-keeps-escaped-nul", func(t *testing.T) {
			// Metadata is stored as JSON text, so an escaped NUL is fine on
			// every engine (unlike a NUL in name, type or description).
			meta := map[string]any{"k\x00": "v\x00"}
			got := a.create(t, map[string]any{"type": "key", "name": "nul-meta", "payload": "p", "credential_metadata": meta})
			if diff := cmp.Diff(meta, a.get(t, got.ID).CredentialMetadata); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
		})

		t.Run("ok/unicode", func(t *testing.T) {
			const payload = "pä$$wörd 🔑 \u0000 \"quoted\" \\ <html>"
			got := a.create(t, map[string]any{"type": "key", "name": "ünïcødé ✓", "payload": payload, "description": "<b>&</b>"})
			if got.Name != "ünïcødé ✓" || got.Description != "<b>&</b>" {
				t.Errorf("name %q description %q", got.Name, got.Description)
			}
			a.wantPayload(t, got.ID, payload)
		})

		t.Run("ok/created-by-service-account", func(t *testing.T) {
			w := v.NewMember(t, v.AccountID, "ci-bot", vault.RoleWriter)
			got := as(v, w).createNamed(t, "by-bot", "p")
			if got.CreatedByUserID != w.PrincipalID || got.CreatedByIdentityType != "service_account" {
				t.Errorf("created_by = %q/%q, want %q/service_account", got.CreatedByUserID, got.CreatedByIdentityType, w.PrincipalID)
			}
		})

		t.Run("err/duplicate-name", func(t *testing.T) {
			first := a.createNamed(t, "dup", "first-payload")
			c := canary(t)
			r := a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "dup", "payload": c})
			wantDetail(t, r, 409)
			notContains(t, "409 body", r.Body, c)
			a.wantPayload(t, first.ID, "first-payload")
			notLogged(t, v, c)
		})
	})
}

func TestCredentials_Get(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		created := a.create(t, map[string]any{"type": "key", "name": "get-me", "payload": "p", "credential_metadata": map[string]any{"k": "v"}})

		t.Run("ok", func(t *testing.T) {
			r := a.do(t, "GET", "/v5/credentials/"+created.ID, nil)
			got := okNoPayload[credential](t, r)
			if diff := cmp.Diff(created, got); diff != "" {
				t.Errorf("get != create response (-want +got):\n%s", diff)
			}
		})

		// Ids no credential can have (NUL, invalid UTF-8) are not found on
		// every engine, by every operation, rather than a database error.
		for _, id := range []string{vault.NewID(), "not-a-uuid", "%20", "%00", "%FF", "a%00b"} {
			t.Run("err/not-found/"+id, func(t *testing.T) {
				wantDetail(t, a.do(t, "GET", "/v5/credentials/"+id, nil), 404)
				wantDetail(t, a.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"description": "x"}), 404)
				wantDetail(t, a.do(t, "POST", "/v5/credentials/"+id+"/secret", nil), 404)
				wantDetail(t, a.do(t, "DELETE", "/v5/credentials/"+id, nil), 404)
			})
		}
	})
}

func TestCredentials_GetByName(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		names := []struct{ test, name string }{
			{"plain", "plain"},
			{"space", "my credential"},
			{"encoded-slash", "team/openai"},
			{"percent", "100%"},
			{"plus", "a+b"},
			{"unicode", "ключ"},
			{"dots", "..."},
		}
		for _, tc := range names {
			t.Run("ok/"+tc.test, func(t *testing.T) {
				payload := "payload-" + tc.test
				created := a.create(t, map[string]any{"type": "key", "name": tc.name, "payload": payload})
				path := "/v5/credentials/name/" + pathName(tc.name)

				r := a.do(t, "GET", path, nil)
				got := okNoPayload[credential](t, r)
				if diff := cmp.Diff(created, got); diff != "" {
					t.Errorf("get by name %q (-want +got):\n%s", tc.name, diff)
				}

				r = a.do(t, "POST", path+"/secret", nil)
				s := ok[secret](t, r)
				if diff := cmp.Diff(secret{Result: payload, Object: s.Object}, s); diff != "" || s.Object == "" {
					t.Errorf("decrypt by name %q (-want +got):\n%s", tc.name, diff)
				}
			})
		}

		t.Run("ok/slash-unencoded", func(t *testing.T) {
			// GET takes the rest of the path as the name, so an SDK that does not
			// escape the name still finds it. That path is outside the contract's
			// templates (one segment per name), so it is not validated.
			v.NoValidate = true
			defer func() { v.NoValidate = false }()
			r := a.do(t, "GET", "/v5/credentials/name/team/openai", nil)
			got := ok[credential](t, r)
			if got.Name != "team/openai" {
				t.Errorf("name = %q", got.Name)
			}
		})

		for _, tc := range []struct{ test, name string }{
			{"unknown", "nope"},
			{"case-differs", "PLAIN"},
			{"prefix", "plai"},
			{"trailing-space", "plain "},
			{"nul", "pla\x00in"},
			{"invalid-utf8", "pl\xffain"},
		} {
			t.Run("err/not-found/"+tc.test, func(t *testing.T) {
				wantDetail(t, a.do(t, "GET", "/v5/credentials/name/"+pathName(tc.name), nil), 404)
				wantDetail(t, a.do(t, "POST", "/v5/credentials/name/"+pathName(tc.name)+"/secret", nil), 404)
			})
		}
	})
}

func TestCredentials_Update(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		ctx := context.Background()
		newCred := func(t *testing.T, name string) credential {
			t.Helper()
			return a.create(t, map[string]any{
				"type": "key", "name": name, "payload": "old-payload", "description": "old description",
				"credential_metadata": map[string]any{"a": "1", "b": "2"},
			})
		}
		patch := func(t *testing.T, id string, body any) credential {
			t.Helper()
			return okNoPayload[credential](t, a.do(t, "PATCH", "/v5/credentials/"+id, body))
		}
		// wantUpdated checks that got is orig with change applied, a later
		// updated_at and the same created_at, and that GET agrees.
		wantUpdated := func(t *testing.T, orig, got credential, change func(*credential)) {
			t.Helper()
			want := orig
			change(&want)
			if diff := cmp.Diff(want, got, ignoreUpdatedAt); diff != "" {
				t.Errorf("updated credential mismatch (-want +got):\n%s", diff)
			}
			if !parseTime(t, got.UpdatedAt).After(parseTime(t, orig.UpdatedAt)) {
				t.Errorf("updated_at %s not after %s", got.UpdatedAt, orig.UpdatedAt)
			}
			if diff := cmp.Diff(got, a.get(t, got.ID)); diff != "" {
				t.Errorf("GET after PATCH differs from the PATCH response (-patch +get):\n%s", diff)
			}
		}

		cases := []struct {
			name   string
			body   map[string]any
			change func(*credential)
		}{
			{"ok/description-only", map[string]any{"description": "new description"}, func(c *credential) { c.Description = "new description" }},
			{"ok/clear-description", map[string]any{"description": ""}, func(c *credential) { c.Description = "" }},
			{"ok/type-only", map[string]any{"type": "token"}, func(c *credential) { c.Type = "token" }},
			{"ok/metadata-replaced-whole", map[string]any{"credential_metadata": map[string]any{"c": "3"}}, func(c *credential) {
				c.CredentialMetadata = map[string]any{"c": "3"}
			}},
			{"ok/metadata-emptied", map[string]any{"credential_metadata": map[string]any{}}, func(c *credential) {
				c.CredentialMetadata = map[string]any{}
			}},
			{"ok/nulls-change-nothing", map[string]any{"name": nil, "description": nil, "credential_metadata": nil, "payload": nil}, func(*credential) {}},
			{"ok/empty-object", map[string]any{}, func(*credential) {}},
		}
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				orig := newCred(t, nameOf(i, "upd"))
				got := patch(t, orig.ID, tc.body)
				wantUpdated(t, orig, got, tc.change)
				a.wantPayload(t, orig.ID, "old-payload")
			})
		}

		t.Run("ok/rename", func(t *testing.T) {
			orig := newCred(t, "before-rename")
			got := patch(t, orig.ID, map[string]any{"name": "after rename"})
			wantUpdated(t, orig, got, func(c *credential) { c.Name = "after rename" })
			wantDetail(t, a.do(t, "GET", "/v5/credentials/name/before-rename", nil), 404)
			r := a.do(t, "GET", "/v5/credentials/name/"+pathName("after rename"), nil)
			wantStatus(t, r, 200)
			// The old name is free again.
			a.createNamed(t, "before-rename", "x")
		})

		t.Run("ok/rename-to-own-name", func(t *testing.T) {
			orig := newCred(t, "same-name")
			got := patch(t, orig.ID, map[string]any{"name": "same-name"})
			wantUpdated(t, orig, got, func(*credential) {})
		})

		t.Run("ok/payload-re-encrypted", func(t *testing.T) {
			orig := newCred(t, "rotate-me")
			before, err := v.App.Store.GetCredential(ctx, v.AccountID, orig.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := patch(t, orig.ID, map[string]any{"payload": "new-payload"})
			wantUpdated(t, orig, got, func(*credential) {})
			a.wantPayload(t, orig.ID, "new-payload")
			after, err := v.App.Store.GetCredential(ctx, v.AccountID, orig.ID)
			if err != nil {
				t.Fatal(err)
			}
			if after.Version != before.Version+1 {
				t.Errorf("version %d → %d, want a bump", before.Version, after.Version)
			}
			if string(after.Ciphertext) == string(before.Ciphertext) {
				t.Error("ciphertext unchanged after a payload update")
			}
		})

		t.Run("ok/all-fields", func(t *testing.T) {
			orig := newCred(t, "everything")
			got := patch(t, orig.ID, map[string]any{
				"name": "everything-2", "type": "json", "description": "d2", "payload": `{"k":"v"}`,
				"credential_metadata": map[string]any{"z": true},
			})
			wantUpdated(t, orig, got, func(c *credential) {
				c.Name, c.Type, c.Description, c.CredentialMetadata = "everything-2", "json", "d2", map[string]any{"z": true}
			})
			a.wantPayload(t, orig.ID, `{"k":"v"}`)
		})

		t.Run("ok/type-to-json-with-json-payload-stored", func(t *testing.T) {
			orig := a.create(t, map[string]any{"type": "key", "name": "was-key", "payload": `["already","json"]`})
			got := patch(t, orig.ID, map[string]any{"type": "json"})
			wantUpdated(t, orig, got, func(c *credential) { c.Type = "json" })
		})

		t.Run("err/type-to-json-with-text-payload-stored", func(t *testing.T) {
			orig := newCred(t, "text-key")
			want422At(t, a.do(t, "PATCH", "/v5/credentials/"+orig.ID, map[string]any{"type": "json"}), "value_error", "body", "type")
			if diff := cmp.Diff(orig, a.get(t, orig.ID)); diff != "" {
				t.Errorf("credential changed by a failed PATCH (-want +got):\n%s", diff)
			}
		})

		t.Run("err/json-credential-text-payload", func(t *testing.T) {
			orig := a.create(t, map[string]any{"type": "json", "name": "json-upd", "payload": `{"a":1}`})
			c := canary(t)
			r := a.do(t, "PATCH", "/v5/credentials/"+orig.ID, map[string]any{"payload": c})
			want422At(t, r, "value_error", "body", "payload")
			notContains(t, "422 body", r.Body, c)
			a.wantPayload(t, orig.ID, `{"a":1}`)
		})

		t.Run("err/duplicate-name", func(t *testing.T) {
			x := newCred(t, "rename-x")
			y := newCred(t, "rename-y")
			c := canary(t)
			r := a.do(t, "PATCH", "/v5/credentials/"+y.ID, map[string]any{"name": "rename-x", "payload": c, "description": "changed"})
			wantDetail(t, r, 409)
			notContains(t, "409 body", r.Body, c)
			a.wantUnchanged(t, x, "old-payload")
			a.wantUnchanged(t, y, "old-payload")
			notLogged(t, v, c)
		})

		t.Run("err/not-found", func(t *testing.T) {
			wantDetail(t, a.do(t, "PATCH", "/v5/credentials/"+vault.NewID(), map[string]any{"description": "x"}), 404)
		})
	})
}

func TestCredentials_Delete(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)

		t.Run("ok", func(t *testing.T) {
			keep := a.createNamed(t, "keep", "keep-payload")
			c := a.createNamed(t, "delete-me", "p")
			if got := a.list(t, nil).Total; got != 2 {
				t.Fatalf("total before delete = %d", got)
			}

			r := a.do(t, "DELETE", "/v5/credentials/"+c.ID, nil)
			got := ok[deleted](t, r)
			if diff := cmp.Diff(deleted{ID: c.ID, Deleted: true, Object: "credential"}, got); diff != "" {
				t.Errorf("delete response (-want +got):\n%s", diff)
			}

			wantDetail(t, a.do(t, "GET", "/v5/credentials/"+c.ID, nil), 404)
			wantDetail(t, a.do(t, "GET", "/v5/credentials/name/delete-me", nil), 404)
			wantDetail(t, a.do(t, "POST", "/v5/credentials/"+c.ID+"/secret", nil), 404)
			wantDetail(t, a.do(t, "POST", "/v5/credentials/name/delete-me/secret", nil), 404)
			wantDetail(t, a.do(t, "PATCH", "/v5/credentials/"+c.ID, map[string]any{"description": "x"}), 404)
			wantDetail(t, a.do(t, "DELETE", "/v5/credentials/"+c.ID, nil), 404)

			page := a.list(t, nil)
			if diff := cmp.Diff([]string{keep.ID}, ids(page.Items)); diff != "" || page.Total != 1 {
				t.Errorf("list after delete: total %d, ids (-want +got):\n%s", page.Total, diff)
			}
			a.wantPayload(t, keep.ID, "keep-payload")
		})

		t.Run("ok/name-reusable", func(t *testing.T) {
			c := a.createNamed(t, "reuse", "one")
			wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+c.ID, nil), 200)
			c2 := a.createNamed(t, "reuse", "two")
			if c2.ID == c.ID {
				t.Error("a new credential got the deleted one's id")
			}
			r := a.do(t, "POST", "/v5/credentials/name/reuse/secret", nil)
			s := ok[secret](t, r)
			if s.Result != "two" {
				t.Errorf("decrypt by reused name = %q, want %q", s.Result, "two")
			}
		})

		t.Run("err/not-found", func(t *testing.T) {
			wantDetail(t, a.do(t, "DELETE", "/v5/credentials/"+vault.NewID(), nil), 404)
		})
	})
}

func TestCredentials_Decrypt(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		key := a.create(t, map[string]any{"type": "key", "name": "dec-key", "payload": "sk-live-1"})
		js := a.create(t, map[string]any{"type": "json", "name": "dec json", "payload": `{"user":"u","password":"p"}`})

		for _, tc := range []struct {
			name, path, want string
		}{
			{"ok/by-id", "/v5/credentials/" + key.ID + "/secret", "sk-live-1"},
			{"ok/by-name", "/v5/credentials/name/dec-key/secret", "sk-live-1"},
			{"ok/json-by-id-is-text", "/v5/credentials/" + js.ID + "/secret", `{"user":"u","password":"p"}`},
			{"ok/json-by-name-with-space", "/v5/credentials/name/" + pathName("dec json") + "/secret", `{"user":"u","password":"p"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := a.do(t, "POST", tc.path, nil)
				got := ok[map[string]any](t, r)
				if diff := cmp.Diff(map[string]any{"result": tc.want, "object": got["object"]}, got); diff != "" {
					t.Errorf("secret body (-want +got):\n%s", diff)
				}
				if o, _ := got["object"].(string); o == "" {
					t.Errorf("object = %v, want a non-empty string", got["object"])
				}
				if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control = %q, want no-store", cc)
				}
			})
		}

		t.Run("ok/body-ignored", func(t *testing.T) {
			r := a.do(t, "POST", "/v5/credentials/"+key.ID+"/secret", "{}")
			wantStatus(t, r, 200)
		})

		t.Run("err/not-found", func(t *testing.T) {
			wantDetail(t, a.do(t, "POST", "/v5/credentials/"+vault.NewID()+"/secret", nil), 404)
			wantDetail(t, a.do(t, "POST", "/v5/credentials/name/no-such/secret", nil), 404)
		})
	})
}

func TestCredentials_List(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)

		t.Run("ok/empty", func(t *testing.T) {
			r := a.do(t, "GET", "/v5/credentials", nil)
			got := ok[map[string]any](t, r)
			want := map[string]any{"object": "list", "items": []any{}, "total": 0.0, "has_more": false, "limit": 100.0}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("empty list (-want +got):\n%s", diff)
			}
		})

		t.Run("ok/items-match-get", func(t *testing.T) {
			c := a.create(t, map[string]any{"type": "json", "name": "listed", "payload": `{"s":"x"}`, "description": "d", "credential_metadata": map[string]any{"m": 1.0}})
			page := a.list(t, url.Values{"limit": {"7"}})
			if diff := cmp.Diff(listPage{Object: "list", Items: []credential{c}, Total: 1, HasMore: false, Limit: 7}, page); diff != "" {
				t.Errorf("list (-want +got):\n%s", diff)
			}
		})
	})
}

// TestCredentials_Concurrent: uniqueness and payload versions hold under
// concurrent writers (the database enforces them, not the handler).
func TestCredentials_Concurrent(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		const n = 8
		run := func(fn func(i int) *vaulttest.Response) []int {
			statuses := make([]int, n)
			done := make(chan struct{})
			for i := range n {
				go func() {
					defer func() { done <- struct{}{} }()
					statuses[i] = fn(i).Status
				}()
			}
			for range n {
				<-done
			}
			slices.Sort(statuses)
			return statuses
		}

		t.Run("err/same-name-races", func(t *testing.T) {
			got := run(func(i int) *vaulttest.Response {
				return a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "race", "payload": fmt.Sprint("p", i)})
			})
			want := append([]int{200}, slices.Repeat([]int{409}, n-1)...)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statuses of %d concurrent creates of one name (-want +got):\n%s", n, diff)
			}
			if p := a.list(t, url.Values{"name": {"race"}}); p.Total != 1 {
				t.Errorf("%d credentials named race", p.Total)
			}
		})

		t.Run("err/rename-races", func(t *testing.T) {
			var cs []credential
			for i := range n {
				cs = append(cs, a.createNamed(t, fmt.Sprint("renamer-", i), "p"))
			}
			got := run(func(i int) *vaulttest.Response {
				return a.do(t, "PATCH", "/v5/credentials/"+cs[i].ID, map[string]any{"name": "renamed-race"})
			})
			want := append([]int{200}, slices.Repeat([]int{409}, n-1)...)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("statuses of %d concurrent renames to one name (-want +got):\n%s", n, diff)
			}
		})

		t.Run("ok/payload-updates-serialise", func(t *testing.T) {
			c := a.createNamed(t, "contended", "p0")
			got := run(func(i int) *vaulttest.Response {
				return a.do(t, "PATCH", "/v5/credentials/"+c.ID, map[string]any{"payload": fmt.Sprint("p", i+1)})
			})
			if diff := cmp.Diff(slices.Repeat([]int{200}, n), got); diff != "" {
				t.Errorf("statuses (-want +got):\n%s", diff)
			}
			stored, err := v.App.Store.GetCredential(context.Background(), v.AccountID, c.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Version != 1+n {
				t.Errorf("version = %d after %d updates, want %d: an update was lost", stored.Version, n, 1+n)
			}
			s := a.decrypt(t, c.ID)
			if !strings.HasPrefix(s, "p") || s == "p0" {
				t.Errorf("decrypt = %q, want one of the updates", s)
			}
		})
	})
}
