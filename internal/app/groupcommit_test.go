package app_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/dbtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func manualLifecycle(c *app.Config) { c.Lifecycle.Manual = true }

// writeBatches returns the number of group-committed transactions and how
// many of them held more than over writes (credvault_db_write_batch_size).
func writeBatches(t *testing.T, v *vaulttest.Vault, over float64) (total, larger uint64) {
	t.Helper()
	mfs, err := v.App.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "credvault_db_write_batch_size" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		total = h.GetSampleCount()
		larger = total
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == over {
				larger = total - b.GetCumulativeCount()
			}
		}
	}
	return total, larger
}

// createTogether creates a credential of each name, concurrently. On SQLite
// it makes them share one transaction: it holds the database's write lock
// (as another process would), starts one create, which takes the lead and
// waits for the lock, then the others, which queue behind it, and releases
// the lock once they all wait. It returns the statuses by position.
func createTogether(t *testing.T, v *vaulttest.Vault, names []string) []int {
	t.Helper()
	ctx := context.Background()
	create := func(name string) int {
		return v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": "p"}).Status
	}
	statuses := make([]int, len(names))
	var wg sync.WaitGroup
	if v.Engine != sqlstore.SQLite {
		for i, name := range names {
			wg.Go(func() { statuses[i] = create(name) })
		}
		wg.Wait()
		return statuses
	}
	// Authenticate once first: the key's last-use time is written (at most
	// once a minute) outside the write transactions.
	if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != 200 {
		t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	conn, err := v.RawDB(t).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	gc := v.App.Store
	var lead int
	poll := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				conn.ExecContext(ctx, "ROLLBACK")
				n, _ := writeBatches(t, v, 1)
				t.Fatalf("waiting for %s (%d transactions, %d writes queued)", what, n, gc.QueuedWrites())
			}
		}
	}
	n0, _ := writeBatches(t, v, 1)
	wg.Go(func() { lead = create("gc-lead") })
	poll("the leading create", func() bool { n, _ := writeBatches(t, v, 1); return n > n0 })
	for i, name := range names {
		wg.Go(func() { statuses[i] = create(name) })
	}
	poll("the creates to queue", func() bool { return gc.QueuedWrites() == len(names) })
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if lead != 200 {
		t.Fatalf("the leading create: %d", lead)
	}
	if _, larger := writeBatches(t, v, float64(len(names)/2)); larger == 0 {
		t.Fatalf("no transaction held more than %d creates", len(names)/2)
	}
	return statuses
}

// storedAndAudited checks that the credentials stored are exactly those
// with a successful credential.create record, and that the audit trail
// verifies; it returns the names stored with the prefix.
func storedAndAudited(t *testing.T, v *vaulttest.Vault, prefix string) []string {
	t.Helper()
	raw := v.RawDB(t)
	ids := dbtest.Column[string](t.Context(), t, raw, `SELECT id FROM credentials ORDER BY id`)
	audited := dbtest.Column[string](t.Context(), t, raw, `SELECT object_id FROM audit_log WHERE action = 'credential.create' AND outcome = 'success' ORDER BY object_id`)
	if !slices.Equal(ids, audited) {
		t.Errorf("stored credentials %v, audited creates %v", ids, audited)
	}
	rep, err := audit.Verify(context.Background(), v.App.Store, audit.VerifyOptions{Keys: v.App.Keyring})
	if err != nil || !rep.OK() {
		t.Fatalf("audit verify: %+v, %v", rep, err)
	}
	return dbtest.Column[string](t.Context(), t, raw, `SELECT name FROM credentials WHERE name LIKE '`+prefix+`%' ORDER BY name`)
}

