package admin_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// ReplicaBound is how long after a change on one replica a revoked key, a
// disabled user or a deleted principal may still work on another: the
// authentication cache's bound, sqlstore.RevocationBound (1 s; issue 12
// allows up to 1 s on other replicas). The replica that made the change
// honours it at once.
const ReplicaBound = sqlstore.RevocationBound

type caller struct {
	v   *vaulttest.Vault
	key string
}

func (c caller) do(t *testing.T, method, path string, body any) *vaulttest.Response {
	t.Helper()
	if strings.HasPrefix(c.key, "cvs_") {
		return c.v.Do(t, method, path, body, "Authorization", "Bearer "+c.key)
	}
	return c.v.Do(t, method, path, body, "x-api-key", c.key)
}

func (c caller) want(t *testing.T, status int, method, path string, body any) map[string]any {
	t.Helper()
	r := c.do(t, method, path, body)
	if r.Status != status {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, r.Status, status, r.Body)
	}
	if len(r.Body) == 0 {
		return nil
	}
	return r.Object(t)
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

// world is an operator, and two accounts A and B with an admin each and a
// writer in A, all created through the admin API.
type world struct {
	op, adminA, writerA, adminB caller
	acctA, acctB                string
	writerAID, adminAID         string
}

func newWorld(t *testing.T, v *vaulttest.Vault) world {
	t.Helper()
	op := caller{v, v.AdminKey}
	w := world{op: op}
	w.acctA = str(op.want(t, 201, "POST", "/admin/v1/accounts", map[string]any{"name": "acme"}), "id")
	w.acctB = str(op.want(t, 201, "POST", "/admin/v1/accounts", map[string]any{"name": "globex"}), "id")
	mk := func(acct, name, role string) (string, caller) {
		id := str(op.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": name, "account_id": acct, "role": role, "kind": "service_account"}), "id")
		key := str(op.want(t, 201, "POST", "/admin/v1/principals/"+id+"/api-keys", map[string]any{"name": "k"}), "api_key")
		return id, caller{v, key}
	}
	w.adminAID, w.adminA = mk(w.acctA, "alice", "admin")
	w.writerAID, w.writerA = mk(w.acctA, "walt", "writer")
	_, w.adminB = mk(w.acctB, "bob", "admin")
	return w
}

func TestAccountsByRole(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		// Create: operators only.
		w.adminA.want(t, 403, "POST", "/admin/v1/accounts", map[string]any{"name": "x"})
		w.writerA.want(t, 403, "POST", "/admin/v1/accounts", map[string]any{"name": "x"})
		w.op.want(t, 409, "POST", "/admin/v1/accounts", map[string]any{"name": "acme"})
		w.op.want(t, 400, "POST", "/admin/v1/accounts", map[string]any{"name": ""})
		w.op.want(t, 400, "POST", "/admin/v1/accounts", map[string]any{"name": "x", "bogus": 1})
		// List: operators see all, others their own.
		if items := w.op.want(t, 200, "GET", "/admin/v1/accounts", nil)["items"].([]any); len(items) != 3 {
			t.Fatalf("operator sees %d accounts, want 3", len(items))
		}
		items := w.adminA.want(t, 200, "GET", "/admin/v1/accounts", nil)["items"].([]any)
		if len(items) != 1 || str(items[0].(map[string]any), "id") != w.acctA {
			t.Fatalf("admin of A sees %v", items)
		}
		// Get: members and operators.
		w.writerA.want(t, 200, "GET", "/admin/v1/accounts/"+w.acctA, nil)
		w.adminB.want(t, 404, "GET", "/admin/v1/accounts/"+w.acctA, nil)
		// Rename: admins of the account and operators.
		w.writerA.want(t, 403, "PATCH", "/admin/v1/accounts/"+w.acctA, map[string]any{"name": "acme2"})
		w.adminB.want(t, 404, "PATCH", "/admin/v1/accounts/"+w.acctA, map[string]any{"name": "acme2"})
		if a := w.adminA.want(t, 200, "PATCH", "/admin/v1/accounts/"+w.acctA, map[string]any{"name": "acme2"}); str(a, "name") != "acme2" {
			t.Fatalf("rename: %v", a)
		}
		w.op.want(t, 409, "PATCH", "/admin/v1/accounts/"+w.acctA, map[string]any{"name": "globex"})
		// Delete: operators only; refused while the account holds anything
		// unless forced; never the system account.
		w.adminA.want(t, 403, "DELETE", "/admin/v1/accounts/"+w.acctA, nil)
		w.op.want(t, 409, "DELETE", "/admin/v1/accounts/"+w.acctA, nil)
		w.op.want(t, 409, "DELETE", "/admin/v1/accounts/"+v.AccountID+"?force=true", nil)
		r := w.adminA.do(t, "POST", "/v5/credentials", map[string]any{"name": "db", "type": "password", "payload": "s3cret-payload"})
		if r.Status != 200 {
			t.Fatalf("create credential: %d %s", r.Status, r.Body)
		}
		w.op.want(t, 204, "DELETE", "/admin/v1/accounts/"+w.acctA+"?force=true", nil)
		w.op.want(t, 404, "GET", "/admin/v1/accounts/"+w.acctA, nil)
		if r := w.adminA.do(t, "GET", "/admin/v1/me", nil); r.Status != 401 {
			t.Fatalf("key of a principal of a force-deleted account: %d", r.Status)
		}
		empty := str(w.op.want(t, 201, "POST", "/admin/v1/accounts", map[string]any{"name": "empty"}), "id")
		w.op.want(t, 204, "DELETE", "/admin/v1/accounts/"+empty, nil)
		assertAudited(t, v, "account.force_delete", w.acctA, v.PrincipalID)
		assertAudited(t, v, "account.rename", w.acctA, w.adminAID)
	})
}

