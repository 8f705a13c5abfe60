package audit_test

import (
	"context"
	"testing"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// refuseAudit makes every insert into the vault's audit trail fail inside
// the database, and returns the function that undoes it.
func refuseAudit(t *testing.T, v *vaulttest.Vault) (restore func()) {
	t.Helper()
	return vaulttest.FailInserts(t, v.RawDB(t), v.Engine, "audit_log")
}

// TestChangeAndRecordCommitTogether makes the audit trail's insert fail
// inside the database and checks that every kind of change is then refused
// with 503 AND rolled back — nothing is committed without its record — so
// that a retry succeeds instead of answering 409. Once the trail works again,
// every committed change has its record and the chain verifies.
func TestChangeAndRecordCommitTogether(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		dsm := func(method, path string, body any) *vaulttest.Response {
			return v.Do(t, method, path, body, "Authorization", "Basic "+v.AdminKey)
		}
		// Objects to update and delete while the trail is broken.
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "kept", "payload": "p1"})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		keptID := r.Object(t)["id"].(string)
		g := dsm("POST", "/sys/v1/groups", map[string]any{"name": "g1"})
		if g.Status != 200 {
			t.Fatalf("group: %d %s", g.Status, g.Body)
		}
		groupID := g.Object(t)["group_id"].(string)

		restore := refuseAudit(t, v)

		// SGP create: 503, and not committed.
		r = v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "refused", "payload": "p2"})
		if r.Status != 503 {
			t.Fatalf("SGP create with a failing audit trail: %d %s", r.Status, r.Body)
		}
		// SGP update and delete: 503, and nothing changed.
		if r := v.SGP(t, v.AdminKey, "", "PATCH", "/v5/credentials/"+keptID, map[string]any{"description": "changed"}); r.Status != 503 {
			t.Fatalf("SGP update: %d %s", r.Status, r.Body)
		}
		if r := v.SGP(t, v.AdminKey, "", "DELETE", "/v5/credentials/"+keptID, nil); r.Status != 503 {
			t.Fatalf("SGP delete: %d %s", r.Status, r.Body)
		}
		// DSM: group, security object and app creation, group deletion.
		if r := dsm("POST", "/sys/v1/groups", map[string]any{"name": "refused-group"}); r.Status != 503 {
			t.Fatalf("DSM group create: %d %s", r.Status, r.Body)
		}
		if r := dsm("POST", "/crypto/v1/keys", map[string]any{"name": "refused-key", "obj_type": "AES", "key_size": 256, "group_id": groupID}); r.Status != 503 {
			t.Fatalf("DSM key create: %d %s", r.Status, r.Body)
		}
		if r := dsm("POST", "/sys/v1/apps", map[string]any{"name": "refused-app", "default_group": groupID, "add_groups": []string{groupID}}); r.Status != 503 {
			t.Fatalf("DSM app create: %d %s", r.Status, r.Body)
		}
		if r := dsm("DELETE", "/sys/v1/groups/"+groupID, nil); r.Status != 503 {
			t.Fatalf("DSM group delete: %d %s", r.Status, r.Body)
		}
		// Administrative changes (the CLI's path): refused with Unavailable.
		if _, _, err := v.App.Service.CreateAPIKey(ctx, v.PrincipalID, "refused", 0); vault.KindOf(err) != vault.KindUnavailable {
			t.Fatalf("admin API key create with a failing audit trail: %v", err)
		}
		if _, err := v.App.Service.CreateAccount(ctx, "refused-account", ""); vault.KindOf(err) != vault.KindUnavailable {
			t.Fatalf("admin account create with a failing audit trail: %v", err)
		}

		restore()

		// Nothing refused was committed; what was kept is unchanged.
		r = v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/"+keptID, nil)
		if r.Status != 200 || r.Object(t)["description"] == "changed" {
			t.Fatalf("the refused update or delete was committed: %d %s", r.Status, r.Body)
		}
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials?name=refused&limit=10", nil); r.Status != 200 || len(r.Object(t)["items"].([]any)) != 0 {
			t.Fatalf("the refused create was committed: %d %s", r.Status, r.Body)
		}
		if r := dsm("GET", "/sys/v1/groups", nil); r.Status != 200 || len(r.JSON(t).([]any)) != 1 {
			t.Fatalf("the refused group create or delete was committed: %d %s", r.Status, r.Body)
		}
		if r := dsm("POST", "/crypto/v1/keys/info", map[string]any{"name": "refused-key"}); r.Status != 404 {
			t.Fatalf("the refused key create was committed: %d %s", r.Status, r.Body)
		}
		if r := dsm("GET", "/sys/v1/apps", nil); r.Status != 200 || len(r.JSON(t).([]any)) != 0 {
			t.Fatalf("the refused app create was committed: %d %s", r.Status, r.Body)
		}
		keys, err := v.App.Store.ListAPIKeys(ctx, v.PrincipalID)
		if err != nil || len(keys) != 1 {
			t.Fatalf("the refused API key was committed: %d keys, %v", len(keys), err)
		}
		accts, err := v.App.Store.ListAccounts(ctx)
		if err != nil || len(accts) != 1 {
			t.Fatalf("the refused account was committed: %d accounts, %v", len(accts), err)
		}

		// The client's retry succeeds (before: 409, the refused create existed).
		r = v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "refused", "payload": "p2"})
		if r.Status != 200 {
			t.Fatalf("retry of the refused create: %d %s", r.Status, r.Body)
		}
		retried := r.Object(t)["id"].(string)

		// Every committed change has its record, and the chain is whole.
		rep, err := audit.Verify(ctx, v.App.Store, audit.VerifyOptions{Keys: v.App.Keyring})
		if err != nil || !rep.OK() || !rep.HeadAuthenticated {
			t.Fatalf("verify: %v %+v", err, rep)
		}
		created := map[string]bool{}
		if err := v.App.Store.ScanAudit(ctx, func(rec vault.AuditRecord) error {
			if rec.Outcome == "success" {
				created[rec.Action+" "+rec.ObjectID] = true
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"credential.create " + keptID, "credential.create " + retried, "group.create " + groupID} {
			if !created[want] {
				t.Errorf("no success record %q", want)
			}
		}
	})
}
