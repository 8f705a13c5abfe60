package sgp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
	"github.com/credvault/credvault/internal/webhook"
)

// testClock is a clock the test moves (no sleeping).
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *testClock { return &testClock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// eachLifecycle runs fn per engine with a vault on clk whose background
// lifecycle work the test drives itself; allow lists webhook hosts.
func eachLifecycle(t *testing.T, fn func(t *testing.T, v *vaulttest.Vault, clk *testClock), allow ...string) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		clk := newClock()
		v := vaulttest.New(t, engine, func(c *app.Config) {
			c.Clock = clk.Now // frozen: moved by the test only
			c.Lifecycle.Manual = true
			c.Lifecycle.WebhookAllowHosts = allow
			c.Lifecycle.WebhookTimeout = 5 * time.Second
		})
		fn(t, v, clk)
	})
}

type versionList struct {
	Object string `json:"object"`
	Items  []struct {
		Version         int64  `json:"version"`
		CreatedAt       string `json:"created_at"`
		CreatedByUserID string `json:"created_by_user_id"`
		Current         bool   `json:"current"`
	} `json:"items"`
}

func (c api) versions(t *testing.T, id string) versionList {
	t.Helper()
	return okNoPayload[versionList](t, c.do(t, "GET", "/v5/credentials/"+id+"/versions", nil))
}

func (c api) versionSecret(t *testing.T, id string, n int64) *vaulttest.Response {
	t.Helper()
	return c.do(t, "POST", fmt.Sprintf("/v5/credentials/%s/versions/%d/secret", id, n), nil)
}

func (c api) setPayload(t *testing.T, id, payload string) map[string]any {
	t.Helper()
	r := c.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"payload": payload})
	wantStatus(t, r, 200)
	return r.Object(t)
}

// TestCredentialVersions: every payload change is a new version numbered
// from 1, shown in the Credential; old versions can be read (audited like
// a decrypt) and rolled back to, which makes a new version.
func TestCredentialVersions(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, _ *testClock) {
		a := admin(v)
		r := a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "db", "payload": "p1"})
		wantStatus(t, r, 200)
		c := r.Object(t)
		id := c["id"].(string)
		if c["version"] != float64(1) {
			t.Fatalf("new credential version = %v, want 1", c["version"])
		}
		for i := 2; i <= 4; i++ {
			if got := a.setPayload(t, id, fmt.Sprintf("p%d", i))["version"]; got != float64(i) {
				t.Fatalf("version after update %d = %v", i, got)
			}
		}
		// A change without a payload keeps the version.
		r = a.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"description": "d"})
		wantStatus(t, r, 200)
		if got := r.Object(t)["version"]; got != float64(4) {
			t.Fatalf("version after a metadata change = %v, want 4", got)
		}
		l := a.versions(t, id)
		if l.Object != "list" || len(l.Items) != 4 || l.Items[0].Version != 4 || !l.Items[0].Current || l.Items[3].Version != 1 || l.Items[3].Current {
			t.Fatalf("versions = %+v", l)
		}
		r = a.versionSecret(t, id, 2)
		s := ok[secret](t, r)
		if s.Result != "p2" || s.Object != "credential_secret" {
			t.Fatalf("version 2 secret = %+v", s)
		}
		wantDetail(t, a.versionSecret(t, id, 9), 404)

		r = a.do(t, "POST", "/v5/credentials/"+id+"/rollback", map[string]any{"version": 2})
		wantStatus(t, r, 200)
		noPayloadMember(t, r)
		if got := r.Object(t)["version"]; got != float64(5) {
			t.Fatalf("version after rollback = %v, want 5", got)
		}
		if got := a.decrypt(t, id); got != "p2" {
			t.Fatalf("payload after rollback to 2 = %q", got)
		}
		if l := a.versions(t, id); len(l.Items) != 5 || l.Items[0].Version != 5 || !l.Items[0].Current {
			t.Fatalf("versions after rollback = %+v", l)
		}
		wantDetail(t, a.do(t, "POST", "/v5/credentials/"+id+"/rollback", map[string]any{"version": 42}), 404)
		want422At(t, a.do(t, "POST", "/v5/credentials/"+id+"/rollback", map[string]any{"version": "x"}), "int_type", "body", "version")

		// Readers see versions but no version secrets.
		rd := as(v, v.NewMember(t, v.AccountID, "reader", vault.RoleReader))
		rd.versions(t, id)
		wantDetail(t, rd.versionSecret(t, id, 1), 403)

		// The version read is in the audit trail, like a decrypt.
		recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, ObjectID: id, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, rec := range recs {
			got[rec.Action+"/"+rec.Outcome]++
		}
		if got["credential.version.decrypt/success"] != 1 || got["credential.version.decrypt/not_found"] != 1 ||
			got["credential.version.decrypt/permission_denied"] != 1 || got["credential.rollback/success"] != 1 {
			t.Fatalf("audit records = %v", got)
		}
	})
}