// assertAudited checks that the trail records action on object by actor.
func assertAudited(t *testing.T, v *vaulttest.Vault, action, objectID, actor string) {
	t.Helper()
	found := false
	err := v.App.Store.ScanAudit(context.Background(), func(r vault.AuditRecord) error {
		if r.Action == action && r.ObjectID == objectID && r.Outcome == "success" {
			found = found || r.PrincipalID == actor
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("no audit record of %s on %s by %s (%v)", action, objectID, actor, err)
	}
}

func TestPrincipalsByRole(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		body := map[string]any{"name": "carol", "account_id": w.acctA, "role": "reader"}
		w.writerA.want(t, 403, "POST", "/admin/v1/principals", body)
		w.adminB.want(t, 404, "POST", "/admin/v1/principals", body)
		carol := str(w.adminA.want(t, 201, "POST", "/admin/v1/principals", body), "id")
		w.adminA.want(t, 409, "POST", "/admin/v1/principals", body) // names are unique in an account
		body["account_id"] = w.acctB
		w.adminB.want(t, 201, "POST", "/admin/v1/principals", body) // … not across accounts
		w.adminA.want(t, 400, "POST", "/admin/v1/principals", map[string]any{"name": "x", "account_id": w.acctA, "role": "boss"})
		w.adminA.want(t, 400, "POST", "/admin/v1/principals", map[string]any{"name": "x", "account_id": w.acctA, "role": "reader", "kind": "app"})

		// Get.
		w.adminA.want(t, 200, "GET", "/admin/v1/principals/"+carol, nil)
		w.writerA.want(t, 403, "GET", "/admin/v1/principals/"+carol, nil)
		w.adminB.want(t, 404, "GET", "/admin/v1/principals/"+carol, nil)
		w.writerA.want(t, 200, "GET", "/admin/v1/principals/"+w.writerAID, nil) // oneself

		// List: paged and filtered.
		page := w.adminA.want(t, 200, "GET", "/admin/v1/principals?limit=2", nil)
		if len(page["items"].([]any)) != 2 || page["next_cursor"] == nil {
			t.Fatalf("first page: %v", page)
		}
		page2 := w.adminA.want(t, 200, "GET", "/admin/v1/principals?limit=2&after="+str(page, "next_cursor"), nil)
		if len(page2["items"].([]any)) != 1 || page2["next_cursor"] != nil {
			t.Fatalf("second page: %v", page2)
		}
		if items := w.adminA.want(t, 200, "GET", "/admin/v1/principals?name=carol", nil)["items"].([]any); len(items) != 1 {
			t.Fatalf("name filter: %v", items) // carol of B is outside A's reach
		}
		if items := w.op.want(t, 200, "GET", "/admin/v1/principals?name=carol&kind=user", nil)["items"].([]any); len(items) != 2 {
			t.Fatalf("operator's name+kind filter: %v", items)
		}
		if items := w.op.want(t, 200, "GET", "/admin/v1/principals?account_id="+w.acctB, nil)["items"].([]any); len(items) != 2 {
			t.Fatalf("account filter: %v", items)
		}
		w.writerA.want(t, 403, "GET", "/admin/v1/principals?account_id="+w.acctA, nil)
		w.adminB.want(t, 404, "GET", "/admin/v1/principals?account_id="+w.acctA, nil)

		// Update and disable/enable.
		w.writerA.want(t, 403, "PATCH", "/admin/v1/principals/"+carol, map[string]any{"name": "caroline"})
		if p := w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+carol, map[string]any{"name": "caroline", "email": "carol@example.com"}); str(p, "name") != "caroline" || str(p, "email") != "carol@example.com" {
			t.Fatalf("update: %v", p)
		}
		w.adminA.want(t, 409, "PATCH", "/admin/v1/principals/"+carol, map[string]any{"name": "walt"})
		w.adminA.want(t, 409, "PATCH", "/admin/v1/principals/"+w.adminAID, map[string]any{"disabled": true})
		wk := w.writerA
		w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+w.writerAID, map[string]any{"disabled": true})
		wk.want(t, 401, "GET", "/admin/v1/me", nil)
		w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+w.writerAID, map[string]any{"disabled": false})
		wk.want(t, 200, "GET", "/admin/v1/me", nil)

		// Memberships: grant, change, revoke (admins of the target account).
		w.adminA.want(t, 404, "PUT", "/admin/v1/principals/"+carol+"/memberships/"+w.acctB, map[string]any{"role": "reader"})
		if p := w.adminB.want(t, 200, "PUT", "/admin/v1/principals/"+carol+"/memberships/"+w.acctB, map[string]any{"role": "reader"}); p["memberships"] == nil {
			t.Fatalf("grant: %v", p)
		}
		w.op.want(t, 200, "PUT", "/admin/v1/principals/"+carol+"/memberships/"+w.acctB, map[string]any{"role": "writer"})
		w.writerA.want(t, 403, "DELETE", "/admin/v1/principals/"+carol+"/memberships/"+w.acctA, nil)
		w.adminA.want(t, 409, "DELETE", "/admin/v1/principals/"+carol+"/memberships/"+w.acctA, nil) // home account
		w.adminB.want(t, 204, "DELETE", "/admin/v1/principals/"+carol+"/memberships/"+w.acctB, nil)
		w.adminB.want(t, 404, "DELETE", "/admin/v1/principals/"+carol+"/memberships/"+w.acctB, nil)

		// Delete.
		w.writerA.want(t, 403, "DELETE", "/admin/v1/principals/"+carol, nil)
		w.adminB.want(t, 404, "DELETE", "/admin/v1/principals/"+carol, nil)
		w.adminA.want(t, 409, "DELETE", "/admin/v1/principals/"+w.adminAID, nil)
		w.adminA.want(t, 204, "DELETE", "/admin/v1/principals/"+carol, nil)
		w.adminA.want(t, 404, "GET", "/admin/v1/principals/"+carol, nil)
		w.adminA.want(t, 204, "DELETE", "/admin/v1/principals/"+w.writerAID, nil)
		wk.want(t, 401, "GET", "/admin/v1/me", nil)
		assertAudited(t, v, "principal.delete", carol, w.adminAID)
		assertAudited(t, v, "principal.disable", w.writerAID, w.adminAID)

		// Who am I.
		me := w.op.want(t, 200, "GET", "/admin/v1/me", nil)
		if me["operator"] != true || str(me, "auth_method") != "api_key" {
			t.Fatalf("me: %v", me)
		}
		if me := w.adminA.want(t, 200, "GET", "/admin/v1/me", nil); me["operator"] != false || str(me, "role") != "admin" {
			t.Fatalf("me: %v", me)
		}
	})
}

