package app_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestRekeyReauthenticatesAuditHead: the audit head is MACed under a key
// derived from a master key, so a rotation that retires that key must first
// re-authenticate the head under the new one (it records itself, which does
// that); afterwards the trail verifies and changes still work.
func TestRekeyReauthenticatesAuditHead(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "a", "payload": "p"}); r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		old := v.App.Keyring.PrimaryKeyID()
		rep, err := app.Rekey(ctx, v.Config, app.RekeyOptions{Grace: 10 * time.Millisecond, Actor: vault.OperatorIdentity("cli:tester")})
		if err != nil || len(rep.Retired) != 1 || rep.Retired[0] != old {
			t.Fatalf("rekey: %+v %v", rep, err)
		}
		head, err := v.App.Store.AuditHead(ctx)
		if err != nil || len(head.MAC) < 4 || binary.BigEndian.Uint32(head.MAC) != rep.NewPrimary {
			t.Fatalf("head after rekey: %+v %v (new primary %d)", head, err, rep.NewPrimary)
		}
		vr, err := audit.Verify(ctx, v.App.Store, audit.VerifyOptions{Keys: v.App.Keyring})
		if err != nil || !vr.OK() || !vr.HeadAuthenticated {
			t.Fatalf("verify after rekey: %+v %v", vr, err)
		}
		found := false // the rotation's record belongs to no account: scan the whole trail
		_ = v.App.Store.ScanAudit(ctx, func(r vault.AuditRecord) error {
			found = found || (r.Action == "master_key.rewrap" && r.PrincipalID == "operator:cli:tester")
			return nil
		})
		if !found {
			t.Error("the rotation is not in the audit trail")
		}
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "b", "payload": "p"}); r.Status != 200 {
			t.Fatalf("create after rekey: %d %s", r.Status, r.Body)
		}
	})
}

// TestRekeyAdminAPIFailsClosed: a rotation requested through the admin API
// whose audit record cannot be written is refused (503) and not started
// (before, the record's error was discarded and the rotation ran unrecorded).
func TestRekeyAdminAPIFailsClosed(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		raw := v.RawDB(t)
		// Rename the trail's table away: every audit write fails.
		if _, err := raw.Exec(`ALTER TABLE audit_log RENAME TO audit_log_moved`); err != nil {
			t.Fatal(err)
		}
		old := v.App.Keyring.PrimaryKeyID()
		if r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey); r.Status != 503 {
			t.Fatalf("rotation with a failing audit trail: %d %s", r.Status, r.Body)
		}
		if _, err := raw.Exec(`ALTER TABLE audit_log_moved RENAME TO audit_log`); err != nil {
			t.Fatal(err)
		}
		if st := v.Do(t, "GET", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey).Object(t); st["status"] != "idle" {
			t.Fatalf("a refused rotation started: %v", st)
		}
		if v.App.Keyring.PrimaryKeyID() != old {
			t.Fatal("the master key changed")
		}
	})
}
