package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

func (db *DB) IsEmpty(ctx context.Context) (bool, error) {
	var n int
	if err := db.w.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
		return false, db.translate(fmt.Errorf("is empty: %w", err))
	}
	return n == 0, nil
}

func (db *DB) CreateAccount(ctx context.Context, a *vault.Account) error {
	return db.translate(db.tx(ctx, func(tx *sql.Tx) error { return db.insertAccount(ctx, tx, a) }))
}

// insertAccount, insertPrincipal (with its memberships), putMembership and
// insertAPIKey are the statements the single writes and ApplyAccountChanges
// share.
func (db *DB) insertAccount(ctx context.Context, x execer, a *vault.Account) error {
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO accounts (id, name, created_at) VALUES (?, ?, ?)`), a.ID, a.Name, ts(a.CreatedAt))
	return err
}

const accountCols = `id, name, created_at`

func scanAccount(row scanner) (*vault.Account, error) {
	var a vault.Account
	var created int64
	if err := row.Scan(&a.ID, &a.Name, &created); err != nil {
		return nil, err
	}
	a.CreatedAt = fromTS(created)
	return &a, nil
}

func (db *DB) GetAccount(ctx context.Context, id string) (*vault.Account, error) {
	return queryOne(ctx, db, scanAccount, `SELECT `+accountCols+` FROM accounts WHERE id = ?`, id)
}

func (db *DB) ListAccounts(ctx context.Context) ([]vault.Account, error) {
	as, err := queryAll(ctx, db.r, `SELECT `+accountCols+` FROM accounts ORDER BY created_at, id`, scanAccount)
	return as, db.translate(err)
}

func (db *DB) CreatePrincipal(ctx context.Context, p *vault.Principal, ms []vault.Membership) error {
	return db.tx(ctx, func(tx *sql.Tx) error { return db.insertPrincipal(ctx, tx, p, ms...) })
}

// insertPrincipal inserts p and its memberships in tx.
func (db *DB) insertPrincipal(ctx context.Context, tx *sql.Tx, p *vault.Principal, ms ...vault.Membership) error {
	if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO principals (`+principalCols+`) VALUES (?, ?, ?, ?, ?)`),
		p.ID, string(p.Kind), p.Name, p.DefaultAccountID, ts(p.CreatedAt)); err != nil {
		return err
	}
	return db.insertMemberships(ctx, tx, ms)
}

func (db *DB) insertMemberships(ctx context.Context, tx *sql.Tx, ms []vault.Membership) error {
	for _, m := range ms {
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO memberships (principal_id, account_id, role) VALUES (?, ?, ?)`),
			m.PrincipalID, m.AccountID, string(m.Role)); err != nil {
			return err
		}
	}
	return nil
}

func (db *DB) ApplyAccountChanges(ctx context.Context, ch vault.AccountChanges) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if ch.RequireEmpty {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM accounts`).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return &vault.Error{Kind: vault.KindConflict, Msg: "the vault is not empty"}
			}
		}
		for _, a := range ch.Accounts {
			if err := db.insertAccount(ctx, tx, &a); err != nil {
				return err
			}
		}
		for _, p := range ch.Principals {
			if err := db.insertPrincipal(ctx, tx, &p); err != nil {
				return err
			}
		}
		for _, m := range ch.Memberships {
			if err := db.putMembership(ctx, tx, m); err != nil {
				return err
			}
		}
		for _, k := range ch.APIKeys {
			if err := db.insertAPIKey(ctx, tx, &k); err != nil {
				return err
			}
		}
		for key, v := range ch.Meta {
			if _, err := tx.ExecContext(ctx, db.q(insertMetaSQL), key, v); err != nil {
				return err
			}
		}
		return nil
	})
}

const principalCols = `id, kind, name, default_account_id, created_at`

func scanPrincipal(row scanner) (*vault.Principal, error) {
	var p vault.Principal
	var kind string
	var created int64
	if err := row.Scan(&p.ID, &kind, &p.Name, &p.DefaultAccountID, &created); err != nil {
		return nil, err
	}
	p.Kind = vault.PrincipalKind(kind)
	p.CreatedAt = fromTS(created)
	return &p, nil
}

func (db *DB) GetPrincipal(ctx context.Context, id string) (*vault.Principal, error) {
	return queryOne(ctx, db, scanPrincipal, `SELECT `+principalCols+` FROM principals WHERE id = ?`, id)
}

func (db *DB) ListPrincipals(ctx context.Context) ([]vault.Principal, error) {
	ps, err := queryAll(ctx, db.r, `SELECT `+principalCols+` FROM principals ORDER BY created_at, id`, scanPrincipal)
	return ps, db.translate(err)
}

func (db *DB) PutMembership(ctx context.Context, m vault.Membership) error {
	return db.translate(db.tx(ctx, func(tx *sql.Tx) error { return db.putMembership(ctx, tx, m) }))
}