// TestVersionRetention: an account keeps its last N versions (default 10,
// settable); older ones are destroyed (their rows are gone).
func TestVersionRetention(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, _ *testClock) {
		a := admin(v)
		r := a.do(t, "GET", "/v5/credential_settings", nil)
		wantStatus(t, r, 200)
		if got := r.Object(t)["max_versions"]; got != float64(10) {
			t.Fatalf("default max_versions = %v", got)
		}
		id := a.createNamed(t, "rotating", "v1").ID
		for i := 2; i <= 12; i++ {
			a.setPayload(t, id, fmt.Sprintf("v%d", i))
		}
		if l := a.versions(t, id); len(l.Items) != 10 || l.Items[9].Version != 3 {
			t.Fatalf("default retention kept %d versions (oldest %d), want 10 from 3", len(l.Items), l.Items[len(l.Items)-1].Version)
		}
		w := as(v, v.NewMember(t, v.AccountID, "writer", vault.RoleWriter))
		wantDetail(t, w.do(t, "PUT", "/v5/credential_settings", map[string]any{"max_versions": 3}), 403)
		want422At(t, a.do(t, "PUT", "/v5/credential_settings", map[string]any{"max_versions": 0}), "value_error", "body", "max_versions")
		wantStatus(t, a.do(t, "PUT", "/v5/credential_settings", map[string]any{"max_versions": 3}), 200)
		a.setPayload(t, id, "v13")
		l := a.versions(t, id)
		if len(l.Items) != 3 || l.Items[0].Version != 13 || l.Items[2].Version != 11 {
			t.Fatalf("versions with max 3 = %+v", l)
		}
		wantDetail(t, a.versionSecret(t, id, 10), 404)
		raw := openRaw(t, v)
		var n int
		if err := raw.db.QueryRow(raw.q(`SELECT COUNT(*) FROM credential_versions WHERE credential_id = ?`), id).Scan(&n); err != nil || n != 3 {
			t.Fatalf("version rows stored = %d (%v), want 3: older versions must be destroyed", n, err)
		}
	})
}

// TestVersionCiphertextMoved: a version's ciphertext is bound to its
// credential, account and version number: copied into another version's
// row, or into another credential's, it does not open.
func TestVersionCiphertextMoved(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, _ *testClock) {
		a := admin(v)
		x := a.createNamed(t, "x", "x-one").ID
		a.setPayload(t, x, "x-two")
		y := a.createNamed(t, "y", "y-one").ID
		raw := openRaw(t, v)
		ct := func(id string, n int) []byte {
			var b []byte
			if err := raw.db.QueryRow(raw.q(`SELECT ciphertext FROM credential_versions WHERE credential_id = ? AND version = ?`), id, n).Scan(&b); err != nil {
				t.Fatal(err)
			}
			return b
		}
		raw.exec(t, `UPDATE credential_versions SET ciphertext = ? WHERE credential_id = ? AND version = 1`, ct(x, 2), x)
		r := a.versionSecret(t, x, 1)
		wantDetail(t, r, 409)
		notContains(t, "409 body", r.Body, "x-two")
		wantDetail(t, a.do(t, "POST", "/v5/credentials/"+x+"/rollback", map[string]any{"version": 1}), 409)
		raw.exec(t, `UPDATE credential_versions SET ciphertext = ? WHERE credential_id = ? AND version = 1`, ct(x, 2), y)
		wantDetail(t, a.versionSecret(t, y, 1), 409)
		if got := a.decrypt(t, x); got != "x-two" {
			t.Fatalf("current payload = %q", got)
		}
	})
}

