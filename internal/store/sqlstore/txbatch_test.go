package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/testutil/dbtest"
	"github.com/credvault/credvault/internal/vault"
)

// holdWriter starts a write whose transaction stays open until release is
// called, and returns once it runs: writes made meanwhile queue, and the
// next leader takes them all into one transaction.
func holdWriter(t *testing.T, db *DB) (release func()) {
	t.Helper()
	entered, rel, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.tx(context.Background(), func(tx *sql.Tx) error {
			close(entered)
			<-rel
			return nil
		})
	}()
	<-entered
	return func() {
		close(rel)
		if err := <-done; err != nil {
			t.Errorf("the holding write: %v", err)
		}
	}
}

// waitQueued polls until n writes wait for a transaction.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); db.QueuedWrites() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", db.QueuedWrites(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// write is one queued db.tx call of a test and its outcome.
type write struct {
	name string
	fn   func(ctx context.Context, tx *sql.Tx) error
	ctx  context.Context
	err  error
	pan  any // what its fn panicked with, re-raised in its own goroutine
	done chan struct{}
}

// start queues w and waits until it is queued (so writes queue in the
// order they are started).
func (w *write) start(t *testing.T, db *DB) {
	t.Helper()
	if w.ctx == nil {
		w.ctx = context.Background()
	}
	w.done = make(chan struct{})
	n := db.QueuedWrites()
	go func() {
		defer close(w.done)
		defer func() { w.pan = recover() }()
		w.err = db.tx(w.ctx, func(tx *sql.Tx) error { return w.fn(w.ctx, tx) })
	}()
	waitQueued(t, db, n+1)
}

// runTogether queues ws, in this order, behind a held write, so that they
// share the next transaction, then releases it and waits until every one
// is done.
func runTogether(t *testing.T, db *DB, ws ...*write) {
	t.Helper()
	release := holdWriter(t, db)
	for _, w := range ws {
		w.start(t, db)
	}
	release()
	for _, w := range ws {
		<-w.done
	}
}

// batchSizes records the number of writes in each transaction db runs from
// now on; sizes returns them so far.
func batchSizes(db *DB) (sizes func() []int) {
	var mu sync.Mutex
	var got []int
	db.batch.observe = func(n int) { mu.Lock(); got = append(got, n); mu.Unlock() }
	return func() []int {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func metaKeys(t *testing.T, db *DB, prefix string) []string {
	t.Helper()
	return dbtest.Column[string](context.Background(), t, db.r, `SELECT key FROM meta WHERE key LIKE ? ORDER BY key`, prefix+"%")
}

func putMeta(ctx context.Context, db *DB, tx *sql.Tx, key string) error {
	_, err := tx.ExecContext(ctx, db.q(`INSERT INTO meta (key, value) VALUES (?, ?)`), key, []byte("v"))
	return err
}

// TestGroupCommit_FailuresStayTheirOwn: writes queued behind a running
// transaction share the next one; a write that fails (a duplicate key, its
// own error, a panic) after it already wrote a row and an audit record is
// rolled back alone and gets its own outcome, the others commit, and the
// audit chain has exactly their records, gapless.
func TestGroupCommit_FailuresStayTheirOwn(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, SQLite)
	sizes := batchSizes(db)
	st, err := db.auditStmts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var chain audit.Trail // no keys: heads without MACs
	audited := func(ctx context.Context, tx *sql.Tx, key string) error {
		if err := putMeta(ctx, db, tx, key); err != nil {
			return err
		}
		return db.appendAudit(ctx, tx, st, func(h vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
			return chain.Chain(h, []vault.AuditEvent{{Action: "test.write", ObjectID: key, Outcome: "success"}})
		})
	}
	if err := db.tx(ctx, func(tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-taken") }); err != nil {
		t.Fatal(err)
	}
	refused := errors.New("refused by the test")
	ws := []*write{
		{name: "ok-1", fn: func(ctx context.Context, tx *sql.Tx) error { return audited(ctx, tx, "gc-ok-1") }},
		{name: "duplicate", fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := audited(ctx, tx, "gc-partial-dup"); err != nil {
				return err
			}
			return putMeta(ctx, db, tx, "gc-taken")
		}},
		{name: "ok-2", fn: func(ctx context.Context, tx *sql.Tx) error { return audited(ctx, tx, "gc-ok-2") }},
		{name: "refused", fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := audited(ctx, tx, "gc-partial-refused"); err != nil {
				return err
			}
			return refused
		}},
		{name: "panics", fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := audited(ctx, tx, "gc-partial-panic"); err != nil {
				return err
			}
			panic("boom")
		}},
		{name: "ok-3", fn: func(ctx context.Context, tx *sql.Tx) error { return audited(ctx, tx, "gc-ok-3") }},
	}
	runTogether(t, db, ws...)
	for _, w := range ws {
		switch {
		case strings.HasPrefix(w.name, "ok-"):
			if w.err != nil || w.pan != nil {
				t.Errorf("%s: %v, panic %v", w.name, w.err, w.pan)
			}
		case w.name == "duplicate":
			if !errors.Is(w.err, vault.ErrConflict) {
				t.Errorf("duplicate: %v, want a conflict", w.err)
			}
		case w.name == "refused":
			if !errors.Is(w.err, refused) {
				t.Errorf("refused: %v, want its own error", w.err)
			}
		case w.name == "panics":
			if w.pan != "boom" {
				t.Errorf("panics: panic %v, error %v; want its own panic", w.pan, w.err)
			}
		}
	}
	if got := sizes(); !slices.Contains(got, len(ws)) {
		t.Errorf("transaction sizes %v: the %d queued writes did not share one", got, len(ws))
	}
	if got, want := metaKeys(t, db, "gc-"), []string{"gc-ok-1", "gc-ok-2", "gc-ok-3", "gc-taken"}; !slices.Equal(got, want) {
		t.Errorf("stored %v, want %v", got, want)
	}
	rep, err := audit.Verify(ctx, db, audit.VerifyOptions{})
	if err != nil || !rep.OK() || rep.Records != 3 || rep.HeadSeq != 3 {
		t.Fatalf("audit: %+v, %v; want 3 records, verified", rep, err)
	}
	var objs []string
	if err := db.ScanAudit(ctx, func(r vault.AuditRecord) error { objs = append(objs, r.ObjectID); return nil }); err != nil {
		t.Fatal(err)
	}
	if want := []string{"gc-ok-1", "gc-ok-2", "gc-ok-3"}; !slices.Equal(objs, want) {
		t.Errorf("audited %v, want %v", objs, want)
	}
	// The store goes on: the next (lone) write commits.
	if err := db.tx(ctx, func(tx *sql.Tx) error { return audited(ctx, tx, "gc-after") }); err != nil {
		t.Fatal(err)
	}
	if rep, err := audit.Verify(ctx, db, audit.VerifyOptions{}); err != nil || !rep.OK() || rep.Records != 4 {
		t.Fatalf("audit after: %+v, %v", rep, err)
	}
}