// putMembership adds m, or changes the role of the membership it replaces.
func (db *DB) putMembership(ctx context.Context, x execer, m vault.Membership) error {
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO memberships (principal_id, account_id, role) VALUES (?, ?, ?)
		ON CONFLICT (principal_id, account_id) DO UPDATE SET role = excluded.role`), m.PrincipalID, m.AccountID, string(m.Role))
	return err
}

func scanMembership(row scanner) (*vault.Membership, error) {
	var m vault.Membership
	var role string
	if err := row.Scan(&m.PrincipalID, &m.AccountID, &role); err != nil {
		return nil, err
	}
	m.Role = vault.Role(role)
	return &m, nil
}

func (db *DB) ListMemberships(ctx context.Context, principalID string) ([]vault.Membership, error) {
	ms, err := queryAll(ctx, db.r, db.q(`SELECT principal_id, account_id, role FROM memberships WHERE principal_id = ? ORDER BY account_id`), scanMembership, principalID)
	return ms, db.translate(err)
}

func (db *DB) CreateAPIKey(ctx context.Context, k *vault.APIKey) error {
	return db.translate(db.tx(ctx, func(tx *sql.Tx) error { return db.insertAPIKey(ctx, tx, k) }))
}

func (db *DB) insertAPIKey(ctx context.Context, x execer, k *vault.APIKey) error {
	_, err := x.ExecContext(ctx, db.q(`INSERT INTO api_keys (id, principal_id, name, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
		k.ID, k.PrincipalID, k.Name, k.Hash, ts(k.CreatedAt), tsPtr(k.ExpiresAt))
	return err
}

const lookupKeySQL = `SELECT k.id, k.principal_id, k.name, k.hash, k.created_at, k.expires_at, k.revoked_at, k.last_used_at,
	p.kind, p.name, p.default_account_id, p.created_at, COALESCE(NULLIF(?, ''), p.default_account_id), COALESCE(m.role, '')
FROM api_keys k
JOIN principals p ON p.id = k.principal_id
LEFT JOIN memberships m ON m.principal_id = p.id AND m.account_id = COALESCE(NULLIF(?, ''), p.default_account_id)
WHERE k.hash = ? AND p.disabled_at IS NULL`

func (db *DB) LookupAPIKey(ctx context.Context, hash []byte, accountID string) (*vault.AuthRecord, error) {
	var rec vault.AuthRecord
	var kind, role string
	var kCreated, pCreated int64
	var exp, rev, used sql.NullInt64
	err := db.readRow(ctx, lookupKeySQL, accountID, accountID, hash).Scan(
		&rec.Key.ID, &rec.Key.PrincipalID, &rec.Key.Name, &rec.Key.Hash, &kCreated, &exp, &rev, &used,
		&kind, &rec.Principal.Name, &rec.Principal.DefaultAccountID, &pCreated, &rec.AccountID, &role)
	if err != nil {
		return nil, db.translate(err)
	}
	rec.Key.CreatedAt, rec.Key.ExpiresAt, rec.Key.RevokedAt, rec.Key.LastUsedAt = fromTS(kCreated), fromNullTS(exp), fromNullTS(rev), fromNullTS(used)
	rec.Principal.ID = rec.Key.PrincipalID
	rec.Principal.Kind = vault.PrincipalKind(kind)
	rec.Principal.CreatedAt = fromTS(pCreated)
	rec.Role = vault.Role(role)
	return &rec, nil
}

// apiKeyCols are the columns of an API key but its hash.
const apiKeyCols = `id, principal_id, name, created_at, expires_at, revoked_at, last_used_at`

func scanAPIKey(row scanner) (*vault.APIKey, error) {
	var k vault.APIKey
	var created int64
	var exp, rev, used sql.NullInt64
	if err := row.Scan(&k.ID, &k.PrincipalID, &k.Name, &created, &exp, &rev, &used); err != nil {
		return nil, err
	}
	k.CreatedAt, k.ExpiresAt, k.RevokedAt, k.LastUsedAt = fromTS(created), fromNullTS(exp), fromNullTS(rev), fromNullTS(used)
	return &k, nil
}

func (db *DB) ListAPIKeys(ctx context.Context, principalID string) ([]vault.APIKey, error) {
	ks, err := queryAll(ctx, db.r, db.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE principal_id = ? ORDER BY created_at, id`), scanAPIKey, principalID)
	return ks, db.translate(err)
}

func (db *DB) RevokeAPIKey(ctx context.Context, id string, at time.Time) error {
	return db.translate(found(db.write(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, ts(at), id)))
}

func (db *DB) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := db.w.ExecContext(ctx, db.q(`UPDATE api_keys SET last_used_at = ? WHERE id = ?`), ts(at), id)
	return db.translate(err)
}

func (db *DB) GetMeta(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := db.w.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), key).Scan(&v)
	return v, db.translate(err)
}

// insertMetaSQL sets a meta key that is not set yet.
const insertMetaSQL = `INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`

func (db *DB) PutMeta(ctx context.Context, key string, value []byte) (bool, error) {
	res, err := db.w.ExecContext(ctx, db.q(insertMetaSQL), key, value)
	if err != nil {
		return false, db.translate(err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
