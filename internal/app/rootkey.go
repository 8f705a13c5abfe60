package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/crypto/pkcs11kms"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/vault"
)

// The key hierarchy under a root key (--master-key-uri):
//
//	root key (HSM, never leaves it)
//	  └─ wraps the data-key keyset (Tink keyset, stored encrypted in the
//	     database's master_keyset table; in memory only in the clear)
//	       └─ each key wraps per-payload data keys (envelope, see crypto)
//
// Every replica reads the same keyset from the database and needs only
// access to the root key: no key file is shared.

// errKeysetInDatabase is returned when a vault whose keyset lives in the
// database is started with a key file.
var errKeysetInDatabase = errors.New("this vault's data keyset is stored in the database under a root key")

// dbKeys is the data-key keyset stored in db, encrypted under root.
type dbKeys struct {
	db      store.MasterKeysetStore
	root    crypto.RootKey
	version int64
}

func (k *dbKeys) name() string { return "master-key-uri:" + k.root.String() }

// load reads and decrypts the stored keyset and remembers its version.
func (k *dbKeys) load(ctx context.Context) (*keyset.Handle, error) {
	rec, err := k.db.GetMasterKeyset(ctx)
	if vault.KindOf(err) == vault.KindNotFound {
		return nil, fmt.Errorf("master key: the database holds no data keyset under a root key (it was moved back to a key file?)")
	}
	if err != nil {
		return nil, fmt.Errorf("master key: read the data keyset: %w", err)
	}
	if rec.RootKey != k.root.String() {
		return nil, fmt.Errorf("master key: the database's data keyset is encrypted under %s, not %s", rec.RootKey, k.root.String())
	}
	h, err := crypto.DecryptKeyset(rec.Keyset, k.root)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	k.version = rec.Version
	return h, nil
}

// save stores h as the next version (compare-and-set on the version read).
func (k *dbKeys) save(ctx context.Context, h *keyset.Handle) error {
	enc, err := crypto.EncryptKeyset(h, k.root)
	if err != nil {
		return err
	}
	if err := k.db.PutMasterKeyset(ctx, store.MasterKeyset{RootKey: k.root.String(), Keyset: enc, UpdatedAt: time.Now()}, k.version); err != nil {
		if vault.KindOf(err) == vault.KindConflict {
			return fmt.Errorf("master key: the data keyset was changed by someone else meanwhile (another rekey?); run again: %w", err)
		}
		return fmt.Errorf("master key: store the data keyset: %w", err)
	}
	k.version++
	return nil
}

// openRootKey opens cfg's root key. A missing key is generated only for a
// vault that has no keys yet (a new or never-served database): for an
// existing vault a missing key is an error, never a new key. Generation
// runs under the database's start-up lock, so that replicas starting at
// once on a new PostgreSQL database make one key, not one each.
func openRootKey(ctx context.Context, cfg Config, mayGenerate bool) (crypto.RootKey, bool, error) {
	root, gen, err := crypto.OpenRootKey(ctx, cfg.MasterKeyURI, crypto.RootKeyOptions{})
	if err == nil || !errors.Is(err, pkcs11kms.ErrKeyNotFound) || !mayGenerate {
		if err != nil {
			err = fmt.Errorf("%w; nothing was written", err)
		}
		return root, gen, err
	}
	notFound := fmt.Errorf("%w; the database already holds a vault, so no new key is generated; nothing was written", err)
	if fresh, ferr := newVault(ctx, cfg); ferr != nil || !fresh {
		if ferr != nil {
			return nil, false, ferr
		}
		// Another replica starting at once may have made the key and
		// stored the vault's keyset under it since the first look.
		if root, gen, err = crypto.OpenRootKey(ctx, cfg.MasterKeyURI, crypto.RootKeyOptions{}); err == nil {
			return root, gen, nil
		}
		return nil, false, notFound
	}
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, false, err
	}
	defer db.Close()
	err = db.Exclusive(ctx, func() error {
		// The same, while this replica waited for the lock.
		var err error
		if root, gen, err = crypto.OpenRootKey(ctx, cfg.MasterKeyURI, crypto.RootKeyOptions{}); err == nil || !errors.Is(err, pkcs11kms.ErrKeyNotFound) {
			return err
		}
		if fresh, err := holdsNoKeys(ctx, db); err != nil || !fresh {
			if err != nil {
				return err
			}
			return notFound
		}
		root, gen, err = crypto.OpenRootKey(ctx, cfg.MasterKeyURI, crypto.RootKeyOptions{Generate: true})
		return err
	})
	return root, gen, err
}