// TestGroupCommit_CommitFailureFailsTheBatch: when the shared COMMIT
// fails (here a deferred foreign key one write broke, checked only at the
// commit), every write of the transaction gets the error and none is
// stored; the write connection is left clean.
func TestGroupCommit_CommitFailureFailsTheBatch(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, SQLite)
	for _, q := range []string{
		`CREATE TABLE gc_parent (id TEXT PRIMARY KEY)`,
		`CREATE TABLE gc_child (ref TEXT REFERENCES gc_parent (id) DEFERRABLE INITIALLY DEFERRED)`,
	} {
		if _, err := db.w.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ws := []*write{
		{name: "ok-1", fn: func(ctx context.Context, tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-1") }},
		{name: "dangling", fn: func(ctx context.Context, tx *sql.Tx) error {
			if err := putMeta(ctx, db, tx, "gc-2"); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO gc_child (ref) VALUES ('missing')`)
			return err
		}},
		{name: "ok-3", fn: func(ctx context.Context, tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-3") }},
	}
	runTogether(t, db, ws...)
	for _, w := range ws {
		if w.err == nil || !strings.Contains(w.err.Error(), "commit") || !strings.Contains(w.err.Error(), "FOREIGN KEY") {
			t.Errorf("%s: %v, want the commit's error", w.name, w.err)
		}
	}
	if got := metaKeys(t, db, "gc-"); len(got) != 0 {
		t.Errorf("stored %v after a failed commit", got)
	}
	if err := db.tx(ctx, func(tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-after") }); err != nil {
		t.Fatalf("write after the failed commit: %v", err)
	}
	if got := metaKeys(t, db, "gc-"); !slices.Equal(got, []string{"gc-after"}) {
		t.Errorf("stored %v", got)
	}
}

// TestGroupCommit_Cancelled: a write whose context ends while it waits
// for a transaction is not run — whether it is still queued (it leaves
// the queue at once) or already taken into the next transaction — and
// reports Unavailable; the others commit.
func TestGroupCommit_Cancelled(t *testing.T) {
	ctx := context.Background()
	db := openDB(t, SQLite)
	t.Run("queued", func(t *testing.T) {
		release := holdWriter(t, db)
		cctx, cancel := context.WithCancel(ctx)
		ran := false
		w := &write{ctx: cctx, fn: func(ctx context.Context, tx *sql.Tx) error { ran = true; return putMeta(ctx, db, tx, "gc-q-cancelled") }}
		w.start(t, db)
		cancel()
		<-w.done // returns while the writer is still held
		if vault.KindOf(w.err) != vault.KindUnavailable || !errors.Is(w.err, context.Canceled) {
			t.Errorf("cancelled: %v, want Unavailable (context canceled)", w.err)
		}
		if n := db.QueuedWrites(); n != 0 {
			t.Errorf("%d writes still queued", n)
		}
		release()
		if ran {
			t.Error("the cancelled write ran")
		}
	})
	t.Run("taken", func(t *testing.T) {
		release := holdWriter(t, db)
		entered, unblock := make(chan struct{}), make(chan struct{})
		first := &write{fn: func(ctx context.Context, tx *sql.Tx) error {
			close(entered)
			<-unblock
			return putMeta(ctx, db, tx, "gc-t-first")
		}}
		cctx, cancel := context.WithCancel(ctx)
		ran := false
		second := &write{ctx: cctx, fn: func(ctx context.Context, tx *sql.Tx) error { ran = true; return putMeta(ctx, db, tx, "gc-t-cancelled") }}
		third := &write{fn: func(ctx context.Context, tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-t-third") }}
		first.start(t, db)
		second.start(t, db)
		third.start(t, db)
		release()
		<-entered // the three share a transaction, which runs the first
		cancel()
		close(unblock)
		for _, w := range []*write{first, second, third} {
			<-w.done
		}
		if first.err != nil || third.err != nil {
			t.Errorf("others: %v, %v", first.err, third.err)
		}
		if vault.KindOf(second.err) != vault.KindUnavailable || !errors.Is(second.err, context.Canceled) {
			t.Errorf("cancelled: %v, want Unavailable (context canceled)", second.err)
		}
		if ran {
			t.Error("the cancelled write ran")
		}
		if got, want := metaKeys(t, db, "gc-t-"), []string{"gc-t-first", "gc-t-third"}; !slices.Equal(got, want) {
			t.Errorf("stored %v, want %v", got, want)
		}
	})
}

// TestGroupCommit_LostTransaction: a write that ends the shared
// transaction itself (as SQLite does after an interrupted write, an I/O
// error or a full disk) fails with its own error; the writes that ran
// before it in that transaction fail as Unavailable (their work is gone),
// and those after it run in a new transaction and commit.
func TestGroupCommit_LostTransaction(t *testing.T) {
	db := openDB(t, SQLite)
	killed := errors.New("the write ended the transaction")
	before := &write{fn: func(ctx context.Context, tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-before") }}
	killer := &write{fn: func(ctx context.Context, tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "ROLLBACK"); err != nil {
			return err
		}
		return killed
	}}
	after := &write{fn: func(ctx context.Context, tx *sql.Tx) error { return putMeta(ctx, db, tx, "gc-after") }}
	runTogether(t, db, before, killer, after)
	if vault.KindOf(before.err) != vault.KindUnavailable {
		t.Errorf("before: %v, want Unavailable", before.err)
	}
	if !errors.Is(killer.err, killed) {
		t.Errorf("killer: %v, want its own error", killer.err)
	}
	if after.err != nil {
		t.Errorf("after: %v", after.err)
	}
	if got := metaKeys(t, db, "gc-"); !slices.Equal(got, []string{"gc-after"}) {
		t.Errorf("stored %v, want [gc-after]", got)
	}
}

// TestGroupCommit_BoundedBatch: a transaction takes at most maxWriteBatch
// writes; the rest go into the next one, and all commit.
func TestGroupCommit_BoundedBatch(t *testing.T) {
	db := openDB(t, SQLite)
	sizes := batchSizes(db)
	release := holdWriter(t, db)
	n := maxWriteBatch + 10
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.tx(context.Background(), func(tx *sql.Tx) error {
				return putMeta(context.Background(), db, tx, fmt.Sprintf("gc-%03d", i))
			})
		})
	}
	waitQueued(t, db, n)
	release()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := sizes(); !slices.Contains(got, maxWriteBatch) || slices.Max(got) > maxWriteBatch {
		t.Errorf("transaction sizes %v, want one of %d and none larger", got, maxWriteBatch)
	}
	if got := len(metaKeys(t, db, "gc-")); got != n {
		t.Errorf("stored %d, want %d", got, n)
	}
}

// TestOnDeliveries: the store calls Options.OnDeliveries (the webhook
// worker's wake-up) after a commit that wrote webhook deliveries, and only
// then: changes of an account without a matching webhook, the common case,
// leave the worker asleep instead of making it read the outbox after each.
func TestOnDeliveries(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var wakes atomic.Int32
			db, err := OpenWith(ctx, newDSN(t, engine), Options{OnDeliveries: func() { wakes.Add(1) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			svc, id := newService(t, db)
			create := func(name string) {
				t.Helper()
				if _, err := svc.CreateCredential(ctx, id, vault.CredentialInput{Name: name, Type: "key", Payload: []byte("p")}); err != nil {
					t.Fatal(err)
				}
			}
			create("a")
			create("b")
			url := "https://hooks.example.com/credvault"
			if _, _, err := svc.CreateWebhook(ctx, id, vault.WebhookInput{URL: &url, Events: []string{vault.EventCredentialDeleted}}); err != nil {
				t.Fatal(err)
			}
			create("c") // an event no webhook subscribes to
			if n := wakes.Load(); n != 0 {
				t.Fatalf("%d wake-ups without a delivery", n)
			}
			if _, _, err := svc.CreateWebhook(ctx, id, vault.WebhookInput{URL: &url, Events: []string{vault.EventCredentialCreated}}); err != nil {
				t.Fatal(err)
			}
			create("d")
			if n := wakes.Load(); n != 1 {
				t.Fatalf("%d wake-ups after one commit with a delivery, want 1", n)
			}
		})
	}
}