type trashList struct {
	Object  string `json:"object"`
	HasMore bool   `json:"has_more"`
	Items   []struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		PurgeAt  string `json:"purge_at"`
		Deleted  string `json:"deleted_at"`
		Deleter  string `json:"deleted_by_user_id"`
		Version  int64  `json:"version"`
		Metadata any    `json:"credential_metadata"`
	} `json:"items"`
}

func (c api) trash(t *testing.T, query string) trashList {
	t.Helper()
	return okNoPayload[trashList](t, c.do(t, "GET", "/v5/trash/credentials"+query, nil))
}

// TestTrashRestorePurge: a deleted credential answers 404 on every SGP
// path, is listed in the trash and can be restored (with its versions)
// within the retention window; after it, the background purge destroys it,
// once, even with two replicas, and a restarted server purges what is due.
func TestTrashRestorePurge(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		id := a.createNamed(t, "trash/me", "t1").ID
		a.setPayload(t, id, "t2")
		wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+id, nil), 200)
		for _, rq := range []struct{ method, path string }{
			{"GET", "/v5/credentials/" + id}, {"GET", "/v5/credentials/name/trash%2Fme"},
			{"POST", "/v5/credentials/" + id + "/secret"}, {"POST", "/v5/credentials/name/trash%2Fme/secret"},
			{"PATCH", "/v5/credentials/" + id}, {"DELETE", "/v5/credentials/" + id},
			{"GET", "/v5/credentials/" + id + "/versions"}, {"POST", "/v5/credentials/" + id + "/versions/1/secret"},
			{"POST", "/v5/credentials/" + id + "/rollback"},
		} {
			var body any
			switch rq.method {
			case "PATCH":
				body = map[string]any{"description": "x"}
			case "POST":
				if strings.HasSuffix(rq.path, "rollback") {
					body = map[string]any{"version": 1}
				}
			}
			wantDetail(t, a.do(t, rq.method, rq.path, body), 404)
		}
		if l := a.list(t, nil); l.Total != 0 || len(l.Items) != 0 {
			t.Fatalf("list after delete = %+v", l)
		}
		l := a.trash(t, "")
		if len(l.Items) != 1 || l.Items[0].ID != id || l.Items[0].Deleter != v.PrincipalID || l.Items[0].Version != 2 {
			t.Fatalf("trash = %+v", l)
		}
		if pa := parseTime(t, l.Items[0].PurgeAt); !pa.Equal(clk.Now().Add(vault.DefaultDeleteRetention)) {
			t.Fatalf("purge_at = %s, want deletion + 7 days", pa)
		}
		r := a.do(t, "POST", "/v5/trash/credentials/"+id+"/restore", nil)
		wantStatus(t, r, 200)
		if a.decrypt(t, id) != "t2" || len(a.versions(t, id).Items) != 2 || a.list(t, nil).Total != 1 {
			t.Fatal("restored credential lost its payload, versions or count")
		}
		wantDetail(t, a.do(t, "POST", "/v5/trash/credentials/"+id+"/restore", nil), 404)

		// Delete again; the window passes; the purge destroys it, once.
		wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+id, nil), 200)
		clk.Add(vault.DefaultDeleteRetention - time.Minute)
		if n, _, err := v.App.RunLifecycle(context.Background()); err != nil || n != 0 {
			t.Fatalf("purge before the window ended: %d, %v", n, err)
		}
		clk.Add(2 * time.Minute)
		// Past the window, it cannot be restored even before the purge ran.
		wantDetail(t, a.do(t, "POST", "/v5/trash/credentials/"+id+"/restore", nil), 404)
		// A second replica (a restart, too: it finds the work in the
		// database) and this one both run the purge: it happens once.
		cfg := v.Config
		cfg.Clock = clk.Now
		b, err := app.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var wg sync.WaitGroup
		counts := make([]int, 2)
		for i, ap := range []*app.App{v.App, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n, _, err := ap.RunLifecycle(context.Background())
				if err != nil {
					t.Errorf("replica %d purge: %v", i, err)
				}
				counts[i] = n
			}()
		}
		wg.Wait()
		if counts[0]+counts[1] != 1 {
			t.Fatalf("purged %v, want exactly one purge in all", counts)
		}
		if l := a.trash(t, ""); len(l.Items) != 0 {
			t.Fatalf("trash after purge = %+v", l)
		}
		raw := openRaw(t, v)
		var n int
		if err := raw.db.QueryRow(raw.q(`SELECT COUNT(*) FROM credential_versions WHERE credential_id = ?`), id).Scan(&n); err != nil || n != 0 {
			t.Fatalf("versions left after purge: %d (%v)", n, err)
		}
		recs, err := v.App.Store.ListAudit(context.Background(), vault.AuditQuery{AccountID: v.AccountID, ObjectID: id, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		purges := 0
		for _, rec := range recs {
			if rec.Action == "credential.purge" {
				purges++
				if rec.Outcome != "success" || rec.PrincipalID != "system:lifecycle" {
					t.Errorf("purge record = %+v", rec)
				}
			}
		}
		if purges != 1 {
			t.Fatalf("%d purge audit records, want 1", purges)
		}

		// Purge now, by hand.
		id2 := a.createNamed(t, "now", "x").ID
		wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+id2, nil), 200)
		wantStatus(t, a.do(t, "DELETE", "/v5/trash/credentials/"+id2, nil), 200)
		wantDetail(t, a.do(t, "DELETE", "/v5/trash/credentials/"+id2, nil), 404)
		wantDetail(t, a.do(t, "POST", "/v5/trash/credentials/"+id2+"/restore", nil), 404)
	})
}