func TestAPIKeysByRole(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		w.writerA.want(t, 403, "POST", "/admin/v1/principals/"+w.adminAID+"/api-keys", map[string]any{})
		w.adminB.want(t, 404, "POST", "/admin/v1/principals/"+w.writerAID+"/api-keys", map[string]any{})
		k := w.adminA.want(t, 201, "POST", "/admin/v1/principals/"+w.writerAID+"/api-keys", map[string]any{"name": "ci", "ttl_seconds": 3600})
		if str(k, "api_key") == "" || k["expires_at"] == nil {
			t.Fatalf("new key: %v", k)
		}
		own := w.writerA.want(t, 201, "POST", "/admin/v1/principals/"+w.writerAID+"/api-keys", map[string]any{"name": "own"})
		nk := caller{v, str(k, "api_key")}
		nk.want(t, 200, "GET", "/admin/v1/me", nil)
		list := w.adminA.do(t, "GET", "/admin/v1/principals/"+w.writerAID+"/api-keys", nil)
		if list.Status != 200 || strings.Contains(string(list.Body), str(k, "api_key")) || strings.Contains(string(list.Body), "api_key") {
			t.Fatalf("list: %d %s", list.Status, list.Body)
		}
		if n := len(list.Object(t)["items"].([]any)); n != 3 {
			t.Fatalf("keys: %d, want 3", n)
		}
		w.adminB.want(t, 404, "DELETE", "/admin/v1/api-keys/"+str(k, "key_id"), nil)
		w.writerA.want(t, 403, "DELETE", "/admin/v1/api-keys/"+str(k, "key_id")[:0]+firstKeyOf(t, w, w.adminAID), nil)
		w.writerA.want(t, 204, "DELETE", "/admin/v1/api-keys/"+str(own, "key_id"), nil)
		w.adminA.want(t, 204, "DELETE", "/admin/v1/api-keys/"+str(k, "key_id"), nil)
		nk.want(t, 401, "GET", "/admin/v1/me", nil)
		w.adminA.want(t, 404, "DELETE", "/admin/v1/api-keys/00000000-0000-7000-8000-000000000000", nil)
		assertAudited(t, v, "api_key.revoke", str(k, "key_id"), w.adminAID)
	})
}

