package sgp_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestCredentials_CreateValidation: every malformed create body is a
// FastAPI 422 at the right loc, never echoes the payload, and creates
// nothing.
func TestCredentials_CreateValidation(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		c := canary(t)
		cases := []struct {
			name string
			body any // a string is sent as is
			typ  string
			loc  []any
		}{
			{"err/invalid-json", `{"type": "key", "name": "n", "payload": "` + c + `"`, "json_invalid", []any{"body", 0}},
			{"err/trailing-garbage", `{"type": "key", "name": "n", "payload": "` + c + `"} x`, "json_invalid", []any{"body", 0}},
			{"err/empty-body", "", "missing", []any{"body"}},
			{"err/body-is-array", `[{"type": "key", "name": "n", "payload": "` + c + `"}]`, "model_attributes_type", []any{"body"}},
			{"err/body-is-string", `"` + c + `"`, "model_attributes_type", []any{"body"}},
			{"err/body-is-null", `null`, "model_attributes_type", []any{"body"}},
			{"err/missing-type", map[string]any{"name": "n", "payload": c}, "missing", []any{"body", "type"}},
			{"err/null-type", map[string]any{"type": nil, "name": "n", "payload": c}, "missing", []any{"body", "type"}},
			{"err/empty-type", map[string]any{"type": "", "name": "n", "payload": c}, "string_too_short", []any{"body", "type"}},
			{"err/type-not-string", map[string]any{"type": true, "name": "n", "payload": c}, "string_type", []any{"body", "type"}},
			{"err/missing-name", map[string]any{"type": "key", "payload": c}, "missing", []any{"body", "name"}},
			{"err/empty-name", map[string]any{"type": "key", "name": "", "payload": c}, "string_too_short", []any{"body", "name"}},
			{"err/name-is-number", map[string]any{"type": "key", "name": 1, "payload": c}, "string_type", []any{"body", "name"}},
			{"err/name-too-long", map[string]any{"type": "key", "name": strings.Repeat("n", vault.MaxNameLength+1), "payload": c}, "value_error", []any{"body", "name"}},
			{"err/name-with-nul", map[string]any{"type": "key", "name": "a\x00b", "payload": c}, "value_error", []any{"body", "name"}},
			{"err/type-with-nul", map[string]any{"type": "key\x00", "name": "n", "payload": c}, "value_error", []any{"body", "type"}},
			{"err/description-with-nul", map[string]any{"type": "key", "name": "n", "payload": c, "description": "\x00"}, "value_error", []any{"body", "description"}},
			{"err/missing-payload", map[string]any{"type": "key", "name": "n"}, "missing", []any{"body", "payload"}},
			{"err/empty-payload", map[string]any{"type": "key", "name": "n", "payload": ""}, "string_too_short", []any{"body", "payload"}},
			{"err/payload-is-object", map[string]any{"type": "key", "name": "n", "payload": map[string]any{"secret": c}}, "string_type", []any{"body", "payload"}},
			{"err/payload-is-number", map[string]any{"type": "key", "name": "n", "payload": 12345}, "string_type", []any{"body", "payload"}},
			{"err/description-is-number", map[string]any{"type": "key", "name": "n", "payload": c, "description": 5}, "string_type", []any{"body", "description"}},
			{"err/metadata-is-string", map[string]any{"type": "key", "name": "n", "payload": c, "credential_metadata": "x"}, "dict_type", []any{"body", "credential_metadata"}},
			{"err/metadata-is-array", map[string]any{"type": "key", "name": "n", "payload": c, "credential_metadata": []any{c}}, "dict_type", []any{"body", "credential_metadata"}},
			{"err/json-type-payload-not-json", map[string]any{"type": "json", "name": "n", "payload": c}, "value_error", []any{"body", "payload"}},
			{"err/json-type-payload-truncated-json", map[string]any{"type": "json", "name": "n", "payload": `{"k": "` + c + `"`}, "value_error", []any{"body", "payload"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := a.do(t, "POST", "/v5/credentials", tc.body)
				want422At(t, r, tc.typ, tc.loc...)
				notContains(t, "422 body", r.Body, c)
			})
		}

		t.Run("err/everything-missing", func(t *testing.T) {
			items := want422(t, a.do(t, "POST", "/v5/credentials", map[string]any{}))
			var locs [][]any
			for _, it := range items {
				locs = append(locs, it.Loc)
			}
			want := [][]any{{"body", "type"}, {"body", "name"}, {"body", "payload"}}
			if diff := cmp.Diff(want, locs); diff != "" {
				t.Errorf("locs (-want +got):\n%s", diff)
			}
		})

		t.Run("nothing-created", func(t *testing.T) {
			if p := a.list(t, nil); p.Total != 0 || len(p.Items) != 0 {
				t.Errorf("rejected creates left %d credentials behind", p.Total)
			}
			notLogged(t, v, c)
		})
	})
}

