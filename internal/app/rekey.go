package app

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/credvault/credvault/internal/audit"
	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// RekeyOptions configures a master-key rotation.
type RekeyOptions struct {
	// Resume skips adding a new key: it finishes an interrupted rotation
	// (re-wraps what is left and retires unused keys).
	Resume bool
	// Grace is how long to wait after changing the key file before re-wrapping
	// and before retiring keys, so that running servers (which watch the
	// file) have loaded it. Default 5s.
	Grace time.Duration
	Log   func(msg string, args ...any)
	// Keyring, if set, is a running server's keyring: it is switched to the
	// new keyset at once instead of when the server notices the file change.
	Keyring *crypto.Keyring
	// Actor is recorded in the audit trail as the operator who rotated the
	// key (vault.OperatorIdentity("rekey") if nil).
	Actor *vault.Identity
	// OnKeyAdded, if set, is called once the new primary key is in the key
	// file and the keyring, before anything is re-wrapped; an error stops
	// the rotation (to be resumed).
	OnKeyAdded func(ctx context.Context, keyID uint32) error
}

// RekeyReport says what a rotation did. GET /admin/v1/rekey serves it as
// JSON, so its field names are the API's snake_case.
type RekeyReport struct {
	NewPrimary uint32           `json:"new_primary_key_id"`
	Scanned    int64            `json:"scanned"`
	Rewrapped  int64            `json:"rewrapped"`
	Retired    []uint32         `json:"retired_key_ids"`
	Remaining  map[uint32]int64 `json:"remaining"` // ciphertexts per master key id after the run
}

// Rekey rotates the master key online, while servers keep serving:
//
//  1. a new key is added to the keyset as its primary (old keys stay) —
//     in the key file, or in the database's keyset encrypted under the
//     root key — and running servers pick it up (they watch the file or
//     the stored keyset's version, and re-read it when they meet a data key
//     wrapped by a key they do not have);
//  2. every data key in the database is re-wrapped under the new primary
//     (compare-and-set per row, so concurrent writes are never lost);
//  3. keys that no ciphertext depends on any more are removed from the keyset.
//
// Each step is idempotent; an interrupted rotation is finished with Resume.
// Rekey opens the configured database itself (the CLI); a server rotates
// on its own store through the admin API (see rekeyJobs).
func Rekey(ctx context.Context, cfg Config, opts RekeyOptions) (*RekeyReport, error) {
	db, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var ks keyStore
	if cfg.MasterKeyURI != "" {
		root, _, err := openRootKey(ctx, cfg, false)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		ks = &dbKeys{db: db, root: root}
	} else {
		fp, ok := cfg.KeyProvider().(*crypto.FileProvider)
		if !ok {
			return nil, errors.New("rekey: the master key must come from a file (--master-key-file or the data directory's master-key.json) or a root key (--master-key-uri); for a key in $CREDVAULT_MASTER_KEY, rotate with a file and then update the variable")
		}
		ks = fileKeys{fp}
	}
	return rekeyStore(ctx, db, ks, opts)
}

