package app_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// load runs writers and readers against v until stop is closed, recording
// the acknowledged payload of every credential. warm is closed once 30
// operations were acknowledged.
func load(t *testing.T, v *vaulttest.Vault, stop <-chan struct{}, want *sync.Map, ops *atomic.Int64) (wg *sync.WaitGroup, warm <-chan struct{}) {
	wg = &sync.WaitGroup{}
	warmed := make(chan struct{})
	var once sync.Once
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i)
				payload := fmt.Sprintf("secret-%d-%d-%d", w, i, time.Now().UnixNano())
				r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": payload})
				if r.Status != 200 {
					t.Errorf("create during rekey: %d %s", r.Status, r.Body)
					return
				}
				id := r.Object(t)["id"].(string)
				want.Store(id, payload)
				if i%3 == 0 { // update the payload, too
					payload += "-v2"
					if r := v.SGP(t, v.AdminKey, "", "PATCH", "/v5/credentials/"+id, map[string]any{"payload": payload}); r.Status != 200 {
						t.Errorf("update during rekey: %d %s", r.Status, r.Body)
						return
					}
					want.Store(id, payload)
				}
				if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil); r.Status != 200 || r.Object(t)["result"] != payload {
					t.Errorf("decrypt during rekey: %d %s", r.Status, r.Body)
					return
				}
				if ops.Add(3) >= 30 {
					once.Do(func() { close(warmed) })
				}
			}
		}(w)
	}
	return wg, warmed
}

func checkAll(t *testing.T, v *vaulttest.Vault, want *sync.Map) int {
	n := 0
	want.Range(func(k, val any) bool {
		n++
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+k.(string)+"/secret", nil)
		if r.Status != 200 || r.Object(t)["result"] != val {
			t.Errorf("credential %s after rekey: %d %s", k, r.Status, r.Body)
		}
		return true
	})
	return n
}

func TestRekeyUnderLoad(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		oldPrimary := v.App.Keyring.PrimaryKeyID()
		var want sync.Map
		var ops atomic.Int64
		stop := make(chan struct{})
		wg, warm := load(t, v, stop, &want, &ops)
		// Some data under the old key first: wait for the writers' first
		// acknowledged rounds (a signal, not a guess at how long they take).
		select {
		case <-warm:
		case <-time.After(30 * time.Second):
			t.Fatal("the load wrote nothing")
		}
		rep, err := app.Rekey(ctx, v.Config, app.RekeyOptions{Grace: 2500 * time.Millisecond})
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("rekey: %v", err)
		}
		if rep.NewPrimary == oldPrimary || rep.Rewrapped == 0 {
			t.Fatalf("rekey report: %+v (old primary %d)", rep, oldPrimary)
		}
		if len(rep.Retired) != 1 || rep.Retired[0] != oldPrimary {
			t.Errorf("old key not retired: %+v", rep)
		}
		// The server follows the file: its primary is the new key.
		if got := v.App.Keyring.PrimaryKeyID(); got != rep.NewPrimary {
			t.Errorf("server primary %d, want %d", got, rep.NewPrimary)
		}
		inUse, err := v.App.Store.WrappingKeysInUse(ctx, crypto.WrappingKeyID)
		if err != nil {
			t.Fatal(err)
		}
		for id := range inUse {
			if id != rep.NewPrimary {
				t.Errorf("ciphertexts still wrapped by key %d: %d", id, inUse[id])
			}
		}
		n := checkAll(t, v, &want)
		t.Logf("%s: %d credentials, %d API operations during rotation, %d re-wrapped", v.Engine, n, ops.Load(), rep.Rewrapped)
	})
}

func TestRekeyResumesAfterInterruption(t *testing.T) {
	v := vaulttest.New(t, "sqlite")
	var want sync.Map
	for i := 0; i < 20; i++ {
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprint("c", i), "payload": fmt.Sprint("p", i)})
		want.Store(r.Object(t)["id"].(string), fmt.Sprint("p", i))
	}
	old := v.App.Keyring.PrimaryKeyID()
	// Interrupt the rotation right after the new key was added.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := app.Rekey(ctx, v.Config, app.RekeyOptions{Grace: time.Minute}); err == nil {
		t.Fatal("interrupted rekey reported success")
	}
	// Everything still opens: old data under the old key, the server has both.
	checkAll(t, v, &want)
	rep, err := app.Rekey(context.Background(), v.Config, app.RekeyOptions{Resume: true, Grace: 10 * time.Millisecond})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if rep.NewPrimary == old || rep.Rewrapped < 20 || len(rep.Retired) != 1 {
		t.Fatalf("resume report: %+v", rep)
	}
	checkAll(t, v, &want)
	// Running it again finds nothing to do.
	rep, err = app.Rekey(context.Background(), v.Config, app.RekeyOptions{Resume: true, Grace: 10 * time.Millisecond})
	if err != nil || rep.Rewrapped != 0 || len(rep.Retired) != 0 {
		t.Fatalf("second resume: %+v %v", rep, err)
	}
}

