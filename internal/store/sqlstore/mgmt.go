package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

// The management plane's storage (vault.MgmtStore).

func (db *DB) RenameAccount(ctx context.Context, id, name string) error {
	return db.translate(found(db.write(ctx, `UPDATE accounts SET name = ? WHERE id = ?`, name, id)))
}

// accountContents counts what an account holds that a plain delete refuses
// to remove.
const accountContents = `SELECT
	(SELECT COUNT(*) FROM credentials WHERE account_id = ?) +
	(SELECT COUNT(*) FROM dsm_sobjects WHERE account_id = ?) +
	(SELECT COUNT(*) FROM dsm_credentials WHERE account_id = ?) +
	(SELECT COUNT(*) FROM principals WHERE default_account_id = ?)`

// homed selects the principals whose home is the account (the first ?).
const homed = `(SELECT id FROM principals WHERE default_account_id = ?)`

func (db *DB) DeleteAccount(ctx context.Context, id string, force bool) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM accounts WHERE id = ?`), id).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return vault.ErrNotFound
		}
		if !force {
			if err := tx.QueryRowContext(ctx, db.q(accountContents), id, id, id, id).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return vault.Errorf(vault.KindConflict, "the account still holds credentials, security objects or principals; delete them first, or delete with force=true to remove them with it")
			}
		}
		err := db.execEach(ctx, tx, []any{id},
			`DELETE FROM dsm_credential_refs WHERE account_id = ?`,
			`DELETE FROM dsm_credentials WHERE account_id = ?`,
			`DELETE FROM dsm_sobjects WHERE account_id = ?`,
			`DELETE FROM dsm_app_groups WHERE account_id = ?`,
			`DELETE FROM dsm_app_secrets WHERE account_id = ?`,
			`DELETE FROM dsm_sessions WHERE account_id = ?`,
			`DELETE FROM dsm_sessions WHERE principal_id IN `+homed,
			`DELETE FROM user_sessions WHERE principal_id IN `+homed,
			`DELETE FROM console_sessions WHERE principal_id IN `+homed,
			`DELETE FROM console_sessions WHERE account_id = ?`,
			`DELETE FROM trust_policies WHERE account_id = ?`,
			`DELETE FROM api_keys WHERE principal_id IN `+homed,
			`DELETE FROM memberships WHERE principal_id IN `+homed,
			`DELETE FROM memberships WHERE account_id = ?`,
			`DELETE FROM dsm_apps WHERE account_id = ?`,
			`DELETE FROM dsm_group_stats WHERE account_id = ?`,
			`DELETE FROM dsm_groups WHERE account_id = ?`,
			`DELETE FROM credentials WHERE account_id = ?`,
			`DELETE FROM credential_versions WHERE account_id = ?`,
			`DELETE FROM credential_trash WHERE account_id = ?`,
			`DELETE FROM credential_expiry_notices WHERE account_id = ?`,
			`DELETE FROM webhook_deliveries WHERE account_id = ?`,
			`DELETE FROM webhooks WHERE account_id = ?`,
			`DELETE FROM events WHERE account_id = ?`,
			`DELETE FROM account_lifecycle WHERE account_id = ?`,
			`DELETE FROM credential_tombstones WHERE account_id = ?`,
			`DELETE FROM account_stats WHERE account_id = ?`,
			`DELETE FROM principals WHERE default_account_id = ?`,
			`DELETE FROM accounts WHERE id = ?`,
		)
		if err != nil {
			return fmt.Errorf("delete account: %w", err)
		}
		return nil
	})
}

func (db *DB) CreatePrincipalDetail(ctx context.Context, p *vault.PrincipalDetail, passwordHash string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO principals (id, kind, name, default_account_id, created_at, email, password_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`),
			p.ID, string(p.Kind), p.Name, p.DefaultAccountID, ts(p.CreatedAt), nullString(p.Email), nullString(passwordHash)); err != nil {
			return err
		}
		return db.insertMemberships(ctx, tx, p.Memberships)
	})
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

const detailCols = `id, kind, name, default_account_id, created_at, COALESCE(email, ''), CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END, disabled_at, last_login_at`