// rekeyStore is Rekey on an open store, rotating the keyset ks.
func rekeyStore(ctx context.Context, db store.Engine, ks keyStore, opts RekeyOptions) (*RekeyReport, error) {
	if opts.Grace == 0 {
		opts.Grace = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	if fk, ok := ks.(fileKeys); ok {
		if err := refuseFileKeyForRootVault(ctx, db); err != nil {
			return nil, fmt.Errorf("rekey: %w", err)
		}
		if _, err := os.Stat(fk.fp.Path); err != nil {
			return nil, fmt.Errorf("rekey: %w", err)
		}
		fk.fp.Generate = false
	}
	h, err := ks.load(ctx)
	if err != nil {
		return nil, err
	}
	// The key file must be the database's before anything changes: a
	// rotation of the wrong file would add a key to it and then fail.
	check, err := crypto.NewKeyring(h)
	if err != nil {
		return nil, err
	}
	if err := verifyKey(ctx, db, check); err != nil {
		return nil, fmt.Errorf("rekey: %s: %w; nothing was changed", ks.name(), err)
	}
	kr := opts.Keyring
	if kr == nil {
		kr = check
	} else if err := kr.Swap(h); err != nil {
		return nil, err
	}
	rep := &RekeyReport{}
	if !opts.Resume {
		nh, id, err := crypto.AddPrimary(h)
		if err != nil {
			return nil, err
		}
		if err := ks.save(ctx, nh); err != nil {
			return nil, err
		}
		h = nh
		if opts.Actor != nil {
			ctx = vault.WithActor(ctx, opts.Actor)
		}
		if err := auditKeyEvent(ctx, db, check, "master_key.rotate", ks.name()); err != nil {
			return nil, fmt.Errorf("rekey: %w (run again with --resume to finish)", err)
		}
		if err := kr.Swap(h); err != nil {
			return nil, err
		}
		if opts.OnKeyAdded != nil {
			if err := opts.OnKeyAdded(ctx, id); err != nil {
				return nil, fmt.Errorf("rekey: %w", err)
			}
		}
		opts.Log("added a new primary master key; waiting for running servers to load it", "key_id", id, "grace", opts.Grace.String())
		if err := sleep(ctx, opts.Grace); err != nil {
			return nil, err
		}
	}
	rep.NewPrimary = kr.PrimaryKeyID()
	primary := rep.NewPrimary
	st, err := db.RewrapAll(ctx, func(ct []byte) bool {
		id, err := crypto.WrappingKeyID(ct)
		return err == nil && id != primary
	}, kr.Rewrap)
	rep.Scanned, rep.Rewrapped = st.Scanned, st.Rewrapped
	if err != nil {
		return rep, fmt.Errorf("rekey: re-wrap (run again with --resume to finish): %w", err)
	}
	opts.Log("re-wrapped data keys", "scanned", st.Scanned, "rewrapped", st.Rewrapped)

	// Retire keys nothing depends on. Wait once more so that a server that
	// sealed with the old primary just before loading the new keyset shows
	// up in the count rather than losing its data.
	if err := sleep(ctx, opts.Grace); err != nil {
		return rep, err
	}
	// Record the rotation in the audit trail. The append also authenticates
	// the trail's head under the new primary key, so that the key that
	// authenticated it so far can be retired.
	actor := opts.Actor
	if actor == nil {
		actor = vault.OperatorIdentity("rekey")
	}
	tr := audit.New(db, nil)
	tr.SetKeys(kr)
	err = tr.Append(ctx, vault.AuditEvent{Time: time.Now().UTC().Truncate(time.Microsecond), PrincipalID: actor.Principal.ID, PrincipalKind: actor.Principal.Kind,
		Action: "master_key.rewrap", ObjectType: "master_key", ObjectID: strconv.FormatUint(uint64(primary), 10), Outcome: "success"})
	tr.Close()
	if err != nil {
		return rep, fmt.Errorf("rekey: record the rotation in the audit trail (run again with --resume): %w", err)
	}
	inUse, err := db.WrappingKeysInUse(ctx, crypto.WrappingKeyID)
	if err != nil {
		return rep, fmt.Errorf("rekey: count key use: %w", err)
	}
	// A key that authenticates the audit head (a server that has not loaded
	// the new keyset yet appended since) is in use too.
	if head, err := db.AuditHead(ctx); err != nil {
		return rep, fmt.Errorf("rekey: audit head: %w", err)
	} else if len(head.MAC) >= 4 {
		inUse[binary.BigEndian.Uint32(head.MAC)]++
	}
	ids, _ := kr.KeyIDs()
	var retire []uint32
	for _, id := range ids {
		if id != primary && inUse[id] == 0 {
			retire = append(retire, id)
		}
	}
	if len(retire) > 0 {
		nh, err := crypto.RemoveKeys(h, retire)
		if err != nil {
			return rep, err
		}
		if err := ks.save(ctx, nh); err != nil {
			return rep, err
		}
		if err := kr.Swap(nh); err != nil {
			return rep, err
		}
		rep.Retired = retire
		opts.Log("retired master keys no ciphertext depends on", "key_ids", retire)
	}
	rep.Remaining = inUse
	return rep, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// keyStore is where Rekey reads and writes the data keyset.
type keyStore interface {
	name() string
	load(ctx context.Context) (*keyset.Handle, error)
	save(ctx context.Context, h *keyset.Handle) error
}

// fileKeys is a keyset in a key file.
type fileKeys struct{ fp *crypto.FileProvider }

func (f fileKeys) name() string                                     { return f.fp.Path }
func (f fileKeys) load(ctx context.Context) (*keyset.Handle, error) { return f.fp.Load(ctx) }
func (f fileKeys) save(_ context.Context, h *keyset.Handle) error   { return f.fp.Save(h) }
