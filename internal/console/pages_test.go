package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func writeDB(t *testing.T, v *vaulttest.Vault, stmt string) {
	t.Helper()
	pools := v.App.Store.Pools()
	db := pools["write"]
	if db == nil {
		db = pools["main"]
	}
	if _, err := db.Exec(stmt); err != nil {
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
