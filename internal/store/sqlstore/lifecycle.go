package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// Credential lifecycle (issue 15): versions, trash, expiry notices. See
// migrations/0011_credential_lifecycle.sql.

// putVersion records c's current version (in the transaction that made
// it) and deletes the versions beyond the account's retention.
func (db *DB) putVersion(ctx context.Context, tx *sql.Tx, c *vault.Credential) error {
	by := c.VersionBy
	if by == "" {
		by = c.CreatedBy
	}
	if _, err := db.execIn(ctx, tx, `INSERT INTO credential_versions (account_id, credential_id, version, created_at, created_by, ciphertext)
		VALUES (?, ?, ?, ?, ?, ?)`, c.AccountID, c.ID, c.Version, ts(c.UpdatedAt), by, c.Ciphertext); err != nil {
		return fmt.Errorf("put version: %w", err)
	}
	if c.Version <= 1 {
		return nil
	}
	var keep int64
	err := db.queryRowIn(ctx, tx, `SELECT max_versions FROM account_lifecycle WHERE account_id = ?`, c.AccountID).Scan(&keep)
	if errors.Is(err, sql.ErrNoRows) || keep <= 0 {
		keep, err = vault.DefaultMaxVersions, nil
	}
	if err != nil {
		return fmt.Errorf("max versions: %w", err)
	}
	if _, err := db.execIn(ctx, tx, `DELETE FROM credential_versions WHERE account_id = ? AND credential_id = ? AND version <= ?`,
		c.AccountID, c.ID, c.Version-keep); err != nil {
		return fmt.Errorf("prune versions: %w", err)
	}
	return nil
}

func (db *DB) ListCredentialVersions(ctx context.Context, accountID, credID string) ([]vault.CredentialVersion, error) {
	out, err := queryAll(ctx, db.r, db.q(`SELECT version, created_at, created_by FROM credential_versions
		WHERE account_id = ? AND credential_id = ? AND EXISTS (SELECT 1 FROM credentials WHERE account_id = ? AND id = ?)
		ORDER BY version DESC`), func(row scanner) (*vault.CredentialVersion, error) {
		v := vault.CredentialVersion{AccountID: accountID, CredentialID: credID}
		var created int64
		if err := row.Scan(&v.Version, &created, &v.CreatedBy); err != nil {
			return nil, err
		}
		v.CreatedAt = fromTS(created)
		return &v, nil
	}, accountID, credID, accountID, credID)
	if err != nil {
		return nil, db.translate(fmt.Errorf("list versions: %w", err))
	}
	if len(out) == 0 {
		return nil, vault.ErrNotFound
	}
	return out, nil
}

func (db *DB) GetCredentialVersion(ctx context.Context, accountID, credID string, version int64) (*vault.CredentialVersion, error) {
	v := vault.CredentialVersion{AccountID: accountID, CredentialID: credID, Version: version}
	var created int64
	err := db.r.QueryRowContext(ctx, db.q(`SELECT created_at, created_by, ciphertext FROM credential_versions
		WHERE account_id = ? AND credential_id = ? AND version = ? AND EXISTS (SELECT 1 FROM credentials WHERE account_id = ? AND id = ?)`),
		accountID, credID, version, accountID, credID).Scan(&created, &v.CreatedBy, &v.Ciphertext)
	if err != nil {
		return nil, db.translate(err)
	}
	v.CreatedAt = fromTS(created)
	return &v, nil
}

func (db *DB) MaxVersions(ctx context.Context, accountID string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, db.q(`SELECT max_versions FROM account_lifecycle WHERE account_id = ?`), accountID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, db.translate(err)
}

func (db *DB) SetMaxVersions(ctx context.Context, accountID string, n int) error {
	_, err := db.write(ctx, `INSERT INTO account_lifecycle (account_id, max_versions) VALUES (?, ?)
		ON CONFLICT (account_id) DO UPDATE SET max_versions = excluded.max_versions`, accountID, n)
	return err
}

const trashCols = credentialCols + `, deleted_at, deleted_by`

// trashCredential copies a live credential into the trash, in the
// transaction that deletes it.
func (db *DB) trashCredential(ctx context.Context, tx *sql.Tx, accountID, id string) error {
	_, err := tx.ExecContext(ctx, db.q(`INSERT INTO credential_trash (`+trashCols+`)
		SELECT `+credentialCols+`, ?, ? FROM credentials WHERE account_id = ? AND id = ?`),
		ts(db.now()), vault.DeleterFrom(ctx), accountID, id)
	if err != nil {
		return fmt.Errorf("trash credential: %w", err)
	}
	return nil
}

func scanTrashed(row scanner) (*vault.TrashedCredential, error) {
	var t vault.TrashedCredential
	var meta, kind string
	var created, updated, deleted int64
	var expires sql.NullInt64
	c := &t.Credential
	if err := row.Scan(&c.AccountID, &c.ID, &c.Name, &c.Type, &c.Description, &meta, &c.CreatedBy, &kind, &created, &updated,
		&c.Version, &c.Ciphertext, &expires, &deleted, &t.DeletedBy); err != nil {
		return nil, err
	}
	c.Metadata = []byte(meta)
	c.CreatedByKind = vault.PrincipalKind(kind)
	c.CreatedAt, c.UpdatedAt, c.ExpiresAt, t.DeletedAt = fromTS(created), fromTS(updated), fromNullTS(expires), fromTS(deleted)
	return &t, nil
}

