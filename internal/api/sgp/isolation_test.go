package sgp_test

import (
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestTenantIsolation: with keys for accounts A and B, nothing B does by id
// or by name reaches A's credential, and B's answers are exactly those for a
// credential that does not exist anywhere.
func TestTenantIsolation(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := as(v, v.NewTenant(t, "tenant-a", vault.RoleAdmin))
		b := as(v, v.NewTenant(t, "tenant-b", vault.RoleAdmin))
		secretA := canary(t)
		x := a.create(t, map[string]any{"type": "key", "name": "a secret", "payload": secretA, "credential_metadata": map[string]any{"owner": "a"}})
		ghost := credential{ID: vault.NewID(), Name: "no such credential"}

		// Every operation by id or by name, against A's credential and
		// against one that does not exist: B's answers must be identical.
		for _, op := range sgpOps(x) {
			if op.name == "create" || op.name == "list" {
				continue
			}
			t.Run("err/"+op.name, func(t *testing.T) {
				body := opBody(op.method, "from-b")
				if op.method == "POST" {
					body = nil
				}
				got := b.do(t, op.method, op.path, body)
				var ghostPath string
				for _, g := range sgpOps(ghost) {
					if g.name == op.name {
						ghostPath = g.path
					}
				}
				want := b.do(t, op.method, ghostPath, body)
				wantDetail(t, got, 404)
				if diff := cmp.Diff(string(want.Body), string(got.Body)); diff != "" {
					t.Errorf("B's answer for A's credential differs from a nonexistent one (-nonexistent +A's):\n%s", diff)
				}
				if diff := cmp.Diff(want.Header.Get("x-should-retry"), got.Header.Get("x-should-retry")); diff != "" {
					t.Errorf("x-should-retry differs: %s", diff)
				}
				notContains(t, "B's response", got.Body, secretA)
			})
		}

		t.Run("err/list", func(t *testing.T) {
			for _, q := range []url.Values{nil, {"name": {x.Name}}, {"sort_by": {"name"}}, {"sort_order": {"desc"}}} {
				p := b.list(t, q)
				if len(p.Items) != 0 || p.Total != 0 || p.HasMore {
					t.Errorf("B's list %v shows %d items, total %d", q, len(p.Items), p.Total)
				}
			}
			// A's id as B's cursor is refused exactly like a random id.
			for _, cursor := range []string{"starting_after", "ending_before"} {
				got := b.do(t, "GET", "/v5/credentials?"+url.Values{cursor: {x.ID}}.Encode(), nil)
				want := b.do(t, "GET", "/v5/credentials?"+url.Values{cursor: {ghost.ID}}.Encode(), nil)
				want422(t, got)
				if diff := cmp.Diff(string(want.Body), string(got.Body)); diff != "" {
					t.Errorf("%s=A's id differs from a nonexistent id (-nonexistent +A's):\n%s", cursor, diff)
				}
			}
		})

		t.Run("ok/same-name-in-both-accounts", func(t *testing.T) {
			y := b.create(t, map[string]any{"type": "key", "name": x.Name, "payload": "b's own"})
			if y.ID == x.ID {
				t.Fatal("B's credential got A's id")
			}
			r := b.do(t, "POST", "/v5/credentials/name/"+pathName(x.Name)+"/secret", nil)
			s := ok[secret](t, r)
			if s.Result != "b's own" {
				t.Errorf("B decrypts %q by the shared name, want its own payload", s.Result)
			}
			if p := b.list(t, nil); !cmp.Equal(ids(p.Items), []string{y.ID}) || p.Total != 1 {
				t.Errorf("B's list = %v total %d, want only [%s]", ids(p.Items), p.Total, y.ID)
			}
			// B renames and deletes its own; A's is unaffected.
			wantStatus(t, b.do(t, "PATCH", "/v5/credentials/"+y.ID, map[string]any{"name": "b renamed"}), 200)
			wantStatus(t, b.do(t, "PATCH", "/v5/credentials/"+y.ID, map[string]any{"name": x.Name}), 200)
			wantStatus(t, b.do(t, "DELETE", "/v5/credentials/"+y.ID, nil), 200)
		})

		t.Run("a-unchanged", func(t *testing.T) {
			a.wantUnchanged(t, x, secretA)
			if p := a.list(t, nil); !cmp.Equal(ids(p.Items), []string{x.ID}) || p.Total != 1 {
				t.Errorf("A's list = %v total %d", ids(p.Items), p.Total)
			}
			r := a.do(t, "GET", "/v5/credentials/name/"+pathName(x.Name), nil)
			wantStatus(t, r, 200)
			notLogged(t, v, secretA)
		})
	})
}