func TestCredentials_UpdateValidation(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		orig := a.create(t, map[string]any{"type": "key", "name": "target", "payload": "keep", "credential_metadata": map[string]any{"m": "1"}})
		path := "/v5/credentials/" + orig.ID
		c := canary(t)
		cases := []struct {
			name string
			body any
			typ  string
			loc  []any
		}{
			{"err/invalid-json", `{"payload": "` + c + `"`, "json_invalid", []any{"body", 0}},
			{"err/empty-body", "", "missing", []any{"body"}},
			{"err/body-is-array", `["` + c + `"]`, "model_attributes_type", []any{"body"}},
			{"err/empty-name", map[string]any{"name": "", "payload": c}, "string_too_short", []any{"body", "name"}},
			{"err/name-is-number", map[string]any{"name": 1, "payload": c}, "string_type", []any{"body", "name"}},
			{"err/empty-type", map[string]any{"type": ""}, "string_too_short", []any{"body", "type"}},
			{"err/name-with-nul", map[string]any{"name": "x\x00", "payload": c}, "value_error", []any{"body", "name"}},
			{"err/type-with-nul", map[string]any{"type": "\x00"}, "value_error", []any{"body", "type"}},
			{"err/description-with-nul", map[string]any{"description": "a\x00b", "payload": c}, "value_error", []any{"body", "description"}},
			{"err/empty-payload", map[string]any{"payload": ""}, "string_too_short", []any{"body", "payload"}},
			{"err/payload-is-array", map[string]any{"payload": []any{c}}, "string_type", []any{"body", "payload"}},
			{"err/metadata-is-string", map[string]any{"credential_metadata": "x", "payload": c}, "dict_type", []any{"body", "credential_metadata"}},
			{"err/json-type-text-payload", map[string]any{"type": "json", "payload": c}, "value_error", []any{"body", "payload"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				r := a.do(t, "PATCH", path, tc.body)
				want422At(t, r, tc.typ, tc.loc...)
				notContains(t, "422 body", r.Body, c)
			})
		}

		t.Run("unchanged", func(t *testing.T) {
			a.wantUnchanged(t, orig, "keep")
			notLogged(t, v, c)
		})
	})
}

func TestCredentials_ListValidation(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		existing := a.createNamed(t, "one", "p")
		cases := []struct {
			name  string
			query url.Values
			typ   string
			loc   []any
		}{
			{"err/limit-zero", url.Values{"limit": {"0"}}, "greater_than_equal", []any{"query", "limit"}},
			{"err/limit-negative", url.Values{"limit": {"-1"}}, "greater_than_equal", []any{"query", "limit"}},
			{"err/limit-above-max", url.Values{"limit": {"10001"}}, "less_than_equal", []any{"query", "limit"}},
			{"err/limit-not-integer", url.Values{"limit": {"abc"}}, "int_parsing", []any{"query", "limit"}},
			{"err/limit-fraction", url.Values{"limit": {"1.5"}}, "int_parsing", []any{"query", "limit"}},
			{"err/limit-empty", url.Values{"limit": {""}}, "int_parsing", []any{"query", "limit"}},
			{"err/limit-overflow", url.Values{"limit": {"99999999999999999999"}}, "int_parsing", []any{"query", "limit"}},
			{"err/unknown-sort-by", url.Values{"sort_by": {"payload"}}, "literal_error", []any{"query", "sort_by"}},
			{"err/sort-by-wrong-case", url.Values{"sort_by": {"Name"}}, "literal_error", []any{"query", "sort_by"}},
			{"err/bad-sort-order", url.Values{"sort_order": {"sideways"}}, "enum", []any{"query", "sort_order"}},
			{"err/sort-order-wrong-case", url.Values{"sort_order": {"DESC"}}, "enum", []any{"query", "sort_order"}},
			{"err/both-cursors", url.Values{"starting_after": {existing.ID}, "ending_before": {existing.ID}}, "value_error", []any{"query", "ending_before"}},
			{"err/unknown-starting-after", url.Values{"starting_after": {vault.NewID()}}, "value_error", []any{"query", "starting_after"}},
			{"err/unknown-ending-before", url.Values{"ending_before": {"no-such-id"}}, "value_error", []any{"query", "ending_before"}},
			// Values no id can have are unknown ids on every engine (PostgreSQL
			// text cannot even hold them).
			{"err/cursor-with-nul", url.Values{"starting_after": {"\x00"}}, "value_error", []any{"query", "starting_after"}},
			{"err/cursor-invalid-utf8", url.Values{"ending_before": {"\xff"}}, "value_error", []any{"query", "ending_before"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				want422At(t, a.do(t, "GET", "/v5/credentials?"+tc.query.Encode(), nil), tc.typ, tc.loc...)
			})
		}

		for _, q := range []url.Values{
			{"limit": {"1"}},
			{"limit": {"10000"}},
			{"sort_order": {"asc"}},
			{"sort_order": {"desc"}},
			{"sort_by": {"name"}, "sort_order": {"desc"}, "limit": {"5"}},
		} {
			t.Run("ok/"+q.Encode(), func(t *testing.T) {
				p := a.list(t, q)
				if len(p.Items) != 1 || p.Total != 1 {
					t.Errorf("page = %+v", p)
				}
			})
		}
	})
}

