package sqlstore

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/vault"
)

// createEnv is a store opened twice on one database (two processes, or
// two replicas), and a service on the first.
type createEnv struct {
	db, other *DB
	svc       *vault.Service
	id        *vault.Identity
}

func newCreateEnv(t *testing.T, engine string) *createEnv {
	t.Helper()
	ctx := context.Background()
	dsn := newDSN(t, engine)
	open := func() *DB {
		db, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	e := &createEnv{db: open()}
	e.other = open()
	e.svc, e.id = newService(t, e.db)
	return e
}

// create creates credentials named names; on SQLite they are queued behind
// a held write so that they share one group-committed transaction.
func (e *createEnv) create(t *testing.T, names ...string) {
	t.Helper()
	ctx := context.Background()
	var release func()
	if e.db.d == sqliteDialect {
		release = holdWriter(t, e.db)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Go(func() {
			_, errs[i] = e.svc.CreateCredential(ctx, e.id, vault.CredentialInput{Name: n, Type: "key", Payload: []byte("p")})
		})
		if release != nil {
			waitQueued(t, e.db, i+1)
		}
	}
	if release != nil {
		release()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %s: %v", names[i], err)
		}
	}
}

// addWebhook registers a webhook on credential.created through db.
func (e *createEnv) addWebhook(t *testing.T, db *DB, id string) {
	t.Helper()
	now := time.Now()
	if err := db.CreateWebhook(context.Background(), &vault.Webhook{ID: id, AccountID: e.id.AccountID, URL: "https://hooks.example.com/" + id,
		Events: []string{vault.EventCredentialCreated}, CreatedBy: e.id.Principal.ID, CreatedAt: now, UpdatedAt: now, Secret: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
}

func (e *createEnv) deliveries(t *testing.T, webhookID string) int {
	t.Helper()
	ds, err := e.db.ListDeliveries(context.Background(), e.id.AccountID, webhookID, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return len(ds)
}

// TestWriteStatements_Prepared: once a write statement has been met, the
// create path (credential, version, count, outbox, delivery, audit record,
// and on SQLite the group commit's savepoints) runs no statement from its
// text, and what it writes is whole.
func TestWriteStatements_Prepared(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			e := newCreateEnv(t, engine)
			e.addWebhook(t, e.db, "w1")
			e.create(t, "warm-1", "warm-2") // notes the texts
			e.create(t, "warm-3")           // prepares them first
			before := e.db.textWrites.Load()
			for i := range 3 {
				e.create(t, fmt.Sprintf("a-%d", i), fmt.Sprintf("b-%d", i), fmt.Sprintf("c-%d", i))
			}
			if n := e.db.textWrites.Load() - before; n != 0 {
				t.Errorf("%d write statements ran from their text after the first creates, want 0", n)
			}
			if n := e.deliveries(t, "w1"); n != 12 {
				t.Errorf("%d deliveries, want 12 (one per create)", n)
			}
			rep, err := audit.Verify(context.Background(), e.db, audit.VerifyOptions{})
			if err != nil || !rep.OK() {
				t.Fatalf("audit: %+v, %v", rep, err)
			}
		})
	}
}

// TestAppendAudit_Chunks: records appended in one call in several
// multi-row INSERTs (power-of-two chunks, largest first) are all stored,
// in order, and chain.
func TestAppendAudit_Chunks(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := openDB(t, engine)
			var chain audit.Trail
			for _, n := range []int{1, auditChunk + 3, 2*auditChunk + 1, 99} {
				err := db.AppendAudit(ctx, func(h vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
					evs := make([]vault.AuditEvent, n)
					for i := range evs {
						evs[i] = vault.AuditEvent{Action: "test.chunk", ObjectID: fmt.Sprint(i), Outcome: "success"}
					}
					return chain.Chain(h, evs)
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			want := 1 + auditChunk + 3 + 2*auditChunk + 1 + 99
			rep, err := audit.Verify(ctx, db, audit.VerifyOptions{})
			if err != nil || !rep.OK() || rep.Records != int64(want) || rep.HeadSeq != int64(want) {
				t.Fatalf("audit: %+v, %v; want %d records, verified", rep, err, want)
			}
		})
	}
}

// TestEvents_WebhookAddedElsewhere: the outbox never misses an event for
// an account that has a webhook, although transactions that find no
// webhook in the whole vault skip the lookups: a webhook registered by
// another process (replica) gets the next creates' events; on SQLite so
// does one registered inside the very transaction (group commit) that
// holds creates made without a webhook in sight.
func TestEvents_WebhookAddedElsewhere(t *testing.T) {
	for _, engine := range []string{SQLite, Postgres} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			e := newCreateEnv(t, engine)
			e.create(t, "none-1", "none-2")
			e.addWebhook(t, e.other, "w1")
			e.create(t, "one-1", "one-2", "one-3")
			if n := e.deliveries(t, "w1"); n != 3 {
				t.Fatalf("%d deliveries to the webhook another process registered, want 3", n)
			}
			// Deleted everywhere again: the count is back to zero, and
			// creates are skipped (no delivery) until the next webhook.
			if err := e.other.DeleteWebhook(ctx, e.id.AccountID, "w1"); err != nil {
				t.Fatal(err)
			}
			e.create(t, "gone-1", "gone-2")
			if e.db.d != sqliteDialect {
				return
			}
			// One transaction: a create, the webhook's registration, a
			// create. The first create kept its event aside (no webhook at
			// the start); the second's must reach the webhook.
			release := holdWriter(t, e.db)
			var wg sync.WaitGroup
			errs := make([]error, 3)
			wg.Go(func() {
				_, errs[0] = e.svc.CreateCredential(ctx, e.id, vault.CredentialInput{Name: "same-1", Type: "key", Payload: []byte("p")})
			})
			waitQueued(t, e.db, 1)
			wg.Go(func() {
				now := time.Now()
				errs[1] = e.db.CreateWebhook(ctx, &vault.Webhook{ID: "w2", AccountID: e.id.AccountID, URL: "https://hooks.example.com/w2",
					Events: []string{vault.EventCredentialCreated}, CreatedBy: e.id.Principal.ID, CreatedAt: now, UpdatedAt: now, Secret: []byte("sealed")})
			})
			waitQueued(t, e.db, 2)
			wg.Go(func() {
				_, errs[2] = e.svc.CreateCredential(ctx, e.id, vault.CredentialInput{Name: "same-2", Type: "key", Payload: []byte("p")})
			})
			waitQueued(t, e.db, 3)
			release()
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
			}
			// Both creates committed with the webhook, in one transaction:
			// both events are delivered.
			if n := e.deliveries(t, "w2"); n != 2 {
				t.Fatalf("%d deliveries to the webhook registered in the same transaction, want 2", n)
			}
		})
	}
}