// TestTrashPagingAndRestoreConflict: the trash pages; a restore whose name
// was taken meanwhile is 409 and changes nothing.
func TestTrashPagingAndRestoreConflict(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		var ids []string
		for i := range 3 {
			id := a.createNamed(t, nameOf(i, "n"), "x").ID
			clk.Add(time.Second)
			wantStatus(t, a.do(t, "DELETE", "/v5/credentials/"+id, nil), 200)
			ids = append(ids, id)
		}
		p1 := a.trash(t, "?limit=2")
		if len(p1.Items) != 2 || !p1.HasMore || p1.Items[0].ID != ids[2] || p1.Items[1].ID != ids[1] {
			t.Fatalf("trash page 1 = %+v", p1)
		}
		p2 := a.trash(t, "?limit=2&starting_after="+p1.Items[1].ID)
		if len(p2.Items) != 1 || p2.HasMore || p2.Items[0].ID != ids[0] {
			t.Fatalf("trash page 2 = %+v", p2)
		}
		want422At(t, a.do(t, "GET", "/v5/trash/credentials?starting_after=nope", nil), "value_error", "query", "starting_after")

		taken := a.createNamed(t, nameOf(0, "n"), "new").ID
		r := a.do(t, "POST", "/v5/trash/credentials/"+ids[0]+"/restore", nil)
		wantDetail(t, r, 409)
		if a.decrypt(t, taken) != "new" || len(a.trash(t, "").Items) != 3 {
			t.Fatal("a refused restore changed something")
		}
		// Another account sees none of it.
		o := as(v, v.NewTenant(t, "other", vault.RoleAdmin))
		if l := o.trash(t, ""); len(l.Items) != 0 {
			t.Fatalf("another account's trash = %+v", l)
		}
		wantDetail(t, o.do(t, "POST", "/v5/trash/credentials/"+ids[0]+"/restore", nil), 404)
		wantDetail(t, o.do(t, "DELETE", "/v5/trash/credentials/"+ids[0], nil), 404)
		wantDetail(t, o.do(t, "GET", "/v5/credentials/"+taken+"/versions", nil), 404)
		wantDetail(t, o.versionSecret(t, taken, 1), 404)
		wantDetail(t, o.do(t, "POST", "/v5/credentials/"+taken+"/rollback", map[string]any{"version": 1}), 404)
		wantStatus(t, a.do(t, "PATCH", "/v5/credentials/"+taken, map[string]any{"name": "renamed"}), 200)
		wantStatus(t, a.do(t, "POST", "/v5/trash/credentials/"+ids[0]+"/restore", nil), 200)
	})
}