func firstKeyOf(t *testing.T, w world, principalID string) string {
	t.Helper()
	items := w.op.want(t, 200, "GET", "/admin/v1/principals/"+principalID+"/api-keys", nil)["items"].([]any)
	return str(items[0].(map[string]any), "key_id")
}

const canary = "Canary-Password-7f3a9e1c2b"

func TestPasswordsAndSessions(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		var bodies []string
		keep := func(r *vaulttest.Response) *vaulttest.Response { bodies = append(bodies, string(r.Body)); return r }
		w.adminA.want(t, 400, "POST", "/admin/v1/principals", map[string]any{"name": "short", "account_id": w.acctA, "role": "reader", "email": "s@example.com", "password": "short"})
		u := keep(w.adminA.do(t, "POST", "/admin/v1/principals", map[string]any{"name": "dana", "account_id": w.acctA, "role": "writer", "email": "dana@example.com", "password": canary})).Object(t)
		dana := str(u, "id")
		if u["has_password"] != true {
			t.Fatalf("created user: %v", u)
		}
		login := func(pw string) *vaulttest.Response {
			return keep(v.Do(t, "POST", "/admin/v1/login", map[string]any{"email": "dana@example.com", "password": pw}))
		}
		if r := login("wrong password!!"); r.Status != 401 {
			t.Fatalf("wrong password: %d", r.Status)
		}
		r := login(canary)
		if r.Status != 200 {
			t.Fatalf("login: %d %s", r.Status, r.Body)
		}
		sess := caller{v, str(r.Object(t), "token")}
		if me := sess.want(t, 200, "GET", "/admin/v1/me", nil); str(me, "auth_method") != "session" || str(me["principal"].(map[string]any), "id") != dana {
			t.Fatalf("me: %v", me)
		}
		// A session also works on the SGP-independent admin API only; logout ends it.
		sess.want(t, 204, "POST", "/admin/v1/logout", nil)
		sess.want(t, 401, "GET", "/admin/v1/me", nil)

		// Self change needs the old password, and ends every session.
		s1 := caller{v, str(login(canary).Object(t), "token")}
		s1.want(t, 403, "POST", "/admin/v1/me/password", map[string]any{"old_password": "not it at all", "new_password": canary + "-2"})
		s1.want(t, 204, "POST", "/admin/v1/me/password", map[string]any{"old_password": canary, "new_password": canary + "-2"})
		s1.want(t, 401, "GET", "/admin/v1/me", nil)
		if r := login(canary); r.Status != 401 {
			t.Fatalf("old password after change: %d", r.Status)
		}
		// Admin set: admins of the home account only; ends every session.
		s2 := caller{v, str(login(canary+"-2").Object(t), "token")}
		w.writerA.want(t, 403, "PUT", "/admin/v1/principals/"+dana+"/password", map[string]any{"password": canary})
		w.adminB.want(t, 404, "PUT", "/admin/v1/principals/"+dana+"/password", map[string]any{"password": canary})
		w.adminA.want(t, 204, "PUT", "/admin/v1/principals/"+dana+"/password", map[string]any{"password": canary})
		s2.want(t, 401, "GET", "/admin/v1/me", nil)
		// Disabling ends every session; the right password no longer logs in.
		s3 := caller{v, str(login(canary).Object(t), "token")}
		w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+dana, map[string]any{"disabled": true})
		s3.want(t, 401, "GET", "/admin/v1/me", nil)
		if r := login(canary); r.Status != 401 {
			t.Fatalf("disabled user logs in: %d", r.Status)
		}
		w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+dana, map[string]any{"disabled": false})
		// Many wrong passwords (throttled) never lock out the right one.
		for range 40 {
			if r := login("wrong password!!"); r.Status != 401 && r.Status != 429 {
				t.Fatalf("wrong password: %d", r.Status)
			}
		}
		if r := login(canary); r.Status != 200 {
			t.Fatalf("right password after a flood of wrong ones: %d %s", r.Status, r.Body)
		}
		assertAudited(t, v, "principal.set_password", dana, w.adminAID)

		// The canary is nowhere: responses, logs, audit trail, database files.
		for _, b := range bodies {
			if strings.Contains(b, canary) {
				t.Fatalf("password in a response: %s", b)
			}
		}
		if strings.Contains(v.Logs(), canary) {
			t.Fatal("password in the logs")
		}
		_ = v.App.Store.ScanAudit(context.Background(), func(r vault.AuditRecord) error {
			if strings.Contains(fmt.Sprintf("%+v", r), canary) {
				t.Fatalf("password in the audit trail: %+v", r)
			}
			return nil
		})
		// Every row of every table as text (PostgreSQL), the database files (SQLite).
		if bytes.Contains(v.DatabaseBytes(t), []byte(canary)) {
			t.Fatal("password in the database")
		}
	})
}