// sgpOps is every operation of the contract, addressed at credential c.
func sgpOps(c credential) []struct{ name, method, path string } {
	return []struct{ name, method, path string }{
		{"create", "POST", "/v5/credentials"},
		{"list", "GET", "/v5/credentials"},
		{"get", "GET", "/v5/credentials/" + c.ID},
		{"get-by-name", "GET", "/v5/credentials/name/" + pathName(c.Name)},
		{"update", "PATCH", "/v5/credentials/" + c.ID},
		{"delete", "DELETE", "/v5/credentials/" + c.ID},
		{"decrypt", "POST", "/v5/credentials/" + c.ID + "/secret"},
		{"decrypt-by-name", "POST", "/v5/credentials/name/" + pathName(c.Name) + "/secret"},
	}
}

// opBody is a valid request body for method, or nil.
func opBody(method, payload string) any {
	switch method {
	case "POST":
		return map[string]any{"type": "key", "name": "new-" + payload, "payload": payload}
	case "PATCH":
		return map[string]any{"payload": payload}
	}
	return nil
}

// authFixture is a vault with one credential, for the authentication tests.
// Each failure class gets a fresh vault: failed authentications are rate
// limited per client address, and every request here comes from 127.0.0.1.
type authFixture struct {
	v      *vaulttest.Vault
	target credential
	canary string
}

func newAuthFixture(t *testing.T, v *vaulttest.Vault) *authFixture {
	t.Helper()
	return &authFixture{v: v, target: admin(v).createNamed(t, "auth target", "target-payload"), canary: canary(t)}
}

// expect sends every operation with headers and wants status with a
// FastAPI {"detail": "…"} body that never echoes the request's payload;
// then checks that nothing changed.
func (f *authFixture) expect(t *testing.T, status int, headers ...string) {
	t.Helper()
	for _, op := range sgpOps(f.target) {
		body := opBody(op.method, f.canary)
		if op.method == "POST" && op.path != "/v5/credentials" {
			body = nil
		}
		r := f.v.Do(t, op.method, op.path, body, headers...)
		if r.Status != status {
			t.Errorf("%s: status %d, want %d: %s", op.name, r.Status, status, r.Body)
			continue
		}
		wantDetail(t, r, status)
		notContains(t, op.name+" error body", r.Body, f.canary)
	}
	a := admin(f.v)
	a.wantUnchanged(t, f.target, "target-payload")
	if p := a.list(t, nil); p.Total != 1 {
		t.Errorf("total = %d: a rejected request created something", p.Total)
	}
	notLogged(t, f.v, f.canary, f.v.AdminKey)
}