// TestExpiry: expires_at is set on create and update, flagged in get and
// list once passed (the credential still decrypts), and raises
// credential.expiring ahead and credential.expired at expiry, each once.
func TestExpiry(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		rcv := newReceiver(t)
		hook := a.registerWebhook(t, rcv.URL, "credential.expiring", "credential.expired")
		exp := clk.Now().Add(30 * 24 * time.Hour)
		r := a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "exp", "payload": "pp", "expires_at": exp.Format(time.RFC3339)})
		wantStatus(t, r, 200)
		c := r.Object(t)
		id := c["id"].(string)
		if c["expired"] != false || !parseTime(t, c["expires_at"].(string)).Equal(exp) {
			t.Fatalf("created = %v", c)
		}
		want422At(t, a.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"expires_at": "tomorrow"}), "datetime_parsing", "body", "expires_at")
		exp = clk.Now().Add(10 * 24 * time.Hour)
		r = a.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"expires_at": exp.Format(time.RFC3339Nano)})
		wantStatus(t, r, 200)
		if _, n, _ := v.App.RunLifecycle(context.Background()); n != 0 {
			t.Fatalf("%d notices 10 days ahead", n)
		}
		clk.Add(4 * 24 * time.Hour) // 6 days left: inside the 7-day notice
		if _, n, err := v.App.RunLifecycle(context.Background()); n != 1 || err != nil {
			t.Fatalf("expiring notices = %d, %v", n, err)
		}
		if _, n, _ := v.App.RunLifecycle(context.Background()); n != 0 {
			t.Fatalf("the expiring notice was raised again (%d)", n)
		}
		clk.Add(6 * 24 * time.Hour)
		if _, n, _ := v.App.RunLifecycle(context.Background()); n != 1 {
			t.Fatalf("expired notices = %d", n)
		}
		var got map[string]any
		r = a.do(t, "GET", "/v5/credentials/"+id, nil)
		r.Decode(t, &got)
		if got["expired"] != true {
			t.Fatalf("get after expiry = %v", got)
		}
		r = a.do(t, "GET", "/v5/credentials", nil)
		if !strings.Contains(string(r.Body), `"expired":true`) {
			t.Fatalf("list does not flag the expired credential: %s", r.Body)
		}
		if a.decrypt(t, id) != "pp" {
			t.Fatal("an expired credential must still decrypt")
		}
		if n, err := v.App.Webhooks.RunOnce(context.Background()); n != 2 || err != nil {
			t.Fatalf("expiry deliveries attempted: %d, %v; log %+v", n, err, a.deliveries(t, hook.ID))
		}
		evs := rcv.events(t, hook.Secret, clk)
		sort.Slice(evs, func(i, j int) bool { return evs[i].CreatedAt.Before(evs[j].CreatedAt) }) // sent concurrently
		if len(evs) != 2 || evs[0].Type != "credential.expiring" || evs[1].Type != "credential.expired" || evs[1].Data.ObjectID != id {
			t.Fatalf("expiry events = %+v", evs)
		}
		// Clearing the expiry.
		r = a.do(t, "PATCH", "/v5/credentials/"+id, map[string]any{"expires_at": nil})
		wantStatus(t, r, 200)
		if _, ok := r.Object(t)["expires_at"]; ok {
			t.Fatalf("expires_at still set: %s", r.Body)
		}
	}, "127.0.0.1")
}

// ---------------------------------------------------------------- webhooks

type hookWire struct {
	ID     string   `json:"id"`
	URL    string   `json:"url"`
	Events []string `json:"events"`
	Secret string   `json:"secret"`
}

func (c api) registerWebhook(t *testing.T, url string, events ...string) hookWire {
	t.Helper()
	r := c.do(t, "POST", "/v5/webhooks", map[string]any{"url": url, "events": events, "description": "test"})
	h := ok[hookWire](t, r)
	if !strings.HasPrefix(h.Secret, "whsec_") {
		t.Fatalf("webhook create did not show the secret: %s", r.Body)
	}
	return h
}

// receiver is a local webhook receiver. fail, while positive, makes it
// answer 500 (and counts down).
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []received
	fail int
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, received{r.Header.Clone(), b})
		fail := rc.fail > 0
		rc.fail--
		rc.mu.Unlock()
		if fail {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) count() int { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.reqs) }