// newVault reports whether cfg's database does not exist or holds no keys.
func newVault(ctx context.Context, cfg Config) (bool, error) {
	db, err := sqlstore.OpenExisting(ctx, cfg.databaseURL())
	if errors.Is(err, sqlstore.ErrNoDatabase) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	defer db.Close()
	return holdsNoKeys(ctx, db)
}

// holdsNoKeys reports whether db holds neither a keyset nor a master-key
// check value.
func holdsNoKeys(ctx context.Context, db store.Engine) (bool, error) {
	_, err := db.GetMasterKeyset(ctx)
	if vault.KindOf(err) != vault.KindNotFound {
		return false, err
	}
	_, err = db.GetMeta(ctx, vault.MasterKeyCheckMeta)
	if vault.KindOf(err) == vault.KindNotFound {
		return true, nil
	}
	return false, err
}

// rootKeyset returns the data keyset of db under root, creating it on a
// new vault (once, under the start-up lock, whichever replica comes
// first).
func rootKeyset(ctx context.Context, db store.Engine, root crypto.RootKey) (*keyset.Handle, *dbKeys, error) {
	k := &dbKeys{db: db, root: root}
	var h *keyset.Handle
	err := db.Exclusive(ctx, func() error {
		_, err := db.GetMasterKeyset(ctx)
		if vault.KindOf(err) != vault.KindNotFound {
			if err != nil {
				return fmt.Errorf("master key: read the data keyset: %w", err)
			}
			h, err = k.load(ctx)
			return err
		}
		if _, err := db.GetMeta(ctx, vault.MasterKeyCheckMeta); vault.KindOf(err) != vault.KindNotFound {
			if err != nil {
				return fmt.Errorf("master key check: %w", err)
			}
			return errors.New("master key: this vault's data keyset is a key file, not in the database; move it under the root key with `credvault rekey --master-key-file … --to-master-key-uri …` first; nothing was written")
		}
		h, err = crypto.NewKEK()
		if err != nil {
			return err
		}
		return k.save(ctx, h)
	})
	if err != nil {
		return nil, nil, err
	}
	return h, k, nil
}

// refuseFileKeyForRootVault refuses a key file or variable for a vault
// whose keyset is in the database: that file is at best an old copy.
func refuseFileKeyForRootVault(ctx context.Context, db store.Engine) error {
	rec, err := db.GetMasterKeyset(ctx)
	if vault.KindOf(err) == vault.KindNotFound {
		return nil
	}
	if err != nil {
		return fmt.Errorf("master key: %w", err)
	}
	return fmt.Errorf("%w (%s): start with --master-key-uri naming it ($CREDVAULT_MASTER_KEY_URI), not a key file; nothing was written", errKeysetInDatabase, rec.RootKey)
}

// watchRootKeyset makes the keyring follow rotations made by `credvault
// rekey` on any host: it polls the stored keyset's version every 2s and
// re-reads it when it moves, and the keyring re-reads it on demand when it
// meets a data key wrapped by a key it does not have.
func watchRootKeyset(k *dbKeys, kr *crypto.Keyring, log *slog.Logger) (stop func()) {
	reader := &dbKeys{db: k.db, root: k.root}
	kr.SetReloader(func() (*keyset.Handle, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return reader.load(ctx)
	})
	last := k.version
	return every(context.Background(), 2*time.Second, false, func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		v, err := k.db.MasterKeysetVersion(ctx)
		cancel()
		if err != nil || v == last {
			return
		}
		last = v
		if changed, err := kr.Reload(); err != nil {
			log.Error("stored data keyset changed but cannot be loaded; keeping the current keys", "err", err.Error())
		} else if changed {
			log.Info("data keyset reloaded from the database", "primary_key_id", kr.PrimaryKeyID(), "version", v)
		}
	})
}