func scanDetail(row scanner) (*vault.PrincipalDetail, error) {
	var p vault.PrincipalDetail
	var kind string
	var created int64
	var hasPW int
	var disabled, login sql.NullInt64
	if err := row.Scan(&p.ID, &kind, &p.Name, &p.DefaultAccountID, &created, &p.Email, &hasPW, &disabled, &login); err != nil {
		return nil, err
	}
	p.Kind = vault.PrincipalKind(kind)
	p.CreatedAt = fromTS(created)
	p.HasPassword = hasPW == 1
	p.DisabledAt = fromNullTS(disabled)
	p.LastLoginAt = fromNullTS(login)
	return &p, nil
}

func (db *DB) GetPrincipalDetail(ctx context.Context, id string) (*vault.PrincipalDetail, error) {
	p, err := queryOne(ctx, db, scanDetail, `SELECT `+detailCols+` FROM principals WHERE id = ?`, id)
	if err != nil {
		return nil, err
	}
	if p.Memberships, err = db.ListMemberships(ctx, id); err != nil {
		return nil, err
	}
	return p, nil
}

func (db *DB) ListPrincipalDetails(ctx context.Context, q vault.PrincipalQuery) ([]vault.PrincipalDetail, bool, error) {
	where := []string{`kind <> 'app'`}
	var args []any
	if q.Kind != "" {
		where, args = append(where, `kind = ?`), append(args, string(q.Kind))
	}
	if q.Name != "" {
		where, args = append(where, `name = ?`), append(args, q.Name)
	}
	if q.After != "" {
		where, args = append(where, `id > ?`), append(args, q.After)
	}
	if q.AccountID != "" {
		where, args = append(where, `EXISTS (SELECT 1 FROM memberships m WHERE m.principal_id = principals.id AND m.account_id = ?)`), append(args, q.AccountID)
	}
	if q.Within != nil {
		if len(q.Within) == 0 {
			return nil, false, nil
		}
		where = append(where, `EXISTS (SELECT 1 FROM memberships m WHERE m.principal_id = principals.id AND m.account_id IN (?`+strings.Repeat(", ?", len(q.Within)-1)+`))`)
		for _, a := range q.Within {
			args = append(args, a)
		}
	}
	args = append(args, q.Limit+1)
	out, err := queryAll(ctx, db.r, db.q(`SELECT `+detailCols+` FROM principals WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`), scanDetail, args...)
	if err != nil {
		return nil, false, db.translate(err)
	}
	more := len(out) > q.Limit
	if more {
		out = out[:q.Limit]
	}
	for i := range out {
		if out[i].Memberships, err = db.ListMemberships(ctx, out[i].ID); err != nil {
			return nil, false, err
		}
	}
	return out, more, nil
}

// endSessions ends every session of a principal: login, DSM and web
// console sessions.
func endSessions(ctx context.Context, db *DB, tx *sql.Tx, principalID string) error {
	return db.execEach(ctx, tx, []any{principalID},
		`DELETE FROM user_sessions WHERE principal_id = ?`, `DELETE FROM dsm_sessions WHERE principal_id = ?`, `DELETE FROM console_sessions WHERE principal_id = ?`)
}

func (db *DB) UpdatePrincipal(ctx context.Context, id string, u vault.PrincipalUpdate) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		exec := func(q string, args ...any) error { return found(tx.ExecContext(ctx, db.q(q), args...)) }
		if err := exec(`UPDATE principals SET id = id WHERE id = ?`, id); err != nil {
			return err
		}
		if u.Name != nil {
			if err := exec(`UPDATE principals SET name = ? WHERE id = ?`, *u.Name, id); err != nil {
				return err
			}
		}
		if u.Email != nil {
			if err := exec(`UPDATE principals SET email = ? WHERE id = ?`, nullString(*u.Email), id); err != nil {
				return err
			}
		}
		if u.Disabled != nil {
			if !*u.Disabled {
				return exec(`UPDATE principals SET disabled_at = NULL WHERE id = ?`, id)
			}
			if err := exec(`UPDATE principals SET disabled_at = COALESCE(disabled_at, ?) WHERE id = ?`, ts(u.At), id); err != nil {
				return err
			}
			return endSessions(ctx, db, tx, id)
		}
		return nil
	})
}

func (db *DB) DeletePrincipal(ctx context.Context, id string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := endSessions(ctx, db, tx, id); err != nil {
			return err
		}
		err := db.execEach(ctx, tx, []any{id},
			`DELETE FROM trust_policies WHERE id = ?`, // a workload policy's service principal
			`DELETE FROM api_keys WHERE principal_id = ?`,
			`DELETE FROM memberships WHERE principal_id = ?`,
		)
		if err != nil {
			return err
		}
		return found(tx.ExecContext(ctx, db.q(`DELETE FROM principals WHERE id = ? AND kind <> 'app'`), id))
	})
}

