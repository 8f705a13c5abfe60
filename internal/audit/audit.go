// Package audit is credvault's audit trail: an append-only, hash-chained
// log of every mutation, every secret access and every failed
// authentication, stored in the database through vault.AuditStore.
//
// Each record's hash is SHA-256 over a domain tag, the previous record's
// hash and the record's own fields (length-prefixed), so editing, inserting
// or deleting a record breaks the chain at a point Verify names. Appends
// from concurrent requests are group-committed: one transaction (one fsync)
// carries every event that arrived while the previous one was committing,
// so a fail-closed audit write costs little under load. The record of a
// change is instead written by the store in the change's own transaction
// (Trail.Chain, vault.TxAudit), so that committed and audited cannot differ.
//
// The head row (newest seq and hash) carries a MAC under a key derived from
// the master key (Keys), and every appender checks it before extending the
// chain: cutting records off the end and moving the head back needs the
// master key. Moving the head back to an older head row that was copied
// earlier (a rollback) is detected only against a checkpoint recorded
// outside the database (Checkpoint, VerifyOptions.Anchors).
package audit

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// maxBatch bounds the events committed in one transaction.
const maxBatch = 512

// Keys derives the keys that authenticate the head and checkpoints from
// the master key (internal/crypto's Keyring implements it): keyID 0 selects
// the primary master key; the id used is returned.
type Keys interface {
	DeriveKey(keyID uint32, purpose string) (uint32, []byte, error)
}

// Trail appends events to the store. It implements vault.Auditor and
// vault.AuditChain.
type Trail struct {
	store vault.AuditStore
	reqs  chan *pending
	keys  Keys // nil: heads are not authenticated

	closeOnce sync.Once
	closed    chan struct{}
	done      chan struct{}

	// failures counts appends that could not be written (for metrics).
	failures func()
	// batches, if set, observes the size of every committed batch.
	batches func(n int)
}

// SetKeys makes the trail authenticate the head it writes, and refuse to
// extend a head that does not authenticate. Call it before the first
// Append. Without keys the head is written without a MAC (tests, tools).
func (t *Trail) SetKeys(k Keys) { t.keys = &cachedKeys{keys: k} }

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
		batch = drainInto(t.reqs, batch)
		if len(batch) >= yieldAt {
			// Under load, let the requests that are about to append run
			// first: more records share the commit (its transaction, head
			// row and fsync are paid once per batch).
			runtime.Gosched()
			batch = drainInto(t.reqs, batch)
		}
		t.commit(batch)
	}
}

// yieldAt is the batch size from which the committer yields once before
// committing. Measured (docs/benchmarks.md, round 5): decrypt at c=64
// +11 % and a lower p99, c=1 and c=16 unchanged — they rarely queue four
// records, and yielding on every batch cost them 15–20 % (round 4).
const yieldAt = 4

// drainInto appends what reqs holds to batch, up to maxBatch, without
// waiting.
func drainInto(reqs <-chan *pending, batch []*pending) []*pending {
	for len(batch) < maxBatch {
		select {
		case p := <-reqs:
			batch = append(batch, p)
		default:
			return batch
		}
	}
	return batch
}

