package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// auditKeyEvent records a change of the key hierarchy in the audit trail
// (object type master_key, object id the key's name — never key material),
// as the CLI's operator. keys authenticate the trail's head (see
// audit.Trail.SetKeys). The change is made already when it is called, so a
// failure cannot undo it: it is returned, and the command fails saying so.
func auditKeyEvent(ctx context.Context, db store.Engine, keys audit.Keys, action, object string) error {
	trail := audit.New(db, nil)
	trail.SetKeys(keys)
	defer trail.Close()
	actor := vault.OperatorIdentity("rekey")
	if a := vault.ActorFrom(ctx); a != nil {
		actor = a
	}
	err := trail.Append(ctx, vault.AuditEvent{
		Time: time.Now().UTC().Truncate(time.Microsecond), PrincipalID: actor.Principal.ID, PrincipalKind: actor.Principal.Kind,
		Action: action, ObjectType: "master_key", ObjectID: object, Outcome: "success",
	})
	if err != nil {
		return fmt.Errorf("the key change was made but could not be recorded in the audit trail: %w", err)
	}
	return nil
}

// MigrateReport says what a key migration did.
type MigrateReport struct {
	From, To        string
	AlreadyMigrated bool
	// LeftOver is a key file that still holds the (now unused) keyset in
	// the clear: the operator must destroy it.
	LeftOver string
}

// MigrateToRootKey moves a vault whose data keyset is a key file (cfg's)
// under the root key uri: the same keyset is stored in the database,
// encrypted under the root key. Nothing is re-encrypted, so servers still
// running with the file keep serving while they are restarted, one by one,
// with --master-key-uri. It is idempotent (a second run finds it done).
//
// The key file is left in place (servers may still read it) and reported
// in LeftOver: after every server has been restarted with the root key, a
// `credvault rekey --master-key-uri …` retires the file's keys from the
// data, and the file must be destroyed.
func MigrateToRootKey(ctx context.Context, cfg Config, uri string, log func(string, ...any)) (*MigrateReport, error) {
	if cfg.MasterKeyURI != "" {
		return nil, errors.New("rekey --to-master-key-uri: the vault's current key must be given as a key file (--master-key-file or the data directory's master-key.json), not --master-key-uri")
	}
	db, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	kr, err := existingKeyring(ctx, cfg, db)
	if err != nil && errors.Is(err, errKeysetInDatabase) {
		return migrateResume(ctx, db, uri)
	}
	if err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: %w", err)
	}
	if err := verifyKey(ctx, db, kr); err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: the key file is not this vault's: %w; nothing was changed", err)
	}
	root, gen, err := crypto.OpenRootKey(ctx, uri, crypto.RootKeyOptions{Generate: true})
	if err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: %w; nothing was changed", err)
	}
	defer root.Close()
	if gen && log != nil {
		log("generated the root key inside the HSM", "root_key", root.String())
	}
	rep := &MigrateReport{From: cfg.KeyProvider().Name(), To: root.String()}
	if fp, ok := cfg.KeyProvider().(*crypto.FileProvider); ok {
		rep.LeftOver = fp.Path
	}
	keys := &dbKeys{db: db, root: root}
	if err := keys.save(ctx, kr.Handle()); err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: %w", err)
	}
	// Read it back through the root key before declaring success.
	h, err := keys.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: stored keyset does not read back: %w", err)
	}
	if err := verifyKeyset(ctx, db, h); err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-uri: stored keyset does not open the vault: %w", err)
	}
	if err := auditKeyEvent(ctx, db, kr, "master_key.migrate", root.String()); err != nil {
		return rep, err
	}
	return rep, nil
}

// migrateResume handles a second run of a migration that already stored
// the keyset under uri.
func migrateResume(ctx context.Context, db store.Engine, uri string) (*MigrateReport, error) {
	rec, err := db.GetMasterKeyset(ctx)
	if err != nil {
		return nil, err
	}
	if rec.RootKey != crypto.RootKeyName(uri) {
		return nil, fmt.Errorf("rekey --to-master-key-uri: the vault's keyset is already under another root key (%s)", rec.RootKey)
	}
	return &MigrateReport{To: rec.RootKey, AlreadyMigrated: true}, nil
}

// MigrateToFile moves a vault's data keyset from the database (under cfg's
// root key) back to a new key file at path (mode 0600; an existing file is
// refused) and removes it from the database. Servers running with the root
// key keep the keys they have; restart them with --master-key-file path.
func MigrateToFile(ctx context.Context, cfg Config, path string, log func(string, ...any)) (*MigrateReport, error) {
	if cfg.MasterKeyURI == "" {
		return nil, errors.New("rekey --to-master-key-file: give the vault's root key with --master-key-uri")
	}
	db, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	root, _, err := openRootKey(ctx, cfg, false)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	keys := &dbKeys{db: db, root: root}
	h, err := keys.load(ctx)
	if err != nil {
		return nil, err
	}
	if err := verifyKeyset(ctx, db, h); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("rekey --to-master-key-file: %s exists; refusing to overwrite a key file; nothing was changed", path)
	}
	if err := (&crypto.FileProvider{Path: path}).Save(h); err != nil {
		return nil, err
	}
	if err := db.DeleteMasterKeyset(ctx, keys.version); err != nil {
		return nil, fmt.Errorf("rekey --to-master-key-file: remove the stored keyset: %w", err)
	}
	kr, err := crypto.NewKeyring(h)
	if err != nil {
		return nil, err
	}
	if err := auditKeyEvent(ctx, db, kr, "master_key.migrate", "file"); err != nil {
		return nil, err
	}
	return &MigrateReport{From: root.String(), To: path}, nil
}

func verifyKeyset(ctx context.Context, db store.Engine, h *keyset.Handle) error {
	kr, err := crypto.NewKeyring(h)
	if err != nil {
		return err
	}
	return verifyKey(ctx, db, kr)
}