// TestRoles: reader sees metadata only; secret_reader also decrypts; writer
// does every credential operation; none of them changes anything it may not.
func TestRoles(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		type want struct{ list, get, decrypt, create, update, delete int }
		cases := []struct {
			role vault.Role
			want want
		}{
			{vault.RoleReader, want{list: 200, get: 200, decrypt: 403, create: 403, update: 403, delete: 403}},
			{vault.RoleSecretReader, want{list: 200, get: 200, decrypt: 200, create: 403, update: 403, delete: 403}},
			{vault.RoleWriter, want{list: 200, get: 200, decrypt: 200, create: 200, update: 200, delete: 200}},
			{vault.RoleAdmin, want{list: 200, get: 200, decrypt: 200, create: 200, update: 200, delete: 200}},
		}
		for _, tc := range cases {
			t.Run(string(tc.role), func(t *testing.T) {
				cl := as(v, v.NewMember(t, v.AccountID, "member-"+string(tc.role), tc.role))
				target := adm.create(t, map[string]any{"type": "key", "name": "role target " + string(tc.role), "payload": "role-payload"})
				byName := "/v5/credentials/name/" + pathName(target.Name)
				c := canary(t)
				check := func(what string, r *vaulttest.Response, status int) {
					t.Helper()
					if status == 200 {
						wantStatus(t, r, 200)
						return
					}
					wantDetail(t, r, status)
					notContains(t, what+" body", r.Body, c)
					notContains(t, what+" body", r.Body, "role-payload")
				}

				check("list", cl.do(t, "GET", "/v5/credentials", nil), tc.want.list)
				check("get", cl.do(t, "GET", "/v5/credentials/"+target.ID, nil), tc.want.get)
				check("get by name", cl.do(t, "GET", byName, nil), tc.want.get)

				r := cl.do(t, "POST", "/v5/credentials/"+target.ID+"/secret", nil)
				check("decrypt", r, tc.want.decrypt)
				if r.Status != 200 {
					notContains(t, "decrypt refusal", r.Body, "role-payload")
				}
				check("decrypt by name", cl.do(t, "POST", byName+"/secret", nil), tc.want.decrypt)

				check("create", cl.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "made by " + string(tc.role), "payload": c}), tc.want.create)
				check("update", cl.do(t, "PATCH", "/v5/credentials/"+target.ID, map[string]any{"payload": c, "description": "changed"}), tc.want.update)

				if tc.want.update != 200 {
					if diff := cmp.Diff(target, adm.get(t, target.ID)); diff != "" {
						t.Errorf("refused update changed the credential (-want +got):\n%s", diff)
					}
					if s := adm.decrypt(t, target.ID); s != "role-payload" {
						t.Errorf("refused update changed the payload to %q", s)
					}
				} else if s := adm.decrypt(t, target.ID); s != c {
					t.Errorf("allowed update did not change the payload")
				}
				if tc.want.create != 200 {
					wantDetail(t, adm.do(t, "GET", "/v5/credentials/name/"+pathName("made by "+string(tc.role)), nil), 404)
				}

				check("delete", cl.do(t, "DELETE", "/v5/credentials/"+target.ID, nil), tc.want.delete)
				if tc.want.delete != 200 {
					adm.get(t, target.ID)
				} else {
					wantDetail(t, adm.do(t, "GET", "/v5/credentials/"+target.ID, nil), 404)
				}
				notLogged(t, v, c)
			})
		}

		t.Run("reader-forbidden-before-not-found", func(t *testing.T) {
			// A reader learns nothing from decrypting ids that may or may not
			// exist: the refusal is the same.
			cl := as(v, v.NewMember(t, v.AccountID, "nosy reader", vault.RoleReader))
			existing := adm.createNamed(t, "exists", "x")
			got := cl.do(t, "POST", "/v5/credentials/"+existing.ID+"/secret", nil)
			want := cl.do(t, "POST", "/v5/credentials/"+vault.NewID()+"/secret", nil)
			wantDetail(t, got, 403)
			if diff := cmp.Diff(string(want.Body), string(got.Body)); diff != "" {
				t.Errorf("refusals differ (-nonexistent +existing):\n%s", diff)
			}
		})
	})
}