// scanTrashedListed is scanTrashed for listings, which never carry
// ciphertext further than here.
func scanTrashedListed(row scanner) (*vault.TrashedCredential, error) {
	t, err := scanTrashed(row)
	if err != nil {
		return nil, err
	}
	t.Ciphertext = nil
	return t, nil
}

func (db *DB) ListTrash(ctx context.Context, accountID, after string, limit int) ([]vault.TrashedCredential, bool, error) {
	query := `SELECT ` + trashCols + ` FROM credential_trash WHERE account_id = ?`
	args := []any{accountID}
	if after != "" {
		var key int64
		err := db.r.QueryRowContext(ctx, db.q(`SELECT deleted_at FROM credential_trash WHERE account_id = ? AND id = ?`), accountID, after).Scan(&key)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, false, vault.FieldError("after", "no deleted credential with this id exists in this account")
		}
		if err != nil {
			return nil, false, db.translate(fmt.Errorf("list trash: cursor: %w", err))
		}
		query += ` AND (deleted_at, id) < (?, ?)`
		args = append(args, key, after)
	}
	query += fmt.Sprintf(` ORDER BY deleted_at DESC, id DESC LIMIT %d`, limit+1)
	out, err := queryAll(ctx, db.r, db.q(query), scanTrashedListed, args...)
	if err != nil {
		return nil, false, db.translate(fmt.Errorf("list trash: %w", err))
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

func (db *DB) GetTrashedCredential(ctx context.Context, accountID, id string) (*vault.TrashedCredential, error) {
	return queryOne(ctx, db, scanTrashedListed, `SELECT `+trashCols+` FROM credential_trash WHERE account_id = ? AND id = ?`, accountID, id)
}

func (db *DB) RestoreCredential(ctx context.Context, accountID, id string) (*vault.Credential, error) {
	return txValue(ctx, db, func(tx *sql.Tx) (*vault.Credential, error) {
		t, err := scanTrashed(tx.QueryRowContext(ctx, db.q(`SELECT `+trashCols+` FROM credential_trash WHERE account_id = ? AND id = ?`+db.d.forUpdate()), accountID, id))
		if err != nil {
			return nil, err
		}
		err = db.execEach(ctx, tx, []any{accountID, id},
			`INSERT INTO credentials (`+credentialCols+`) SELECT `+credentialCols+` FROM credential_trash WHERE account_id = ? AND id = ?`,
			`DELETE FROM credential_trash WHERE account_id = ? AND id = ?`,
			`DELETE FROM credential_tombstones WHERE account_id = ? AND id = ?`,
		)
		if err != nil {
			return nil, err
		}
		return &t.Credential, db.bumpCount(ctx, tx, accountID, 1)
	})
}

func (db *DB) PurgeCredential(ctx context.Context, accountID, id string, deletedBefore time.Time) (*vault.TrashedCredential, error) {
	return txValue(ctx, db, func(tx *sql.Tx) (*vault.TrashedCredential, error) {
		query := `DELETE FROM credential_trash WHERE account_id = ? AND id = ?`
		args := []any{accountID, id}
		if !deletedBefore.IsZero() {
			query += ` AND deleted_at < ?`
			args = append(args, ts(deletedBefore))
		}
		t, err := scanTrashedListed(tx.QueryRowContext(ctx, db.q(query+` RETURNING `+trashCols), args...))
		if err != nil {
			return nil, err
		}
		return t, db.execEach(ctx, tx, []any{accountID, id},
			`DELETE FROM credential_versions WHERE account_id = ? AND credential_id = ?`,
			`DELETE FROM credential_expiry_notices WHERE account_id = ? AND credential_id = ?`,
		)
	})
}

func (db *DB) DueTrash(ctx context.Context, before time.Time, limit int) ([]vault.TrashedCredential, error) {
	out, err := queryAll(ctx, db.r, db.q(`SELECT `+trashCols+` FROM credential_trash WHERE deleted_at < ? ORDER BY deleted_at`+fmt.Sprintf(` LIMIT %d`, limit)), scanTrashedListed, ts(before))
	if err != nil {
		return nil, db.translate(fmt.Errorf("due trash: %w", err))
	}
	return out, nil
}

func (db *DB) DueExpiry(ctx context.Context, before time.Time, stage string, limit int) ([]vault.Credential, error) {
	out, err := queryAll(ctx, db.r, db.q(`SELECT `+credentialListCols+` FROM credentials c
		WHERE expires_at IS NOT NULL AND expires_at < ? AND NOT EXISTS (SELECT 1 FROM credential_expiry_notices n
			WHERE n.account_id = c.account_id AND n.credential_id = c.id AND n.expires_at = c.expires_at AND n.stage = ?)
		ORDER BY expires_at`+fmt.Sprintf(` LIMIT %d`, limit)), scanCredential, ts(before), stage)
	if err != nil {
		return nil, db.translate(fmt.Errorf("due expiry: %w", err))
	}
	return out, nil
}

var errNoticed = errors.New("expiry notice already recorded")

func (db *DB) NoteExpiry(ctx context.Context, c *vault.Credential, stage string) (bool, error) {
	if c.ExpiresAt == nil {
		return false, nil
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.q(`INSERT INTO credential_expiry_notices (account_id, credential_id, expires_at, stage)
			VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`), c.AccountID, c.ID, ts(*c.ExpiresAt), stage)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errNoticed // another replica raised it: write no event
		}
		return nil
	})
	if errors.Is(err, errNoticed) {
		return false, nil
	}
	return err == nil, err
}