// events verifies every request's signature and returns the events, each
// checked to hold no payload.
func (rc *receiver) events(t *testing.T, secret string, clk *testClock) []vault.Event {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []vault.Event
	for _, r := range rc.reqs {
		if err := webhook.Verify([]byte(secret), r.header.Get("credvault-signature"), r.body, clk.Now(), 5*time.Minute); err != nil {
			t.Fatalf("signature of %s: %v", r.body, err)
		}
		if err := webhook.Verify([]byte(secret+"x"), r.header.Get("credvault-signature"), r.body, clk.Now(), 5*time.Minute); err == nil {
			t.Fatal("a wrong secret verifies")
		}
		var ev vault.Event
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatal(err)
		}
		if r.header.Get("credvault-event-id") != ev.ID {
			t.Fatalf("event id header %q, body %q", r.header.Get("credvault-event-id"), ev.ID)
		}
		var m map[string]any
		_ = json.Unmarshal(r.body, &m)
		for _, k := range []string{"payload", "result", "credential_metadata", "description"} {
			if strings.Contains(string(r.body), `"`+k+`"`) {
				t.Fatalf("event carries %q: %s", k, r.body)
			}
		}
		out = append(out, ev)
	}
	return out
}

type deliveryList struct {
	Items []struct {
		EventID    string `json:"event_id"`
		EventType  string `json:"event_type"`
		Status     string `json:"status"`
		Attempts   int    `json:"attempts"`
		LastStatus *int   `json:"last_status_code"`
		LastError  string `json:"last_error"`
	} `json:"items"`
}

func (c api) deliveries(t *testing.T, hookID string) deliveryList {
	t.Helper()
	return ok[deliveryList](t, c.do(t, "GET", "/v5/webhooks/"+hookID+"/deliveries", nil))
}