func TestRekeyAdminAPI(t *testing.T) {
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.RekeyGrace = 50 * time.Millisecond })
	r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "a", "payload": "before-rotation"})
	id := r.Object(t)["id"].(string)
	reader := v.NewMember(t, v.AccountID, "auditor", "reader")
	if r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", reader.Key); r.Status != 403 {
		t.Fatalf("reader started a rotation: %d %s", r.Status, r.Body)
	}
	otherAdmin := v.NewTenant(t, "other", "admin")
	if r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", otherAdmin.Key); r.Status != 403 {
		t.Fatalf("an admin of another account started a server-wide rotation: %d %s", r.Status, r.Body)
	}
	if r := v.Do(t, "POST", "/admin/v1/rekey", nil); r.Status != 401 {
		t.Fatalf("anonymous rotation: %d", r.Status)
	}
	old := v.App.Keyring.PrimaryKeyID()
	if r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey); r.Status != 202 {
		t.Fatalf("start: %d %s", r.Status, r.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := v.Do(t, "GET", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey).Object(t)
		if st["status"] == "done" {
			// The report uses the API's snake_case, never Go field names.
			rep, _ := st["report"].(map[string]any)
			if rep["new_primary_key_id"] != float64(v.App.Keyring.PrimaryKeyID()) {
				t.Errorf("report %v: new_primary_key_id is not the new primary %d", rep, v.App.Keyring.PrimaryKeyID())
			}
			for k := range rep {
				if strings.ToLower(k) != k {
					t.Errorf("report field %q is not snake_case", k)
				}
			}
			break
		}
		if st["status"] == "failed" || time.Now().After(deadline) {
			t.Fatalf("rotation status: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if v.App.Keyring.PrimaryKeyID() == old {
		t.Error("primary key unchanged after the rotation")
	}
	if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil); r.Object(t)["result"] != "before-rotation" {
		t.Errorf("after rotation: %s", r.Body)
	}
}

// rekeyStatus polls GET /admin/v1/rekey on v until done says it is over.
func rekeyStatus(t *testing.T, v *vaulttest.Vault, done func(st map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := v.Do(t, "GET", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey)
		if r.Status != 200 {
			t.Fatalf("rekey status: %d %s", r.Status, r.Body)
		}
		st := r.Object(t)
		if done(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("rekey status: %v", st)
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline, not waiting for an outcome
	}
}

// TestRekeyAdminAPI_SharedAndResumable: a rotation started through the
// admin API runs on the server's own store and keeps its state in the
// database: another server on the same database reports it and refuses a
// second one (409); a shutdown during the rotation cancels it, waits, and
// leaves it recorded as interrupted with its new key; a POST on another
// server resumes it (no third key) and finishes it.
func TestRekeyAdminAPI_SharedAndResumable(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		var want sync.Map
		for i := 0; i < 10; i++ {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprint("c", i), "payload": fmt.Sprint("p", i)})
			want.Store(r.Object(t)["id"].(string), fmt.Sprint("p", i))
		}
		old := v.App.Keyring.PrimaryKeyID()
		if st := rekeyStatus(t, v, func(map[string]any) bool { return true }); st["status"] != "idle" {
			t.Fatalf("status before any rotation: %v", st)
		}
		// A replica whose rotation waits (grace) long enough to be caught
		// running.
		r1 := v.Replica(t, func(c *app.Config) { c.RekeyGrace = time.Hour })
		start := r1.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey)
		if start.Status != 202 {
			t.Fatalf("start: %d %s", start.Status, start.Body)
		}
		jobID := start.Object(t)["id"]
		// The other server sees the job running, with its new key, and
		// refuses a second rotation.
		running := rekeyStatus(t, v, func(st map[string]any) bool { return st["new_primary_key_id"] != nil })
		if running["status"] != "running" || running["id"] != jobID {
			t.Fatalf("status on the other server: %v (job %v)", running, jobID)
		}
		newKey := running["new_primary_key_id"].(float64)
		if r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey); r.Status != 409 {
			t.Fatalf("second rotation while one runs: %d %s", r.Status, r.Body)
		}
		// Shut the rotating server down: Close returns once the job has
		// stopped and recorded that.
		r1.Close()
		st := rekeyStatus(t, v, func(map[string]any) bool { return true })
		if st["status"] != "interrupted" || st["id"] != jobID || st["new_primary_key_id"] != newKey || st["finished_at"] == nil {
			t.Fatalf("status after shutdown: %v", st)
		}
		checkAll(t, v, &want)
		// Resume on the other server.
		r := v.Do(t, "POST", "/admin/v1/rekey", nil, "x-api-key", v.AdminKey)
		if r.Status != 202 || r.Object(t)["resume"] != true {
			t.Fatalf("resume: %d %s", r.Status, r.Body)
		}
		done := rekeyStatus(t, v, func(st map[string]any) bool { return st["status"] != "running" })
		if done["status"] != "done" {
			t.Fatalf("resumed rotation: %v", done)
		}
		rep := done["report"].(map[string]any)
		if rep["new_primary_key_id"] != newKey || rep["rewrapped"].(float64) < 10 {
			t.Errorf("resumed report %v: want new primary %v and 10 re-wrapped", rep, newKey)
		}
		if ret, _ := rep["retired_key_ids"].([]any); len(ret) != 1 || ret[0] != float64(old) {
			t.Errorf("retired %v, want the old primary %d", rep["retired_key_ids"], old)
		}
		if ids, _ := v.App.Keyring.KeyIDs(); len(ids) != 1 || float64(ids[0]) != newKey {
			t.Errorf("keyset after the resumed rotation: %v, want only %v", ids, newKey)
		}
		checkAll(t, v, &want)
		// A server started later reports the same finished job.
		if st := rekeyStatus(t, v.Replica(t), func(map[string]any) bool { return true }); st["status"] != "done" || st["id"] != done["id"] {
			t.Errorf("status on a new server: %v, want %v", st, done)
		}
	})
}

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