func (t *Trail) commit(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	evs := make([]vault.AuditEvent, len(batch))
	for i, p := range batch {
		evs[i] = p.ev
	}
	err := t.store.AppendAudit(ctx, func(head vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
		return t.Chain(head, evs)
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

// ErrHeadUnauthenticated is returned when the head row's MAC does not
// verify: the head was moved (the newest records cut off) or forged, or
// the master key that authenticated it is gone. Nothing is appended to
// such a head; `credvault audit verify` says more.
var ErrHeadUnauthenticated = errors.New("the audit trail's head does not authenticate under the master key (the trail was cut short or its head edited); refusing to extend it")

// Chain numbers evs after head, links each to its predecessor's hash and
// returns the records and the new, authenticated head. It refuses a
// non-empty head whose MAC does not verify. Stores call it inside the
// transaction that inserts the records.
func (t *Trail) Chain(head vault.AuditHead, evs []vault.AuditEvent) ([]vault.AuditRecord, vault.AuditHead, error) {
	return t.chain(head, evs, true)
}

// SealHead appends ev without checking the current head's MAC and
// authenticates the new head: the operator's way (`credvault audit
// seal-head`) to adopt a trail whose head is not authenticated — written by
// a version without head MACs, or left so by a master key that is gone —
// after checking it against an anchor. ev records that it was done.
func (t *Trail) SealHead(ctx context.Context, ev vault.AuditEvent) error {
	if t.keys == nil {
		return errors.New("audit seal-head: no master key configured")
	}
	return t.store.AppendAudit(ctx, func(head vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
		return t.chain(head, []vault.AuditEvent{ev}, false)
	})
}

func (t *Trail) chain(head vault.AuditHead, evs []vault.AuditEvent, check bool) ([]vault.AuditRecord, vault.AuditHead, error) {
	if check && t.keys != nil && head.Seq > 0 {
		if err := t.checkHeadMAC(head); err != nil {
			return nil, head, err
		}
	}
	prev, seq := head.Hash, head.Seq
	if prev == nil {
		prev = []byte{} // the first record links to the empty hash
	}
	recs := make([]vault.AuditRecord, len(evs))
	for i, ev := range evs {
		seq++
		r := vault.AuditRecord{AuditEvent: ev, Seq: seq, ID: vault.AuditRecordID(seq), PrevHash: prev}
		r.Hash = Hash(&r)
		recs[i] = r
		prev = r.Hash
	}
	next := vault.AuditHead{Seq: seq, Hash: prev}
	if t.keys != nil {
		mac, err := t.headMAC(0, seq, prev)
		if err != nil {
			return nil, head, err
		}
		next.MAC = mac
	}
	return recs, next, nil
}

const (
	purposeHead       = "audit-head"
	purposeCheckpoint = "audit-checkpoint"
)

// cachedKeys remembers derived keys by master key id and purpose (a
// master key id always names the same key).
type cachedKeys struct {
	keys Keys
	m    sync.Map // ck → []byte
}

type ck struct {
	id      uint32
	purpose string
}

func (c *cachedKeys) DeriveKey(keyID uint32, purpose string) (uint32, []byte, error) {
	if keyID != 0 {
		if k, ok := c.m.Load(ck{keyID, purpose}); ok {
			return keyID, k.([]byte), nil
		}
	}
	id, k, err := c.keys.DeriveKey(keyID, purpose)
	if err != nil {
		return 0, nil, err
	}
	c.m.Store(ck{id, purpose}, k)
	return id, k, nil
}

func (t *Trail) headMAC(keyID uint32, seq int64, hash []byte) ([]byte, error) {
	return headMAC(t.keys, keyID, seq, hash)
}

func (t *Trail) checkHeadMAC(h vault.AuditHead) error { return checkHeadMAC(t.keys, h) }

// headMAC returns keyID (4 bytes) || HMAC-SHA256 over the head, under the
// head key derived from master key keyID (0: the primary).
func headMAC(keys Keys, keyID uint32, seq int64, hash []byte) ([]byte, error) {
	id, k, err := keys.DeriveKey(keyID, purposeHead)
	if err != nil {
		return nil, fmt.Errorf("audit head: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("credvault/audit-head/v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	m.Write(hash)
	return m.Sum(binary.BigEndian.AppendUint32(nil, id)), nil
}

func checkHeadMAC(keys Keys, h vault.AuditHead) error {
	if len(h.MAC) != 4+sha256.Size {
		return ErrHeadUnauthenticated
	}
	want, err := headMAC(keys, binary.BigEndian.Uint32(h.MAC), h.Seq, h.Hash)
	if err != nil || !hmac.Equal(want, h.MAC) {
		return ErrHeadUnauthenticated
	}
	return nil
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
	// HeadAuthenticated is true when the head's MAC was checked and holds.
	HeadAuthenticated bool
	// AnchorsChecked counts the checkpoints the trail was compared with.
	AnchorsChecked int
	Problems       []string // empty when the trail verified
}

// OK reports whether the trail verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// VerifyOptions says what Verify checks beyond the hash chain.
type VerifyOptions struct {
	// Keys, if set, checks the head's MAC: without it, cutting off the
	// newest records and moving the head back goes unnoticed.
	Keys Keys
	// Anchors are heads recorded outside the database (checkpoints, or a
	// head printed by an earlier verify): each must still be in the trail
	// with the same hash. This detects a rollback to an older head and a
	// rewrite of the whole trail, back to the newest anchor.
	Anchors []Anchor
}

// Anchor is a (seq, hash) recorded outside the database.
type Anchor struct {
	Seq  int64
	Hash []byte
	Note string // where it came from, for messages
}

// ParseAnchor parses "SEQ:HASH" (HASH in hex), as printed by verify.
func ParseAnchor(s string) (Anchor, error) {
	seqS, hashS, ok := strings.Cut(strings.TrimSpace(s), ":")
	seq, err := strconv.ParseInt(seqS, 10, 64)
	if !ok || err != nil || seq < 0 {
		return Anchor{}, fmt.Errorf("anchor %q: want SEQ:HASH (as printed by credvault audit verify)", s)
	}
	hash, err := hex.DecodeString(hashS)
	if err != nil || (seq > 0 && len(hash) != sha256.Size) {
		return Anchor{}, fmt.Errorf("anchor %q: the hash must be %d hex bytes", s, sha256.Size)
	}
	return Anchor{Seq: seq, Hash: hash, Note: "--expect-head " + s}, nil
}

// Verify walks the whole trail and reports every break in the chain: an
// edited record (its hash no longer matches its content), a deleted or
// inserted record (a sequence gap or a broken previous-hash link), removed
// newest records (the head row points past the end, or — with
// opts.Keys — a head moved back without the master key), and any anchor
// the trail no longer contains.
func Verify(ctx context.Context, store vault.AuditStore, opts VerifyOptions) (*Report, error) {
	rep := &Report{}
	var prev []byte
	var expect int64 = 1
	anchorsAt := map[int64][]Anchor{}
	for _, a := range opts.Anchors {
		anchorsAt[a.Seq] = append(anchorsAt[a.Seq], a)
	}
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
		for _, a := range anchorsAt[r.Seq] {
			rep.AnchorsChecked++
			if !bytes.Equal(a.Hash, r.Hash) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("record %d does not match the anchor (%s): the trail was rewritten from there on", r.Seq, a.Note))
			}
		}
		delete(anchorsAt, r.Seq)
		prev, expect = r.Hash, r.Seq+1
		return nil
	})
	if err != nil {
		return nil, err
	}
	for seq, as := range anchorsAt {
		for _, a := range as {
			rep.AnchorsChecked++
			if seq == 0 {
				continue // the empty trail is a prefix of every trail
			}
			rep.Problems = append(rep.Problems, fmt.Sprintf("the anchor (%s) names record %d, but the trail ends at %d: newer records were removed (rolled back)", a.Note, seq, expect-1))
		}
	}
	head, err := store.AuditHead(ctx)
	if err != nil {
		return nil, err
	}
	rep.HeadSeq, rep.HeadHash = head.Seq, head.Hash
	if head.Seq != expect-1 || (head.Seq > 0 && !bytes.Equal(head.Hash, prev)) {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the head says the newest record is %d, but the log ends at %d (newest records deleted or head edited)", head.Seq, expect-1))
	}
	if opts.Keys != nil && head.Seq > 0 {
		switch {
		case len(head.MAC) == 0:
			rep.Problems = append(rep.Problems, "the head is not authenticated (no MAC): its MAC was removed, or the trail was written by a version without one; if an anchor confirms the trail, run `credvault audit seal-head`")
		case checkHeadMAC(opts.Keys, head) != nil:
			rep.Problems = append(rep.Problems, "the head's MAC does not verify under the master key: the head was moved back (newest records cut off) or edited, or the master key that authenticated it was retired")
		default:
			rep.HeadAuthenticated = true
		}
	}
	return rep, nil
}
