package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/console"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func writeDB(t *testing.T, v *vaulttest.Vault, stmt string) {
	t.Helper()
	if _, err := v.RawDB(t).Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

func TestConsole_AuditPage(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		b := newBrowser(t, v)
		b.signIn(v.AdminKey)
		expectStatus(t, b.post("/ui/credentials", url.Values{"name": {"audited"}, "type": {"secret"}, "payload": {"p"}}), http.StatusSeeOther)
		p := b.get("/ui/audit?action=credential.create&credential=audited")
		expectStatus(t, p, http.StatusOK)
		if !strings.Contains(p.body, "✓ Verified") || !strings.Contains(p.body, "credential.create") || strings.Contains(p.body, "console.sign_in") {
			t.Fatalf("filtered audit page:\n%s", p.body)
		}
		expectStatus(t, b.get("/ui/audit?since=yesterday"), http.StatusBadRequest)
		if p := b.get("/ui/audit?since=2999-01-01T00:00"); !strings.Contains(p.body, "No audit records match") {
			t.Fatal("a future since still lists records")
		}
		// Paging: one record per page is too few to test with 200, so check
		// that a bad cursor is refused and a valid one answers.
		expectStatus(t, b.get("/ui/audit?before=x"), http.StatusBadRequest)
		if p := b.get("/ui/audit?before=2"); !strings.Contains(p.body, "vault.bootstrap") || strings.Contains(p.body, "credential.create") {
			t.Fatalf("audit page before=2 should show only record 1 (bootstrap):\n%.2000s", p.body)
		}
		// An edited record fails verification on the page.
		writeDB(t, v, `UPDATE audit_log SET outcome = 'permission_denied' WHERE action = 'credential.create'`)
		p = b.get("/ui/audit")
		if !strings.Contains(p.body, "✗ Verification failed") || !strings.Contains(p.body, "does not match its hash") {
			t.Fatalf("tampered record not reported:\n%.2000s", p.body)
		}
		// The bootstrap admin is an operator: the whole-trail verify sees it too.
		if p := b.get("/ui/audit?verify=all"); !strings.Contains(p.body, `id="verify-full"`) || !strings.Contains(p.body, "problem(s)") {
			t.Fatalf("whole-trail verify did not report the edit:\n%.2000s", p.body)
		}
	})
}

func TestConsole_AccountSwitch(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		m := v.NewMember(t, v.AccountID, "roamer", vault.RoleWriter)
		acct, err := v.App.Service.CreateAccount(ctx, "second", "")
		if err != nil {
			t.Fatal(err)
		}
		if err := v.App.Service.AddMembership(ctx, m.PrincipalID, acct.ID, vault.RoleReader); err != nil {
			t.Fatal(err)
		}
		elsewhere := v.NewTenant(t, "third", vault.RoleAdmin)
		b := newBrowser(t, v)
		b.signIn(m.Key)
		expectStatus(t, b.post("/ui/credentials", url.Values{"name": {"in-default"}, "type": {"secret"}, "payload": {"p"}}), http.StatusSeeOther)
		p := b.get("/ui/credentials")
		if !strings.Contains(p.body, `id="account-switch"`) || !strings.Contains(p.body, "second (reader)") || !strings.Contains(p.body, "in-default") {
			t.Fatalf("no account switcher:\n%.2000s", p.body)
		}
		expectStatus(t, b.post("/ui/account", url.Values{"account": {elsewhere.AccountID}}), http.StatusForbidden)
		expectStatus(t, b.post("/ui/account", url.Values{"account": {acct.ID}}), http.StatusSeeOther)
		p = b.get("/ui/credentials")
		if strings.Contains(p.body, "in-default") || !strings.Contains(p.body, "No credentials in this account yet") || strings.Contains(p.body, `id="new-credential"`) {
			t.Fatalf("after the switch the page still shows the first account or a writer's controls:\n%.2000s", p.body)
		}
		// The role is the one of the selected account: a reader there.
		expectStatus(t, b.post("/ui/credentials", url.Values{"name": {"nope"}, "type": {"secret"}, "payload": {"p"}}), http.StatusForbidden)
	})
}

