package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

const trustCols = `id, account_id, name, issuer, key_source, jwks_url, jwks, audiences, claims, role, ttl_seconds, created_at`

type claimRuleJSON struct {
	Claim   string `json:"claim"`
	Pattern string `json:"pattern"`
}

func (db *DB) CreateTrustPolicy(ctx context.Context, p *vault.TrustPolicy, pr vault.Principal) error {
	auds, err := json.Marshal(p.Audiences)
	if err != nil {
		return fmt.Errorf("create trust policy: %w", err)
	}
	rules := make([]claimRuleJSON, len(p.Claims))
	for i, c := range p.Claims {
		rules[i] = claimRuleJSON(c)
	}
	claims, err := json.Marshal(rules)
	if err != nil {
		return fmt.Errorf("create trust policy: %w", err)
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, db.q(`SELECT COUNT(*) FROM trust_policies WHERE account_id = ? AND name = ?`), p.AccountID, p.Name).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return vault.ErrConflict
		}
		if err := db.insertPrincipal(ctx, tx, &pr, vault.Membership{PrincipalID: pr.ID, AccountID: p.AccountID, Role: p.Role}); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO trust_policies (`+trustCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			p.ID, p.AccountID, p.Name, p.Issuer, string(p.KeySource), p.JWKSURL, p.JWKS, string(auds), string(claims),
			string(p.Role), int64(p.TTL/time.Second), ts(p.CreatedAt))
		return err
	})
}

func scanTrustPolicy(row scanner) (*vault.TrustPolicy, error) {
	var p vault.TrustPolicy
	var src, auds, claims, role string
	var ttl, created int64
	if err := row.Scan(&p.ID, &p.AccountID, &p.Name, &p.Issuer, &src, &p.JWKSURL, &p.JWKS, &auds, &claims, &role, &ttl, &created); err != nil {
		return nil, err
	}
	var rules []claimRuleJSON
	if err := json.Unmarshal([]byte(auds), &p.Audiences); err != nil {
		return nil, fmt.Errorf("trust policy %s: audiences: %w", p.ID, err)
	}
	if err := json.Unmarshal([]byte(claims), &rules); err != nil {
		return nil, fmt.Errorf("trust policy %s: claims: %w", p.ID, err)
	}
	for _, r := range rules {
		p.Claims = append(p.Claims, vault.ClaimRule(r))
	}
	p.KeySource, p.Role = vault.KeySourceKind(src), vault.Role(role)
	p.TTL, p.CreatedAt = time.Duration(ttl)*time.Second, fromTS(created)
	return &p, nil
}

func (db *DB) GetTrustPolicy(ctx context.Context, id string) (*vault.TrustPolicy, error) {
	return queryOne(ctx, db, scanTrustPolicy, `SELECT `+trustCols+` FROM trust_policies WHERE id = ?`, id)
}

func (db *DB) listTrust(ctx context.Context, where string, args ...any) ([]vault.TrustPolicy, error) {
	ps, err := queryAll(ctx, db.r, db.q(`SELECT `+trustCols+` FROM trust_policies WHERE `+where+` ORDER BY created_at, id`), scanTrustPolicy, args...)
	return ps, db.translate(err)
}

func (db *DB) ListTrustPolicies(ctx context.Context, accountID string) ([]vault.TrustPolicy, error) {
	return db.listTrust(ctx, `account_id = ?`, accountID)
}

func (db *DB) TrustPoliciesForIssuer(ctx context.Context, issuer, accountID string) ([]vault.TrustPolicy, error) {
	if accountID == "" {
		return db.listTrust(ctx, `issuer = ?`, issuer)
	}
	return db.listTrust(ctx, `issuer = ? AND account_id = ?`, issuer, accountID)
}

// DeleteTrustPolicy deletes the policy, its principal's membership and
// revokes its keys through tx, the store's write path: the audit record
// ctx carries (vault.TxAudit) commits with the three changes or not at all,
// and a store refusing writes refuses this one too.
func (db *DB) DeleteTrustPolicy(ctx context.Context, id string, at time.Time) error {
	return db.tx(ctx, func(tx *sql.Tx) error {
		if err := found(tx.ExecContext(ctx, db.q(`DELETE FROM trust_policies WHERE id = ?`), id)); err != nil {
			return err
		}
		// The principal stays (the audit trail names it); it loses its
		// role and every key issued through the policy is revoked.
		if _, err := tx.ExecContext(ctx, db.q(`DELETE FROM memberships WHERE principal_id = ?`), id); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, db.q(`UPDATE api_keys SET revoked_at = ? WHERE principal_id = ? AND revoked_at IS NULL`), ts(at), id)
		return err
	})
}

// PurgeExpiredWorkloadKeys deletes the keys issued through trust policies
// (keys of the service principals "trust:<policy>") that expired before
// before, and reports how many. Each token exchange adds a key; without
// this, api_keys would grow by one row per exchange forever. Expired keys
// never authenticate again, so nothing that works is lost.
func (db *DB) PurgeExpiredWorkloadKeys(ctx context.Context, before time.Time) (int64, error) {
	res, err := db.write(ctx, `DELETE FROM api_keys WHERE expires_at IS NOT NULL AND expires_at < ?
		AND principal_id IN (SELECT id FROM principals WHERE kind = 'service_account' AND name LIKE 'trust:%')`, ts(before))
	if err != nil {
		return 0, db.translate(err)
	}
	n, err := res.RowsAffected()
	return n, db.translate(err)
}