func TestAuth_Unauthenticated(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []authCase{
		{"err/missing-key", func(*testing.T, *vaulttest.Vault) []string { return nil }},
		{"err/empty-key", func(*testing.T, *vaulttest.Vault) []string { return []string{"x-api-key", ""} }},
		{"err/unknown-key", func(*testing.T, *vaulttest.Vault) []string { return []string{"x-api-key", "not-a-key"} }},
		{"err/unknown-well-formed-key", func(*testing.T, *vaulttest.Vault) []string {
			return []string{"x-api-key", vault.NewAPIKeySecret(vault.NewID())}
		}},
		{"err/key-with-extra-character", func(_ *testing.T, v *vaulttest.Vault) []string { return []string{"x-api-key", v.AdminKey + "x"} }},
		{"err/key-in-authorization-header", func(_ *testing.T, v *vaulttest.Vault) []string {
			return []string{"Authorization", "Bearer " + v.AdminKey}
		}},
		{"err/unknown-key-with-account", func(_ *testing.T, v *vaulttest.Vault) []string {
			return []string{"x-api-key", "nope", "x-selected-account-id", v.AccountID}
		}},
		{"err/revoked-key", func(t *testing.T, v *vaulttest.Vault) []string {
			k, secret, err := v.App.Service.CreateAPIKey(ctx, v.PrincipalID, "to-revoke", 0)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, v.SGP(t, secret, "", "GET", "/v5/credentials", nil), 200)
			if err := v.App.Service.RevokeAPIKey(ctx, k.ID); err != nil {
				t.Fatal(err)
			}
			return []string{"x-api-key", secret}
		}},
		{"err/expired-key", func(t *testing.T, v *vaulttest.Vault) []string {
			const ttl = time.Minute
			_, secret, err := v.App.Service.CreateAPIKey(ctx, v.PrincipalID, "short-lived", ttl)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, v.SGP(t, secret, "", "GET", "/v5/credentials", nil), 200)
			v.Clock.Advance(ttl + time.Second) // the vault's clock, not a sleep
			return []string{"x-api-key", secret}
		}},
	}
	runAuthCases(t, 401, cases)
}

func TestAuth_Forbidden(t *testing.T) {
	t.Parallel()
	cases := []authCase{
		{"err/account-not-a-member", func(t *testing.T, v *vaulttest.Vault) []string {
			other := v.NewTenant(t, "other", vault.RoleAdmin)
			return []string{"x-api-key", other.Key, "x-selected-account-id", v.AccountID}
		}},
		{"err/account-unknown", func(_ *testing.T, v *vaulttest.Vault) []string {
			return []string{"x-api-key", v.AdminKey, "x-selected-account-id", vault.NewID()}
		}},
	}
	runAuthCases(t, 403, cases)
}

// authCase names a request's authentication headers.
type authCase struct {
	name    string
	headers func(t *testing.T, v *vaulttest.Vault) []string
}

// runAuthCases checks, on both engines, that every SGP operation sent with
// each case's headers answers status (authFixture.expect).
func runAuthCases(t *testing.T, status int, cases []authCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
				f := newAuthFixture(t, v)
				f.expect(t, status, tc.headers(t, v)...)
			})
		})
	}
}

func TestAuth_SelectedAccount(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		inDefaultImplicit := admin(v)
		home := inDefaultImplicit.createNamed(t, "at-home", "p")
		other := v.NewTenant(t, "other", vault.RoleAdmin)
		// The admin becomes a writer in the other account; the header
		// decides where its requests act.
		if err := v.App.Service.AddMembership(ctx, v.PrincipalID, other.AccountID, vault.RoleWriter); err != nil {
			t.Fatal(err)
		}
		inOther := api{v: v, key: v.AdminKey, account: other.AccountID}
		made := inOther.createNamed(t, "made-in-other", "p")

		t.Run("ok/header-selects-account", func(t *testing.T) {
			for _, cl := range []api{inOther, as(v, other), {v: v, key: v.AdminKey, account: "  " + other.AccountID + " "}} {
				if got := ids(cl.list(t, nil).Items); !cmp.Equal(got, []string{made.ID}) {
					t.Errorf("view of the other account = %v, want [%s]", got, made.ID)
				}
				wantDetail(t, cl.do(t, "GET", "/v5/credentials/"+home.ID, nil), 404)
			}
		})

		t.Run("ok/no-header-is-default-account", func(t *testing.T) {
			for _, cl := range []api{inDefaultImplicit, {v: v, key: v.AdminKey, account: v.AccountID}} {
				if got := ids(cl.list(t, nil).Items); !cmp.Equal(got, []string{home.ID}) {
					t.Errorf("view of the default account = %v, want [%s]", got, home.ID)
				}
				wantDetail(t, cl.do(t, "GET", "/v5/credentials/"+made.ID, nil), 404)
			}
		})

		t.Run("ok/role-is-per-account", func(t *testing.T) {
			if made.CreatedByUserID != v.PrincipalID {
				t.Errorf("created_by_user_id = %q, want the admin %q", made.CreatedByUserID, v.PrincipalID)
			}
			// Demoted to reader in the other account, still admin at home.
			if err := v.App.Service.AddMembership(ctx, v.PrincipalID, other.AccountID, vault.RoleReader); err != nil {
				t.Fatal(err)
			}
			wantDetail(t, inOther.do(t, "POST", "/v5/credentials", opBody("POST", "x")), 403)
			wantDetail(t, inOther.do(t, "POST", "/v5/credentials/"+made.ID+"/secret", nil), 403)
			inOther.get(t, made.ID)
			inDefaultImplicit.createNamed(t, "still-admin-at-home", "p")
		})
	})
}

