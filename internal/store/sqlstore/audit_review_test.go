package sqlstore

import (
	"context"
	"testing"

	"github.com/credvault/credvault/internal/vault"
)

// A first audit append that fails before the head row exists (the database
// is briefly unreachable, or the request's deadline passes) must not poison
// every later append for the life of the process: once the database
// answers again, audit writes — and so every fail-closed secret access —
// must work again.
func TestAuditHeadInitFailureIsNotSticky(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		build := func(head vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
			seq := head.Seq
			r := vault.AuditRecord{AuditEvent: vault.AuditEvent{Action: "test"}, Seq: seq + 1, ID: vault.AuditRecordID(seq + 1), PrevHash: []byte{}, Hash: []byte{1}}
			return []vault.AuditRecord{r}, vault.AuditHead{Seq: r.Seq, Hash: r.Hash}, nil
		}
		dead, cancel := context.WithCancel(context.Background())
		cancel()
		if err := db.AppendAudit(dead, build); err == nil {
			t.Fatal("append with a cancelled context succeeded")
		}
		if err := db.AppendAudit(context.Background(), build); err != nil {
			t.Fatalf("append after the database answers again: %v", err)
		}
		if h, err := db.AuditHead(context.Background()); err != nil || h.Seq != 1 {
			t.Fatalf("head = %d, %v; want 1", h.Seq, err)
		}
	})
}
