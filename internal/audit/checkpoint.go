package audit

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// Checkpoint is a signed statement of the trail's head at a time: the
// newest record's sequence number and hash, MACed under a key derived from
// the master key. Written outside the database (the server log, an anchor
// file), it lets `credvault audit verify --anchor-file` detect a rollback of
// the trail to an older head, which the head's own MAC cannot (an old head
// row carries a valid MAC).
type Checkpoint struct {
	Seq   int64     `json:"seq"`
	Hash  string    `json:"hash"` // hex
	Time  time.Time `json:"time"`
	KeyID uint32    `json:"key_id"`
	MAC   string    `json:"mac"` // hex HMAC-SHA256 over seq, hash and time
}

// Anchor returns the checkpoint as an anchor for Verify.
func (c Checkpoint) Anchor() (Anchor, error) {
	h, err := hex.DecodeString(c.Hash)
	if err != nil {
		return Anchor{}, fmt.Errorf("checkpoint %d: bad hash", c.Seq)
	}
	return Anchor{Seq: c.Seq, Hash: h, Note: "checkpoint of " + c.Time.UTC().Format(time.RFC3339)}, nil
}

func checkpointMAC(keys Keys, keyID uint32, seq int64, hash []byte, at time.Time) (uint32, []byte, error) {
	id, k, err := keys.DeriveKey(keyID, purposeCheckpoint)
	if err != nil {
		return 0, nil, fmt.Errorf("audit checkpoint: %w", err)
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte("credvault/audit-checkpoint/v1\x00"))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(seq)))
	m.Write(binary.BigEndian.AppendUint64(nil, uint64(at.UnixMicro())))
	m.Write(hash)
	return id, m.Sum(nil), nil
}

// Checkpoint reads the head (which must authenticate) and returns a signed
// checkpoint of it at time at.
func (t *Trail) Checkpoint(ctx context.Context, at time.Time) (Checkpoint, error) {
	if t.keys == nil {
		return Checkpoint{}, errors.New("audit checkpoint: no master key configured")
	}
	head, err := t.store.AuditHead(ctx)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("audit checkpoint: %w", err)
	}
	if head.Seq > 0 {
		if err := t.checkHeadMAC(head); err != nil {
			return Checkpoint{}, err
		}
	}
	at = at.UTC().Truncate(time.Microsecond)
	id, mac, err := checkpointMAC(t.keys, 0, head.Seq, head.Hash, at)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Seq: head.Seq, Hash: hex.EncodeToString(head.Hash), Time: at, KeyID: id, MAC: hex.EncodeToString(mac)}, nil
}

// CheckHead reports ErrHeadUnauthenticated if the trail is not empty and its
// head does not authenticate (every change would be refused), so that a
// server can say so when it starts.
func (t *Trail) CheckHead(ctx context.Context) error {
	if t.keys == nil {
		return nil
	}
	head, err := t.store.AuditHead(ctx)
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	if head.Seq == 0 {
		return nil
	}
	return t.checkHeadMAC(head)
}

// VerifyCheckpoint checks a checkpoint's MAC. A checkpoint signed by a
// master key that was since retired cannot be checked (the error says so);
// its seq and hash remain usable as an anchor.
func VerifyCheckpoint(keys Keys, c Checkpoint) error {
	hash, err := hex.DecodeString(c.Hash)
	if err != nil {
		return fmt.Errorf("checkpoint %d: bad hash", c.Seq)
	}
	_, want, err := checkpointMAC(keys, c.KeyID, c.Seq, hash, c.Time)
	if err != nil {
		return err
	}
	got, err := hex.DecodeString(c.MAC)
	if err != nil || !hmac.Equal(want, got) {
		return fmt.Errorf("checkpoint %d of %s: its MAC does not verify (the anchor file was edited)", c.Seq, c.Time.Format(time.RFC3339))
	}
	return nil
}

// ReadCheckpoints reads an anchor file: one JSON checkpoint per line.
func ReadCheckpoints(r io.Reader) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return nil, fmt.Errorf("anchor file line %d: %w", n, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// AppendCheckpoint appends c as one JSON line to the file at path
// (created 0600), and syncs it.
func AppendCheckpoint(path string, c Checkpoint) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit anchor file: %w", err)
	}
	b, _ := json.Marshal(c)
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("audit anchor file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("audit anchor file: %w", err)
	}
	return f.Close()
}

// RunCheckpoints writes a checkpoint every interval while ctx lives, each
// time the head moved since the last one (never for an empty trail: it
// anchors nothing), through emit (the server logs
// it and appends it to the anchor file). Errors go to emit too (c is the
// zero value then).
func (t *Trail) RunCheckpoints(ctx context.Context, interval time.Duration, now func() time.Time, emit func(c Checkpoint, err error)) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last := int64(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c, err := t.Checkpoint(ctx, now())
		if err != nil {
			if ctx.Err() == nil {
				emit(Checkpoint{}, err)
			}
			continue
		}
		if c.Seq == last || c.Seq == 0 {
			continue // unchanged, or an empty trail (before the bootstrap): nothing to anchor
		}
		last = c.Seq
		emit(c, nil)
	}
}

// String is the anchor form of c: "SEQ:HASH".
func (c Checkpoint) String() string { return strconv.FormatInt(c.Seq, 10) + ":" + c.Hash }

var _ vault.AuditChain = (*Trail)(nil)