// TestGroupCommit_ConcurrentCreates: creates that share a transaction
// (SQLite's group commit) and fail with 409 — a duplicate among them, or a
// name taken before — leave the others stored, each success audited once
// and the chain intact.
func TestGroupCommit_ConcurrentCreates(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "gc-taken", "payload": "p"}); r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		names := []string{"gc-1", "gc-dup", "gc-2", "gc-taken", "gc-3", "gc-dup", "gc-4", "gc-dup"}
		statuses := createTogether(t, v, names)
		dupOK := 0
		for i, name := range names {
			switch {
			case name == "gc-taken" && statuses[i] != 409,
				strings.HasPrefix(name, "gc-") && name != "gc-dup" && name != "gc-taken" && statuses[i] != 200,
				name == "gc-dup" && statuses[i] != 200 && statuses[i] != 409:
				t.Errorf("%s: %d", name, statuses[i])
			case name == "gc-dup" && statuses[i] == 200:
				dupOK++
			}
		}
		if dupOK != 1 {
			t.Errorf("%d of the duplicate creates succeeded, want 1", dupOK)
		}
		want := []string{"gc-1", "gc-2", "gc-3", "gc-4", "gc-dup", "gc-taken"}
		if v.Engine == sqlstore.SQLite {
			want = []string{"gc-1", "gc-2", "gc-3", "gc-4", "gc-dup", "gc-lead", "gc-taken"}
		}
		if got := storedAndAudited(t, v, "gc-"); !slices.Equal(got, want) {
			t.Errorf("stored %v, want %v", got, want)
		}
		conflicts := dbtest.Column[string](t.Context(), t, v.RawDB(t), `SELECT outcome FROM audit_log WHERE action = 'credential.create' AND outcome <> 'success'`)
		if len(conflicts) != 3 || slices.ContainsFunc(conflicts, func(o string) bool { return o != "conflict" }) {
			t.Errorf("failed creates audited as %v, want 3 conflicts", conflicts)
		}
	}, manualLifecycle)
}

// TestGroupCommit_CommitFailure: when the commit of a shared transaction
// fails (a deferred foreign key, broken by a trigger on one create and
// checked only at the commit), every create of that transaction fails and
// none is stored or audited as a success; on PostgreSQL, where each create
// is its own transaction, only that create fails. The store goes on.
func TestGroupCommit_CommitFailure(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		raw := v.RawDB(t)
		install := []string{
			`CREATE TABLE gc_parent (id TEXT PRIMARY KEY)`,
			`CREATE TABLE gc_child (ref TEXT REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)`,
			`CREATE TRIGGER gc_poison AFTER INSERT ON credentials WHEN NEW.name = 'gc-poison' BEGIN INSERT INTO gc_child VALUES ('missing'); END`,
		}
		if v.Engine == sqlstore.Postgres {
			install = append(install[:2],
				`CREATE FUNCTION gc_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO gc_child VALUES ('missing'); RETURN NEW; END $$`,
				`CREATE TRIGGER gc_poison AFTER INSERT ON credentials FOR EACH ROW WHEN (NEW.name = 'gc-poison') EXECUTE FUNCTION gc_poison()`)
		}
		for _, q := range install {
			if _, err := raw.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
		names := []string{"gc-1", "gc-poison", "gc-2", "gc-3"}
		statuses := createTogether(t, v, names)
		for i, name := range names {
			want := 500
			if v.Engine == sqlstore.Postgres && name != "gc-poison" {
				want = 200
			}
			if statuses[i] != want {
				t.Errorf("%s: %d, want %d", name, statuses[i], want)
			}
		}
		want := []string{"gc-lead"} // its own transaction, before the shared one
		if v.Engine == sqlstore.Postgres {
			want = []string{"gc-1", "gc-2", "gc-3"}
		}
		if got := storedAndAudited(t, v, "gc-"); !slices.Equal(got, want) {
			t.Errorf("stored %v, want %v", got, want)
		}
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "gc-after", "payload": "p"}); r.Status != 200 {
			t.Fatalf("create after the failed commit: %d %s", r.Status, r.Body)
		}
	}, manualLifecycle)
}