func TestConsole_DSMPage(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		admin := &vault.Identity{Principal: vault.Principal{ID: v.PrincipalID, Kind: vault.PrincipalUser, Name: "admin"}, AccountID: v.AccountID, Role: vault.RoleAdmin}
		g, err := v.App.Service.CreateGroup(ctx, admin, vault.GroupInput{Name: ptr("payments")})
		if err != nil {
			t.Fatal(err)
		}
		size, yes := 2048, true
		o, err := v.App.Service.CreateSobject(ctx, admin, vault.SobjectInput{Name: ptr("oci-signing"), GroupID: &g.ID, ObjType: ptr("RSA"), KeySize: &size, AllowCredentialUse: &yes})
		if err != nil {
			t.Fatal(err)
		}
		ic, err := v.App.Service.CreateIntegrationCredential(ctx, admin, vault.IntegrationCredentialInput{Name: ptr("oci-prod"), GroupID: &g.ID,
			Details: &vault.CredentialDetails{Provider: vault.ProviderOCI, Auth: vault.AuthOCIAPIKey, UserOCID: "ocid1.user.oc1..u", TenantOCID: "ocid1.tenancy.oc1..t", SigningKey: o.KID}})
		if err != nil {
			t.Fatal(err)
		}
		b := newBrowser(t, v)
		b.signIn(v.AdminKey)
		p := b.get("/ui/dsm")
		expectStatus(t, p, http.StatusOK)
		for _, want := range []string{"payments", "oci-signing", "oci-prod", "signing_key", o.KID} {
			if !strings.Contains(p.body, want) {
				t.Errorf("DSM page lacks %q", want)
			}
		}
		if strings.Contains(p.body, "PRIVATE KEY") || strings.Contains(p.body, "BEGIN") {
			t.Fatal("the DSM page shows key material")
		}
		expectStatus(t, b.post("/ui/dsm/credentials/"+ic.ID+"/rotate", nil), http.StatusSeeOther)
		after, err := v.App.Service.GetIntegrationCredential(ctx, admin, ic.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after.Details.SigningKey == o.KID {
			t.Fatal("rotation did not replace the signing key")
		}
		// The replaced object is renamed as a DSM rotation renames it.
		old, _, err := v.App.Service.GetSobject(ctx, admin, vault.SobjectDescriptor{KID: o.KID})
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`^oci-signing \(rotated at \d{8}T\d{6}Z\)$`).MatchString(old.Name) {
			t.Fatalf("replaced object named %q, want DSM's \"oci-signing (rotated at <compact time>)\"", old.Name)
		}
		if p := b.get("/ui/dsm?notice=rotated"); !strings.Contains(p.body, after.Details.SigningKey) || !strings.Contains(p.body, "was rotated") {
			t.Fatal("the DSM page does not show the new reference")
		}
		// A reader sees the page without the rotate button; the server refuses anyway.
		r := v.NewMember(t, v.AccountID, "viewer", vault.RoleReader)
		rb := newBrowser(t, v)
		rb.signIn(r.Key)
		if p := rb.get("/ui/dsm"); p.status != http.StatusOK || strings.Contains(p.body, "/rotate") {
			t.Fatalf("reader DSM page: %d, rotate button shown: %v", p.status, strings.Contains(p.body, "/rotate"))
		}
		expectStatus(t, rb.post("/ui/dsm/credentials/"+ic.ID+"/rotate", nil), http.StatusForbidden)
	})
}

// passwords stands in for the management plane's password login (issue
// 12, wired by the server once merged): one user, whose identity it takes
// from an API key through the real Authenticate.
type passwords struct {
	v   *vaulttest.Vault
	key string
}

func (p passwords) LoginPassword(ctx context.Context, email, password string) (*vault.Identity, error) {
	if email != "ada@example.com" || password != "correct horse battery staple" {
		return nil, vault.Errorf(vault.KindUnauthenticated, "wrong email or password")
	}
	id, err := p.v.App.Service.Authenticate(ctx, p.key, "")
	if err != nil {
		return nil, err
	}
	id.KeyID, id.KeyExpiresAt = "", nil // a password session has no key
	return id, nil
}

