package sqlstore

import (
	"context"
	"encoding/hex"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// Console sessions (store.ConsoleSessionStore): the token's SHA-256 hash is
// kept in hex, never the token.

// CreateConsoleSession stores s.
func (db *DB) CreateConsoleSession(ctx context.Context, s *store.ConsoleSession) error {
	_, err := db.write(ctx, `INSERT INTO console_sessions (token_hash, principal_id, account_id, key_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		hex.EncodeToString(s.TokenHash), s.PrincipalID, s.AccountID, s.KeyID, ts(s.CreatedAt), ts(s.LastSeenAt), ts(s.ExpiresAt))
	return err
}

// GetConsoleSession returns the session whose token hashes to hash;
// vault.ErrNotFound if there is none.
func (db *DB) GetConsoleSession(ctx context.Context, hash []byte) (*store.ConsoleSession, error) {
	s := store.ConsoleSession{TokenHash: hash}
	var created, seen, exp int64
	err := db.w.QueryRowContext(ctx, db.q(`SELECT principal_id, account_id, key_id, created_at, last_seen_at, expires_at FROM console_sessions WHERE token_hash = ?`), hex.EncodeToString(hash)).
		Scan(&s.PrincipalID, &s.AccountID, &s.KeyID, &created, &seen, &exp)
	if err != nil {
		return nil, db.translate(err)
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromTS(created), fromTS(seen), fromTS(exp)
	return &s, nil
}

// TouchConsoleSession records activity on a session at t and moves it to
// accountID; vault.ErrNotFound if the session is gone.
func (db *DB) TouchConsoleSession(ctx context.Context, hash []byte, accountID string, t time.Time) error {
	res, err := db.write(ctx, `UPDATE console_sessions SET last_seen_at = ?, account_id = ? WHERE token_hash = ?`, ts(t), accountID, hex.EncodeToString(hash))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return vault.ErrNotFound
	}
	return nil
}

// DeleteConsoleSession removes a session (sign out). Removing a missing
// session is not an error.
func (db *DB) DeleteConsoleSession(ctx context.Context, hash []byte) error {
	_, err := db.write(ctx, `DELETE FROM console_sessions WHERE token_hash = ?`, hex.EncodeToString(hash))
	return err
}

// DeleteConsoleSessionsBefore removes sessions whose absolute timeout is
// before t or that were last seen before idleBefore.
func (db *DB) DeleteConsoleSessionsBefore(ctx context.Context, t, idleBefore time.Time) error {
	_, err := db.write(ctx, `DELETE FROM console_sessions WHERE expires_at < ? OR last_seen_at < ?`, ts(t), ts(idleBefore))
	return err
}