// TestReplicasSeeRevocationAtOnce runs two servers on one PostgreSQL
// database: a key revoked, a user disabled and a principal deleted through
// one stop working on that one at once and on the other within
// ReplicaBound.
func TestReplicasSeeRevocationAtOnce(t *testing.T) {
	if !slices.Contains(vaulttest.Engines(), sqlstore.Postgres) {
		t.Skip("needs PostgreSQL")
	}
	v := vaulttest.New(t, sqlstore.Postgres)
	a2, err := app.Open(context.Background(), v.Config)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a2.Handler)
	t.Cleanup(func() { srv.Close(); a2.Close() })
	b := &vaulttest.Vault{URL: srv.URL}
	status := func(t *testing.T, base, key string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/admin/v1/me", nil)
		req.Header.Set("x-api-key", key)
		if strings.HasPrefix(key, "cvs_") {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	other := func(t *testing.T, key string) int { t.Helper(); return status(t, b.URL, key) }
	// refused checks that key stops working on the replica that made the
	// change at once, and on the other one within ReplicaBound of the
	// change's answer (polled; the last poll is after the bound).
	refused := func(t *testing.T, what, key string, changed time.Time) {
		t.Helper()
		if s := status(t, v.URL, key); s != 401 {
			t.Fatalf("%s on the replica that made the change: %d", what, s)
		}
		for {
			late := time.Since(changed) > ReplicaBound
			s := other(t, key)
			if s == 401 {
				return
			}
			if late {
				t.Fatalf("%s on the other replica %v after the change: %d", what, ReplicaBound, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	w := newWorld(t, v)
	k := w.adminA.want(t, 201, "POST", "/admin/v1/principals/"+w.writerAID+"/api-keys", map[string]any{})
	if other(t, str(k, "api_key")) != 200 {
		t.Fatal("new key does not work on the other replica")
	}
	w.adminA.want(t, 204, "DELETE", "/admin/v1/api-keys/"+str(k, "key_id"), nil)
	refused(t, "revoked key", str(k, "api_key"), time.Now())
	u := str(w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "erin", "account_id": w.acctA, "role": "reader", "email": "erin@example.com", "password": canary}), "id")
	tok := str(w.op.want(t, 200, "POST", "/admin/v1/login", map[string]any{"email": "erin@example.com", "password": canary}), "token")
	if other(t, tok) != 200 || other(t, w.writerA.key) != 200 {
		t.Fatal("session or key does not work on the other replica")
	}
	w.adminA.want(t, 200, "PATCH", "/admin/v1/principals/"+u, map[string]any{"disabled": true})
	refused(t, "disabled user's session", tok, time.Now())
	w.adminA.want(t, 204, "DELETE", "/admin/v1/principals/"+w.writerAID, nil)
	refused(t, "deleted principal's key", w.writerA.key, time.Now())
}

// TestNonAdminRolesAndAppsRefused: every role below admin, and DSM apps,
// are refused every management change, on both engines.
func TestNonAdminRolesAndAppsRefused(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		w := newWorld(t, v)
		var callers []caller
		for _, role := range []string{"reader", "secret_reader", "writer"} {
			id := str(w.op.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "m-" + role, "account_id": w.acctA, "role": role, "kind": "service_account"}), "id")
			callers = append(callers, caller{v, str(w.op.want(t, 201, "POST", "/admin/v1/principals/"+id+"/api-keys", map[string]any{}), "api_key")})
		}
		auth := []string{"Authorization", "Basic " + w.adminA.key}
		g := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": "g"}, auth...).Object(t)
		app := v.Do(t, "POST", "/sys/v1/apps", map[string]any{"name": "app", "role": "admin", "add_groups": map[string][]string{str(g, "group_id"): {"ENCRYPT"}}}, auth...).Object(t)
		secret := v.Do(t, "GET", "/sys/v1/apps/"+str(app, "app_id")+"/credential", nil, auth...).Object(t)
		appKey := base64.StdEncoding.EncodeToString([]byte(str(app, "app_id") + ":" + str(secret["credential"].(map[string]any), "secret")))
		for i, c := range callers {
			want := 403
			c.want(t, want, "POST", "/admin/v1/accounts", map[string]any{"name": fmt.Sprint("x", i)})
			c.want(t, want, "PATCH", "/admin/v1/accounts/"+w.acctA, map[string]any{"name": "y"})
			c.want(t, want, "DELETE", "/admin/v1/accounts/"+w.acctA, nil)
			c.want(t, want, "POST", "/admin/v1/principals", map[string]any{"name": "z", "account_id": w.acctA, "role": "reader"})
			c.want(t, want, "GET", "/admin/v1/principals/"+w.adminAID, nil)
			c.want(t, want, "PATCH", "/admin/v1/principals/"+w.adminAID, map[string]any{"disabled": true})
			c.want(t, want, "DELETE", "/admin/v1/principals/"+w.adminAID, nil)
			c.want(t, want, "PUT", "/admin/v1/principals/"+w.adminAID+"/memberships/"+w.acctA, map[string]any{"role": "reader"})
			c.want(t, want, "DELETE", "/admin/v1/principals/"+w.writerAID+"/memberships/"+w.acctA, nil)
			c.want(t, want, "PUT", "/admin/v1/principals/"+w.adminAID+"/password", map[string]any{"password": canary})
			c.want(t, want, "POST", "/admin/v1/principals/"+w.adminAID+"/api-keys", map[string]any{})
			c.want(t, want, "GET", "/admin/v1/principals/"+w.adminAID+"/api-keys", nil)
			c.want(t, want, "DELETE", "/admin/v1/api-keys/"+firstKeyOf(t, w, w.adminAID), nil)
			c.want(t, want, "GET", "/admin/v1/principals?account_id="+w.acctA, nil)
			c.want(t, 200, "GET", "/admin/v1/me", nil)
		}
		// A DSM app may not use the admin API at all.
		r := v.Do(t, "POST", "/admin/v1/principals", map[string]any{"name": "z", "account_id": w.acctA, "role": "reader"}, "Authorization", "Basic "+appKey)
		if r.Status != 403 {
			t.Fatalf("app creates a principal: %d %s", r.Status, r.Body)
		}
		if r := v.Do(t, "GET", "/admin/v1/accounts", nil, "x-api-key", appKey); r.Status != 403 {
			t.Fatalf("app lists accounts: %d %s", r.Status, r.Body)
		}
		// Nothing changed.
		if p := w.op.want(t, 200, "GET", "/admin/v1/principals/"+w.adminAID, nil); p["disabled"] != false {
			t.Fatalf("admin of A after refused changes: %v", p)
		}
	})
}

