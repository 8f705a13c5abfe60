package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/vault"
)

// ErrNoMasterKey is returned by commands that need the master key of an
// existing vault when none is configured (and so none may be generated).
var ErrNoMasterKey = errors.New("no master key configured: supply the vault's master key with --master-key-file or $CREDVAULT_MASTER_KEY (a development vault keeps it in <data-dir>/master-key.json)")

// OpenExistingStore opens (and migrates) a database that already exists;
// it never creates one (see sqlstore.OpenExisting). Every command but
// serve, restore and load uses it.
func OpenExistingStore(ctx context.Context, cfg Config) (store.Engine, error) {
	db, err := sqlstore.OpenExisting(ctx, cfg.databaseURL())
	if errors.Is(err, sqlstore.ErrNoDatabase) {
		return nil, fmt.Errorf("%w; run this command where `credvault serve` ran, or give it the same --data-dir or --database-url (only serve, restore and load create a database)", err)
	}
	if err != nil {
		return nil, err
	}
	return db, nil
}

// existingKeyring loads the configured master key without ever generating
// one: a command acting on an existing vault (or its backup) needs that
// vault's key, and a new key would only hide the mistake.
//
// With a root key (cfg.MasterKeyURI) the keyset is the one stored in db,
// which must then be given.
func existingKeyring(ctx context.Context, cfg Config, db store.Engine) (*crypto.Keyring, error) {
	if cfg.MasterKeyURI != "" {
		if db == nil {
			return nil, errors.New("no database to read the data keyset from")
		}
		root, _, err := openRootKey(ctx, cfg, false)
		if err != nil {
			return nil, err
		}
		defer root.Close()
		h, err := (&dbKeys{db: db, root: root}).load(ctx)
		if err != nil {
			return nil, err
		}
		return crypto.NewKeyring(h)
	}
	if db != nil {
		if err := refuseFileKeyForRootVault(ctx, db); err != nil {
			return nil, err
		}
	}
	prov := cfg.KeyProvider()
	if fp, ok := prov.(*crypto.FileProvider); ok && fp.Generate {
		fp.Generate = false
		if _, err := os.Stat(fp.Path); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (%s does not exist)", ErrNoMasterKey, fp.Path)
		}
	}
	h, err := prov.Load(ctx)
	if err != nil {
		return nil, err
	}
	return crypto.NewKeyring(h)
}

// verifyKey checks, reading only, that kr opens db's master-key check value.
// A database without one (never served) has nothing sealed to check.
func verifyKey(ctx context.Context, db vault.MetaStore, kr *crypto.Keyring) error {
	ct, err := db.GetMeta(ctx, vault.MasterKeyCheckMeta)
	if vault.KindOf(err) == vault.KindNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	return vault.OpenMasterKeyCheck(kr, ct)
}

// Backup writes an authenticated backup of the configured (existing)
// database to w: the MAC key is derived from the current primary master
// key, which must be the database's (checked first).
func Backup(ctx context.Context, cfg Config, w io.Writer) (store.BackupStats, error) {
	db, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return store.BackupStats{}, err
	}
	defer db.Close()
	return BackupStore(ctx, cfg, db, w)
}

// BackupStore is Backup on an open store.
func BackupStore(ctx context.Context, cfg Config, db store.Engine, w io.Writer) (store.BackupStats, error) {
	kr, err := existingKeyring(ctx, cfg, db)
	if err != nil {
		return store.BackupStats{}, fmt.Errorf("backup: %w", err)
	}
	if err := verifyKey(ctx, db, kr); err != nil {
		return store.BackupStats{}, fmt.Errorf("backup: %w", err)
	}
	id, key, err := kr.DeriveKey(0, crypto.LabelBackupMAC)
	if err != nil {
		return store.BackupStats{}, fmt.Errorf("backup: %w", err)
	}
	return db.Backup(ctx, w, store.BackupOptions{MACKey: key, MACKeyID: id})
}

// backupKey returns the BackupKeyFunc of a restore under kr: the backup's
// key check must open, and its MAC key is derived from the master key it
// names.
func backupKey(kr *crypto.Keyring) store.BackupKeyFunc {
	return func(hdr store.BackupHeader) ([]byte, error) {
		if len(hdr.KeyCheck) > 0 {
			if err := vault.OpenMasterKeyCheck(kr, hdr.KeyCheck); err != nil {
				return nil, errors.New("restore: the master key is not the one of the vault this backup was taken from (it cannot open the backup's key check value); nothing was restored")
			}
		}
		_, key, err := kr.DeriveKey(hdr.MACKeyID, crypto.LabelBackupMAC)
		if errors.Is(err, crypto.ErrNoSuchKey) {
			return nil, fmt.Errorf("restore: the master key is not the one this backup was made under (it lacks master key id %d); nothing was restored", hdr.MACKeyID)
		}
		if err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		return key, nil
	}
}

// Restore restores the backup in r into the configured database, which it
// creates if needed and which must be empty. Before anything is written —
// before the database is even opened — the master key is checked against
// the backup's key check value and the whole backup is read once to verify
// its MAC; the restore itself verifies it again before it commits.
//
// With a root key (cfg.MasterKeyURI) the backup's own data keyset, stored
// in its header encrypted under the root key, is decrypted with it.
func Restore(ctx context.Context, cfg Config, r io.ReadSeeker) (store.BackupStats, error) {
	var key store.BackupKeyFunc
	if cfg.MasterKeyURI != "" {
		root, _, err := openRootKey(ctx, cfg, false)
		if err != nil {
			return store.BackupStats{}, fmt.Errorf("restore: %w", err)
		}
		defer root.Close()
		key = func(hdr store.BackupHeader) ([]byte, error) {
			if len(hdr.MasterKeyset) == 0 {
				return nil, errors.New("restore: this backup's vault kept its keyset in a key file: restore it with that --master-key-file (then move it under the HSM with `credvault rekey --to-master-key-uri`); nothing was restored")
			}
			if hdr.RootKey != root.String() {
				return nil, fmt.Errorf("restore: this backup's keyset is encrypted under %s, not %s; nothing was restored", hdr.RootKey, root.String())
			}
			h, err := crypto.DecryptKeyset(hdr.MasterKeyset, root)
			if err != nil {
				return nil, fmt.Errorf("restore: %w; nothing was restored", err)
			}
			kr, err := crypto.NewKeyring(h)
			if err != nil {
				return nil, err
			}
			return backupKey(kr)(hdr)
		}
	} else {
		kr, err := existingKeyring(ctx, cfg, nil)
		if err != nil {
			return store.BackupStats{}, fmt.Errorf("restore: %w", err)
		}
		fileKey := backupKey(kr)
		key = func(hdr store.BackupHeader) ([]byte, error) {
			if len(hdr.MasterKeyset) > 0 {
				return nil, fmt.Errorf("restore: this backup's vault keeps its keyset under the root key %s: restore with --master-key-uri; nothing was restored", hdr.RootKey)
			}
			return fileKey(hdr)
		}
	}
	if _, _, err := sqlstore.VerifyBackup(r, key); err != nil {
		return store.BackupStats{}, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return store.BackupStats{}, fmt.Errorf("restore: %w", err)
	}
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return store.BackupStats{}, err
	}
	defer db.Close()
	return db.Restore(ctx, r, key)
}
