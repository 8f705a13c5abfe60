package sqlstore

import (
	"context"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// MasterKeyset is the stored data-key keyset (see store.MasterKeysetStore).
type MasterKeyset = store.MasterKeyset

// GetMasterKeyset returns the stored keyset, or vault.ErrNotFound when the
// vault keeps its keyset in a file.
func (db *DB) GetMasterKeyset(ctx context.Context) (*MasterKeyset, error) {
	var m MasterKeyset
	var at int64
	err := db.w.QueryRowContext(ctx, `SELECT root_key, keyset, version, updated_at FROM master_keyset WHERE id = 1`).
		Scan(&m.RootKey, &m.Keyset, &m.Version, &at)
	if err != nil {
		return nil, db.translate(err)
	}
	m.UpdatedAt = fromTS(at)
	return &m, nil
}

// MasterKeysetVersion returns the stored keyset's version (0 if none): a
// cheap poll for replicas.
func (db *DB) MasterKeysetVersion(ctx context.Context) (int64, error) {
	var v int64
	err := db.r.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM master_keyset`).Scan(&v)
	return v, db.translate(err)
}

// PutMasterKeyset stores m as version prev+1 if the stored version is still
// prev (0: none stored yet) — compare-and-set, so that two rotations never
// overwrite each other. It returns vault.ErrConflict otherwise.
func (db *DB) PutMasterKeyset(ctx context.Context, m MasterKeyset, prev int64) error {
	if prev == 0 {
		_, err := db.w.ExecContext(ctx, db.q(`INSERT INTO master_keyset (id, root_key, keyset, version, updated_at) VALUES (1, ?, ?, 1, ?)`),
			m.RootKey, m.Keyset, ts(m.UpdatedAt))
		return db.translate(err)
	}
	res, err := db.w.ExecContext(ctx, db.q(`UPDATE master_keyset SET root_key = ?, keyset = ?, version = version + 1, updated_at = ? WHERE id = 1 AND version = ?`),
		m.RootKey, m.Keyset, ts(m.UpdatedAt), prev)
	if err != nil {
		return db.translate(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return vault.ErrConflict
	}
	return nil
}

// DeleteMasterKeyset removes the stored keyset if its version is still
// prev (moving the vault back to a key file).
func (db *DB) DeleteMasterKeyset(ctx context.Context, prev int64) error {
	res, err := db.w.ExecContext(ctx, db.q(`DELETE FROM master_keyset WHERE id = 1 AND version = ?`), prev)
	if err != nil {
		return db.translate(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return vault.ErrConflict
	}
	return nil
}
