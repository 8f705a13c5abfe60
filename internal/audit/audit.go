// Package audit is credvault's audit trail: an append-only, hash-chained
// log of every mutation, every secret access and every failed
// authentication, stored in the database through vault.AuditStore.
//
// Each record's hash is SHA-256 over a domain tag, the previous record's
// hash and the record's own fields (length-prefixed), so editing, inserting
// or deleting a record breaks the chain at a point Verify names. Appends
// from concurrent requests are group-committed: one transaction (one fsync)
// carries every event that arrived while the previous one was committing,
// so a fail-closed audit write costs little under load.
package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// maxBatch bounds the events committed in one transaction.
const maxBatch = 512

// Trail appends events to the store. It implements vault.Auditor.
type Trail struct {
	store vault.AuditStore
	reqs  chan *pending

	closeOnce sync.Once
	closed    chan struct{}
	done      chan struct{}

	// failures counts appends that could not be written (for metrics).
	failures func()
	// batches, if set, observes the size of every committed batch.
	batches func(n int)
}

// ObserveBatches installs a callback that receives the size of every
// group-committed batch (for metrics). Call it before the first Append.
func (t *Trail) ObserveBatches(fn func(n int)) { t.batches = fn }

type pending struct {
	ev   vault.AuditEvent
	errc chan error
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit trail closed")

// New starts a trail over store. onFailure, if not nil, is called once per
// event that could not be written.
func New(store vault.AuditStore, onFailure func()) *Trail {
	t := &Trail{store: store, reqs: make(chan *pending, maxBatch), closed: make(chan struct{}), done: make(chan struct{}), failures: onFailure}
	go t.loop()
	return t
}

// Append records ev durably, returning only once it is committed.
func (t *Trail) Append(ctx context.Context, ev vault.AuditEvent) error {
	p := &pending{ev: ev, errc: make(chan error, 1)}
	select {
	case t.reqs <- p:
	case <-t.closed:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", ctx.Err())
	}
	select {
	case err := <-p.errc:
		return err
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", ctx.Err())
	}
}

// Close stops the trail after committing what is queued.
func (t *Trail) Close() {
	t.closeOnce.Do(func() { close(t.closed) })
	<-t.done
}

func (t *Trail) loop() {
	defer close(t.done)
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case p := <-t.reqs:
			batch = append(batch[:0], p)
		case <-t.closed:
			// Drain what is queued, then stop.
			for {
				select {
				case p := <-t.reqs:
					t.commit([]*pending{p})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case p := <-t.reqs:
				batch = append(batch, p)
			default:
				break drain
			}
		}
		t.commit(batch)
	}
}

func (t *Trail) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := t.store.AppendAudit(ctx, func(seq int64, prev []byte) ([]vault.AuditRecord, error) {
		if prev == nil {
			prev = []byte{} // the first record links to the empty hash
		}
		recs := make([]vault.AuditRecord, len(batch))
		for i, p := range batch {
			seq++
			r := vault.AuditRecord{AuditEvent: p.ev, Seq: seq, ID: vault.AuditRecordID(seq), PrevHash: prev}
			r.Hash = Hash(&r)
			recs[i] = r
			prev = r.Hash
		}
		return recs, nil
	})
	if t.batches != nil {
		t.batches(len(batch))
	}
	for _, p := range batch {
		if err != nil && t.failures != nil {
			t.failures()
		}
		p.errc <- err
	}
}

// Hash computes a record's chained hash from its fields and PrevHash.
func Hash(r *vault.AuditRecord) []byte {
	h := sha256.New()
	h.Write([]byte("credvault/audit/v1\x00"))
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field(r.PrevHash)
	field([]byte(strconv.FormatInt(r.Seq, 10)))
	field([]byte(r.ID))
	field([]byte(strconv.FormatInt(r.Time.UnixMicro(), 10)))
	for _, s := range []string{r.AccountID, r.PrincipalID, string(r.PrincipalKind), r.Action, r.ObjectType, r.ObjectID, r.Outcome, r.RequestID, r.ClientAddr} {
		field([]byte(s))
	}
	return h.Sum(nil)
}

// Report is the result of Verify.
type Report struct {
	Records  int64
	HeadSeq  int64
	HeadHash []byte
	Problems []string // empty when the chain is intact
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Verify walks the whole trail and reports every break in the chain: an
// edited record (its hash no longer matches its content), a deleted or
// inserted record (a sequence gap or a broken previous-hash link), and
// removed newest records (the head row points past the end).
func Verify(ctx context.Context, store vault.AuditStore) (*Report, error) {
	rep := &Report{}
	var prev []byte
	var expect int64 = 1
	err := store.ScanAudit(ctx, func(r vault.AuditRecord) error {
		rep.Records++
		if r.Seq != expect {
			if r.Seq > expect {
				rep.Problems = append(rep.Problems, fmt.Sprintf("records %d..%d are missing (deleted) before record %d", expect, r.Seq-1, r.Seq))
			} else {
				rep.Problems = append(rep.Problems, fmt.Sprintf("record %d is out of sequence (inserted?)", r.Seq))
			}
		}
		if !bytes.Equal(r.PrevHash, prev) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("record %d (id %s): link to the previous record is broken (a record before it was deleted, inserted or edited)", r.Seq, r.ID))
		}
		if !bytes.Equal(Hash(&r), r.Hash) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("record %d (id %s): content does not match its hash (edited)", r.Seq, r.ID))
		}
		prev, expect = r.Hash, r.Seq+1
		return nil
	})
	if err != nil {
		return nil, err
	}
	seq, hash, err := store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	rep.HeadSeq, rep.HeadHash = seq, hash
	if seq != expect-1 || (seq > 0 && !bytes.Equal(hash, prev)) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the head says the newest record is %d, but the log ends at %d (newest records deleted or head edited)", seq, expect-1))
	}
	return rep, nil
}