func TestConsole_PasswordSignIn(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		mux := http.NewServeMux()
		console.Register(mux, console.Deps{Service: v.App.Service, Sessions: v.App.Store, Directory: v.App.Store, Audit: v.App.Store, Passwords: passwords{v: v, key: v.AdminKey}})
		srv := httptest.NewServer(mux)
		defer srv.Close()
		vv := *v
		vv.URL = srv.URL
		b := newBrowser(t, &vv)
		if p := b.get("/ui/login"); strings.Contains(p.body, `id="pw-off"`) {
			t.Fatal("password sign-in shown as not configured")
		}
		expectStatus(t, b.do(http.MethodPost, "/ui/login", url.Values{"email": {"ada@example.com"}, "password": {"wrong"}}), http.StatusUnauthorized)
		p := b.do(http.MethodPost, "/ui/login", url.Values{"email": {"ada@example.com"}, "password": {"correct horse battery staple"}})
		if p.status != http.StatusSeeOther {
			t.Fatalf("password sign-in: %d %s", p.status, p.body)
		}
		expectStatus(t, b.get("/ui/credentials"), http.StatusOK)
		expectStatus(t, b.post("/ui/logout", nil), http.StatusSeeOther)
		if p := b.get("/ui/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("signed out, still in: %d", p.status)
		}
	})
}

func TestConsole_CredentialForms(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		b := newBrowser(t, v)
		b.signIn(v.AdminKey)
		p := b.post("/ui/credentials", url.Values{"name": {"svc/token"}, "type": {"secret"}, "payload": {"first-canary"}})
		expectStatus(t, p, http.StatusSeeOther)
		credPath := strings.SplitN(p.header.Get("Location"), "?", 2)[0]
		id := strings.TrimPrefix(credPath, "/ui/credentials/")

		// A duplicate name shows the form again with the error, without the payload.
		p = b.post("/ui/credentials", url.Values{"name": {"svc/token"}, "type": {"secret"}, "payload": {"second-canary"}, "description": {"dup"}})
		expectStatus(t, p, http.StatusConflict)
		if !strings.Contains(p.body, "already exists") || strings.Contains(p.body, "second-canary") || !strings.Contains(p.body, `value="dup"`) {
			t.Fatalf("duplicate create form:\n%.2000s", p.body)
		}
		// Bad metadata is refused and changes nothing.
		expectStatus(t, b.post(credPath+"/edit", url.Values{"description": {"changed"}, "metadata": {"{not json"}}), http.StatusBadRequest)
		expectStatus(t, b.post(credPath+"/edit", url.Values{"description": {"changed"}, "metadata": {"[1]"}}), http.StatusBadRequest)
		got := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+id, nil).Object(t)
		if got["description"] != "" {
			t.Fatalf("a refused edit changed the description: %v", got["description"])
		}
		expectStatus(t, b.post(credPath+"/edit", url.Values{"description": {"rotated monthly"}, "metadata": {`{"owner": "platform"}`}}), http.StatusSeeOther)
		got = v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+id, nil).Object(t)
		if got["description"] != "rotated monthly" || got["credential_metadata"].(map[string]any)["owner"] != "platform" {
			t.Fatalf("edit not applied: %v", got)
		}
		// Replacing the payload makes a new version with the new secret.
		expectStatus(t, b.post(credPath+"/payload", url.Values{"payload": {""}}), http.StatusBadRequest)
		expectStatus(t, b.post(credPath+"/payload", url.Values{"payload": {"second-secret"}}), http.StatusSeeOther)
		sec := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil).Object(t)
		if sec["result"] != "second-secret" {
			t.Fatalf("payload after replace: %v", sec["result"])
		}
		// Deleting needs the exact name.
		expectStatus(t, b.post(credPath+"/delete", url.Values{"confirm_name": {"svc/tok"}}), http.StatusBadRequest)
		expectStatus(t, b.post(credPath+"/delete", url.Values{"confirm_name": {"svc/token"}}), http.StatusSeeOther)
		expectStatus(t, b.get(credPath), http.StatusNotFound)
	})
}

// TestConsole_WithoutStores: a console mounted without its stores (a
// server assembled without the vault's database) answers 503 with an
// explanation, and still serves its static files.
func TestConsole_WithoutStores(t *testing.T) {
	v := vaulttest.New(t, sqlstore.SQLite)
	mux := http.NewServeMux()
	console.Register(mux, console.Deps{Service: v.App.Service, Sessions: v.App.Store})
	for path, want := range map[string]int{"/ui/login": http.StatusServiceUnavailable, "/ui/credentials": http.StatusServiceUnavailable, "/ui/static/console.css": http.StatusOK} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != want {
			t.Errorf("GET %s = %d, want %d", path, rec.Code, want)
		}
		if rec.Header().Get("Content-Security-Policy") != console.CSP {
			t.Errorf("GET %s: no CSP header", path)
		}
	}
}