func (db *DB) DeleteMembership(ctx context.Context, principalID, accountID string) error {
	res, err := db.write(ctx, `DELETE FROM memberships WHERE principal_id = ? AND account_id = ?`, principalID, accountID)
	if err != nil {
		return db.translate(err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return vault.Errorf(vault.KindNotFound, "the principal is not a member of this account")
	}
	return nil
}

func (db *DB) GetAPIKey(ctx context.Context, id string) (*vault.APIKey, error) {
	return queryOne(ctx, db, scanAPIKey, `SELECT `+apiKeyCols+` FROM api_keys WHERE id = ?`, id)
}

func (db *DB) SetPassword(ctx context.Context, principalID, hash string) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := found(tx.ExecContext(ctx, db.q(`UPDATE principals SET password_hash = ? WHERE id = ?`), hash, principalID)); err != nil {
			return err
		}
		return endSessions(ctx, db, tx, principalID)
	})
}

func (db *DB) PasswordHash(ctx context.Context, principalID string) (string, error) {
	var h sql.NullString
	err := db.w.QueryRowContext(ctx, db.q(`SELECT password_hash FROM principals WHERE id = ?`), principalID).Scan(&h)
	return h.String, db.translate(err)
}

func (db *DB) PrincipalByEmail(ctx context.Context, email string) (*vault.PrincipalDetail, string, error) {
	var id string
	var h sql.NullString
	err := db.w.QueryRowContext(ctx, db.q(`SELECT id, password_hash FROM principals WHERE email = ? AND kind = 'user'`), email).Scan(&id, &h)
	if err != nil {
		return nil, "", db.translate(err)
	}
	p, err := db.GetPrincipalDetail(ctx, id)
	if err != nil {
		return nil, "", err
	}
	return p, h.String, nil
}

func (db *DB) CreateUserSession(ctx context.Context, s *vault.UserSession) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM user_sessions WHERE expires_at < ?`), ts(s.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO user_sessions (id, token_hash, principal_id, created_at, last_used_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`),
			s.ID, s.TokenHash, s.PrincipalID, ts(s.CreatedAt), ts(s.LastUsedAt), ts(s.ExpiresAt))
		return err
	})
}

func (db *DB) LookupUserSession(ctx context.Context, tokenHash []byte) (*vault.UserSession, *vault.Principal, error) {
	var s vault.UserSession
	var created, used, exp, pCreated int64
	var p vault.Principal
	var kind string
	err := db.w.QueryRowContext(ctx, db.q(`SELECT s.id, s.token_hash, s.principal_id, s.created_at, s.last_used_at, s.expires_at,
		p.kind, p.name, p.default_account_id, p.created_at
		FROM user_sessions s JOIN principals p ON p.id = s.principal_id
		WHERE s.token_hash = ? AND p.disabled_at IS NULL`), tokenHash).
		Scan(&s.ID, &s.TokenHash, &s.PrincipalID, &created, &used, &exp, &kind, &p.Name, &p.DefaultAccountID, &pCreated)
	if err != nil {
		return nil, nil, db.translate(err)
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt = fromTS(created), fromTS(used), fromTS(exp)
	p.ID, p.Kind, p.CreatedAt = s.PrincipalID, vault.PrincipalKind(kind), fromTS(pCreated)
	return &s, &p, nil
}

func (db *DB) TouchUserSession(ctx context.Context, id string, at time.Time) error {
	_, err := db.w.ExecContext(ctx, db.q(`UPDATE user_sessions SET last_used_at = ? WHERE id = ?`), ts(at), id)
	return db.translate(err)
}

func (db *DB) DeleteUserSession(ctx context.Context, id string) error {
	_, err := db.write(ctx, `DELETE FROM user_sessions WHERE id = ?`, id)
	return db.translate(err)
}

func (db *DB) RecordLogin(ctx context.Context, principalID string, at time.Time) error {
	_, err := db.w.ExecContext(ctx, db.q(`UPDATE principals SET last_login_at = ? WHERE id = ?`), ts(at), principalID)
	return db.translate(err)
}