// TestWebhookDelivery: events of every credential change reach a local
// receiver (allowed explicitly), signed; a failed delivery is retried with
// backoff; events carry no payload; the CRUD and delivery log work.
func TestWebhookDelivery(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		rcv := newReceiver(t)
		w := as(v, v.NewMember(t, v.AccountID, "writer", vault.RoleWriter))
		wantDetail(t, w.do(t, "POST", "/v5/webhooks", map[string]any{"url": rcv.URL, "events": []string{"*"}}), 403)
		want422At(t, a.do(t, "POST", "/v5/webhooks", map[string]any{"url": "ftp://x", "events": []string{"*"}}), "value_error", "body", "url")
		want422At(t, a.do(t, "POST", "/v5/webhooks", map[string]any{"url": rcv.URL, "events": []string{"nope"}}), "value_error", "body", "events")
		hook := a.registerWebhook(t, rcv.URL, "*")
		other := a.registerWebhook(t, rcv.URL+"/apikeys", "apikey.created")
		r := a.do(t, "GET", "/v5/webhooks/"+hook.ID, nil)
		wantStatus(t, r, 200)
		notContains(t, "webhook get", r.Body, hook.Secret)
		notContains(t, "webhook list", a.do(t, "GET", "/v5/webhooks", nil).Body, hook.Secret)

		o := as(v, v.NewTenant(t, "other", vault.RoleAdmin))
		wantDetail(t, o.do(t, "GET", "/v5/webhooks/"+hook.ID, nil), 404)
		wantDetail(t, o.do(t, "PATCH", "/v5/webhooks/"+hook.ID, map[string]any{"events": []string{"*"}}), 404)
		wantDetail(t, o.do(t, "DELETE", "/v5/webhooks/"+hook.ID, nil), 404)
		wantDetail(t, o.do(t, "GET", "/v5/webhooks/"+hook.ID+"/deliveries", nil), 404)
		if r := o.do(t, "GET", "/v5/webhooks", nil); !strings.Contains(string(r.Body), `"items":[]`) {
			t.Fatalf("another account lists %s", r.Body)
		}
		const payload = "SUPER-SECRET-PAYLOAD-1234"
		id := a.create(t, map[string]any{"type": "key", "name": "hooked", "payload": payload, "description": "desc-canary",
			"credential_metadata": map[string]any{"m": "meta-canary"}}).ID
		a.setPayload(t, id, payload+"-2")
		a.do(t, "POST", "/v5/credentials/"+id+"/rollback", map[string]any{"version": 1})
		a.do(t, "DELETE", "/v5/credentials/"+id, nil)
		a.do(t, "POST", "/v5/trash/credentials/"+id+"/restore", nil)

		rcv.mu.Lock()
		rcv.fail = 1 // the first attempt fails
		rcv.mu.Unlock()
		if n, err := v.App.Webhooks.RunOnce(context.Background()); err != nil || n != 5 {
			t.Fatalf("first run attempted %d (%v), want 5", n, err)
		}
		if n, _ := v.App.Webhooks.RunOnce(context.Background()); n != 0 {
			t.Fatalf("a failed delivery was retried before its backoff (%d)", n)
		}
		l := a.deliveries(t, hook.ID)
		failed := 0
		for _, d := range l.Items {
			if d.Status == "pending" {
				failed++
				if d.Attempts != 1 || d.LastStatus == nil || *d.LastStatus != 500 {
					t.Fatalf("failed delivery = %+v", d)
				}
			}
		}
		if len(l.Items) != 5 || failed != 1 {
			t.Fatalf("deliveries = %+v", l)
		}
		clk.Add(webhook.DefaultRetryBase)
		if n, _ := v.App.Webhooks.RunOnce(context.Background()); n != 1 {
			t.Fatalf("retry attempted %d, want 1", n)
		}
		for _, d := range a.deliveries(t, hook.ID).Items {
			if d.Status != "delivered" {
				t.Fatalf("delivery after retry = %+v", d)
			}
		}
		if len(a.deliveries(t, other.ID).Items) != 0 {
			t.Fatal("a webhook received events it did not subscribe to")
		}
		evs := rcv.events(t, hook.Secret, clk)
		types := map[string]int{}
		seen := map[string]bool{}
		for _, ev := range evs {
			if !seen[ev.ID] { // the retried event came twice, with the same id
				types[ev.Type]++
			}
			seen[ev.ID] = true
			if ev.Data.ObjectID != id || ev.AccountID != v.AccountID || ev.Actor.ID != v.PrincipalID {
				t.Fatalf("event = %+v", ev)
			}
		}
		if len(seen) != 5 || types["credential.created"] != 1 || types["credential.updated"] != 1 || types["credential.rolled_back"] != 1 ||
			types["credential.deleted"] != 1 || types["credential.restored"] != 1 {
			t.Fatalf("event types = %v (%d distinct ids)", types, len(seen))
		}
		for _, r := range rcv.reqs {
			for _, s := range []string{payload, "desc-canary", "meta-canary"} {
				notContains(t, "event", r.body, s)
			}
		}
		// Update and delete the webhook.
		r = a.do(t, "PATCH", "/v5/webhooks/"+hook.ID, map[string]any{"events": []string{"credential.purged"}})
		wantStatus(t, r, 200)
		wantStatus(t, a.do(t, "DELETE", "/v5/webhooks/"+hook.ID, nil), 200)
		wantDetail(t, a.do(t, "GET", "/v5/webhooks/"+hook.ID, nil), 404)
		a.setPayload(t, id, "after")
		if n, _ := v.App.Webhooks.RunOnce(context.Background()); n != 0 {
			t.Fatalf("a deleted webhook still gets deliveries (%d)", n)
		}
		// API key events.
		wantStatus(t, a.do(t, "PATCH", "/v5/webhooks/"+other.ID, map[string]any{"events": []string{"apikey.created", "apikey.revoked"}}), 200)
		nm := v.NewMember(t, v.AccountID, "new-member", vault.RoleReader)
		keys, err := v.App.Store.ListAPIKeys(context.Background(), nm.PrincipalID)
		if err != nil || len(keys) != 1 {
			t.Fatalf("admin keys: %v, %v", keys, err)
		}
		if err := v.App.Service.RevokeAPIKey(context.Background(), keys[0].ID); err != nil {
			t.Fatal(err)
		}
		if n, _ := v.App.Webhooks.RunOnce(context.Background()); n != 2 {
			t.Fatalf("apikey deliveries attempted: %d", n)
		}
		l = a.deliveries(t, other.ID)
		if len(l.Items) != 2 || l.Items[0].Status != "delivered" || l.Items[1].Status != "delivered" ||
			l.Items[0].EventType+","+l.Items[1].EventType != "apikey.revoked,apikey.created" {
			t.Fatalf("apikey webhook deliveries = %+v", l)
		}
	}, "127.0.0.1")
}