// TestSessionLifetimes: a login session ends after SessionIdleTimeout
// without use and after SessionMaxLifetime however much it is used; a
// DSM user session ends SessionMaxLifetime after it opened. The vault's
// clock (vaulttest.Vault.Clock) is moved, not waited for.
func TestSessionLifetimes(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		w := newWorld(t, v)
		w.adminA.want(t, 201, "POST", "/admin/v1/principals", map[string]any{"name": "gina", "account_id": w.acctA, "role": "reader", "email": "gina@example.com", "password": canary})
		clk, svc := v.Clock, v.App.Service
		auth := func(tok string) error {
			_, err := svc.AuthenticateUserSession(ctx, tok, "")
			return err
		}
		// Idle timeout.
		tok, _, _, err := svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(vault.SessionIdleTimeout - time.Minute)
		if err := auth(tok); err != nil {
			t.Fatalf("used within the idle timeout: %v", err)
		}
		clk.Advance(vault.SessionIdleTimeout - time.Second) // measured from the last use
		if err := auth(tok); err != nil {
			t.Fatalf("used again within the idle timeout: %v", err)
		}
		clk.Advance(vault.SessionIdleTimeout + time.Second)
		if err := auth(tok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("after the idle timeout: %v", err)
		}
		// Absolute lifetime, however busy.
		tok, _, _, err = svc.Login(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		for used := time.Duration(0); used < vault.SessionMaxLifetime-vault.SessionIdleTimeout; used += 20 * time.Minute {
			clk.Advance(20 * time.Minute)
			if err := auth(tok); err != nil {
				t.Fatalf("busy session at %v: %v", used, err)
			}
		}
		clk.Advance(vault.SessionIdleTimeout - time.Minute)
		if err := auth(tok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("after the absolute lifetime: %v", err)
		}
		// A DSM user session is capped at the same absolute lifetime.
		id, err := svc.AuthenticateDSMUser(ctx, "gina@example.com", canary)
		if err != nil {
			t.Fatal(err)
		}
		dtok, _, err := svc.CreateSession(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for elapsed := time.Duration(0); elapsed < vault.SessionMaxLifetime-5*time.Minute; elapsed += 5 * time.Minute {
			clk.Advance(5 * time.Minute)
			did, err := svc.AuthenticateKeyOrSession(ctx, "", dtok)
			if err != nil {
				t.Fatalf("refreshed DSM session at %v: %v", elapsed, err)
			}
			if err := svc.RefreshSession(ctx, did); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(6 * time.Minute)
		if _, err := svc.AuthenticateKeyOrSession(ctx, "", dtok); vault.KindOf(err) != vault.KindUnauthenticated {
			t.Fatalf("DSM user session after the absolute lifetime: %v", err)
		}
	})
}