func TestCredentials_TooLarge(t *testing.T) {
	t.Parallel()
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		t.Run("default-limit", func(t *testing.T) {
			v := vaulttest.New(t, engine)
			tooLarge(t, v, vault.DefaultMaxPayload)
		})
		t.Run("configured-limit", func(t *testing.T) {
			v := vaulttest.New(t, engine, func(c *app.Config) { c.MaxPayload = 1000 })
			tooLarge(t, v, 1000)
		})
	})
}

func tooLarge(t *testing.T, v *vaulttest.Vault, limit int) {
	a := admin(v)
	c := canary(t)
	pad := func(n int) string { return c + strings.Repeat("x", n-len(c)) }

	t.Run("ok/payload-at-limit", func(t *testing.T) {
		got := a.create(t, map[string]any{"type": "key", "name": "at-limit", "payload": pad(limit)})
		if s := a.decrypt(t, got.ID); s != pad(limit) {
			t.Errorf("payload at the limit does not round-trip (len %d)", len(s))
		}
		r := a.do(t, "PATCH", "/v5/credentials/"+got.ID, map[string]any{"payload": pad(limit)})
		wantStatus(t, r, 200)
	})

	t.Run("ok/multibyte-payload-at-limit", func(t *testing.T) {
		// The limit counts bytes: limit/2 two-byte characters fit.
		p := strings.Repeat("é", limit/2)
		got := a.create(t, map[string]any{"type": "key", "name": "multibyte", "payload": p})
		if s := a.decrypt(t, got.ID); s != p {
			t.Error("multi-byte payload does not round-trip")
		}
	})

	t.Run("err/create-payload-over-limit", func(t *testing.T) {
		r := a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "too-big", "payload": pad(limit + 1)})
		msg := wantDetail(t, r, 413)
		if !strings.Contains(msg, fmt.Sprint(limit)) {
			t.Errorf("413 message %q does not state the limit %d", msg, limit)
		}
		notContains(t, "413 body", r.Body, c)
		wantDetail(t, a.do(t, "GET", "/v5/credentials/name/too-big", nil), 404)
	})

	t.Run("err/update-payload-over-limit", func(t *testing.T) {
		orig := a.createNamed(t, "grow", "small")
		r := a.do(t, "PATCH", "/v5/credentials/"+orig.ID, map[string]any{"payload": pad(limit + 1)})
		wantDetail(t, r, 413)
		notContains(t, "413 body", r.Body, c)
		if s := a.decrypt(t, orig.ID); s != "small" {
			t.Errorf("payload changed to %d bytes by a rejected PATCH", len(s))
		}
	})

	t.Run("err/body-over-limit", func(t *testing.T) {
		// The body limit is above the payload limit (room for JSON escaping
		// and metadata); a body beyond it is refused before it is parsed.
		huge := strings.Repeat("d", int(3*limit)+128<<10)
		for _, method := range []string{"POST", "PATCH"} {
			orig := a.createNamed(t, "body-"+method, "small")
			path := "/v5/credentials"
			if method == "PATCH" {
				path += "/" + orig.ID
			}
			r := a.do(t, method, path, map[string]any{"type": "key", "name": "body-too-big", "payload": c, "description": huge})
			wantDetail(t, r, 413)
			notContains(t, "413 body", r.Body, c)
			if s := a.decrypt(t, orig.ID); s != "small" {
				t.Errorf("%s: payload changed by a rejected request", method)
			}
		}
		wantDetail(t, a.do(t, "GET", "/v5/credentials/name/body-too-big", nil), 404)
	})

	t.Run("err/chunked-body-over-limit", func(t *testing.T) {
		// Without a Content-Length the limit still applies while reading.
		huge := `{"type":"key","name":"chunked","payload":"` + c + `","description":"` + strings.Repeat("d", int(3*limit)+128<<10) + `"}`
		req, err := http.NewRequest("POST", v.URL+"/v5/credentials", struct{ io.Reader }{strings.NewReader(huge)})
		if err != nil {
			t.Fatal(err)
		}
		if req.ContentLength != 0 {
			t.Fatalf("request has Content-Length %d; want it unknown (chunked)", req.ContentLength)
		}
		req.Header.Set("x-api-key", v.AdminKey)
		resp, err := v.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r := &vaulttest.Response{Status: resp.StatusCode, Header: resp.Header, Body: body}
		wantDetail(t, r, 413)
		notContains(t, "413 body", r.Body, c)
	})

	t.Run("no-leak", func(t *testing.T) {
		notLogged(t, v, c)
	})
}