// TestWebhookRetryWindow: a delivery that keeps failing is retried with
// exponential backoff for more than 24 hours, then marked failed.
func TestWebhookRetryWindow(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		rcv := newReceiver(t)
		rcv.fail = 1 << 30
		hook := a.registerWebhook(t, rcv.URL, "credential.created")
		a.createNamed(t, "x", "y")
		start := clk.Now()
		var prevGap time.Duration
		last := start
		for i := 0; i < 40; i++ {
			n, err := v.App.Webhooks.RunOnce(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				t.Fatalf("attempt %d not due", i)
			}
			d := a.deliveries(t, hook.ID).Items[0]
			if d.Status == "failed" {
				if since := clk.Now().Sub(start); since < 24*time.Hour {
					t.Fatalf("gave up after %s", since)
				}
				return
			}
			// Jump to the next attempt: the gap doubles (up to the cap).
			var next struct {
				Items []struct {
					Next string `json:"next_attempt_at"`
				} `json:"items"`
			}
			a.do(t, "GET", "/v5/webhooks/"+hook.ID+"/deliveries", nil).Decode(t, &next)
			at := parseTime(t, next.Items[0].Next)
			gap := at.Sub(last)
			if gap < prevGap || gap > webhook.MaxBackoff {
				t.Fatalf("attempt %d: gap %s after %s", i, gap, prevGap)
			}
			prevGap, last = gap, at
			clk.Add(at.Sub(clk.Now()))
		}
		t.Fatal("never gave up")
	}, "127.0.0.1")
}

// TestWebhookSSRF: a webhook on a loopback address the operator did not
// allow (by IP, IPv4-mapped, or reached by a redirect from an allowed host)
// is never delivered to. (A name resolving to such an address: see
// internal/webhook TestGuard.)
func TestWebhookSSRF(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		rcv := newReceiver(t)
		port := rcv.URL[strings.LastIndex(rcv.URL, ":")+1:]
		redirector := httptest.NewServer(http.RedirectHandler(rcv.URL+"/redirected", http.StatusTemporaryRedirect))
		t.Cleanup(redirector.Close)
		rport := redirector.URL[strings.LastIndex(redirector.URL, ":")+1:]
		hooks := []hookWire{
			a.registerWebhook(t, rcv.URL, "*"),
			a.registerWebhook(t, "http://[::ffff:127.0.0.1]:"+port, "*"),
			// "localhost" is allowed by name; the redirect to 127.0.0.1 is not.
			a.registerWebhook(t, "http://localhost:"+rport, "*"),
		}
		a.createNamed(t, "x", "y")
		if n, _ := v.App.Webhooks.RunOnce(context.Background()); n != len(hooks) {
			t.Fatalf("attempted %d", n)
		}
		if rcv.count() != 0 {
			t.Fatalf("the receiver on a loopback address got %d requests", rcv.count())
		}
		for _, h := range hooks {
			d := a.deliveries(t, h.ID).Items[0]
			if d.Status != "pending" || !strings.Contains(d.LastError, "not public and not allowed") {
				t.Errorf("delivery to %s = %+v", h.URL, d)
			}
		}
	}, "localhost")
}

// TestWebhookOneReplica: two replicas on one database claim deliveries
// concurrently; each event is sent exactly once.
func TestWebhookOneReplica(t *testing.T) {
	eachLifecycle(t, func(t *testing.T, v *vaulttest.Vault, clk *testClock) {
		a := admin(v)
		rcv := newReceiver(t)
		hook := a.registerWebhook(t, rcv.URL, "credential.created")
		for i := range 40 {
			a.createNamed(t, fmt.Sprintf("c%d", i), "x")
		}
		cfg := v.Config
		b, err := app.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var wg sync.WaitGroup
		for _, ap := range []*app.App{v.App, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n, err := ap.Webhooks.RunOnce(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					if n == 0 {
						return
					}
				}
			}()
		}
		wg.Wait()
		evs := rcv.events(t, hook.Secret, clk)
		ids := map[string]bool{}
		for _, ev := range evs {
			ids[ev.ID] = true
		}
		if len(evs) != 40 || len(ids) != 40 {
			t.Fatalf("%d deliveries of %d events, want 40 of 40", len(evs), len(ids))
		}
	}, "127.0.0.1")
}
