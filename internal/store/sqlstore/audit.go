package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/credvault/credvault/internal/vault"
)

const auditCols = `seq, id, time, account_id, principal_id, principal_kind, action, object_type, object_id, outcome, request_id, client_addr, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (vault.AuditRecord, error) {
	var r vault.AuditRecord
	var t int64
	var kind string
	err := row.Scan(&r.Seq, &r.ID, &t, &r.AccountID, &r.PrincipalID, &kind, &r.Action, &r.ObjectType, &r.ObjectID,
		&r.Outcome, &r.RequestID, &r.ClientAddr, &r.PrevHash, &r.Hash)
	r.Time = fromTS(t)
	r.PrincipalKind = vault.PrincipalKind(kind)
	return r, err
}

func (db *DB) AppendAudit(ctx context.Context, build func(int64, []byte) ([]vault.AuditRecord, error)) error {
	// Make sure the head row exists (once per process, remembered only once
	// it succeeded: a failure — the database briefly away, a cancelled
	// request — must not make every later append fail).
	if !db.auditHeadReady.Load() {
		if _, err := db.w.ExecContext(ctx, db.q(`INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?) ON CONFLICT (id) DO NOTHING`), []byte{}); err != nil {
			return db.translate(fmt.Errorf("audit head: %w", err))
		}
		db.auditHeadReady.Store(true)
	}
	headSel, err := db.prepared(ctx, db.w, `SELECT seq, hash FROM audit_head WHERE id = 1`+db.d.forUpdate())
	if err != nil {
		return db.translate(fmt.Errorf("audit head: %w", err))
	}
	headUpd, err := db.prepared(ctx, db.w, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`)
	if err != nil {
		return db.translate(fmt.Errorf("audit head: %w", err))
	}
	return db.tx(ctx, func(tx *sql.Tx) error {
		// Lock the head row (PostgreSQL: row lock; SQLite: the IMMEDIATE
		// transaction already excludes other writers).
		var seq int64
		var hash []byte
		if err := tx.StmtContext(ctx, headSel).QueryRowContext(ctx).Scan(&seq, &hash); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		if len(hash) == 0 {
			hash = nil
		}
		recs, err := build(seq, hash)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		// One multi-row INSERT per chunk: far cheaper than a statement per
		// record, and a group-committed batch can hold hundreds of records.
		const perStmt = 64
		for start := 0; start < len(recs); start += perStmt {
			chunk := recs[start:min(start+perStmt, len(recs))]
			var sb strings.Builder
			sb.WriteString(`INSERT INTO audit_log (` + auditCols + `) VALUES `)
			args := make([]any, 0, len(chunk)*14)
			for i, r := range chunk {
				if i > 0 {
					sb.WriteString(", ")
				}
				sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, r.Seq, r.ID, ts(r.Time), r.AccountID, r.PrincipalID, string(r.PrincipalKind), r.Action,
					r.ObjectType, r.ObjectID, r.Outcome, r.RequestID, r.ClientAddr, r.PrevHash, r.Hash)
			}
			if _, err := tx.ExecContext(ctx, db.q(sb.String()), args...); err != nil {
				return fmt.Errorf("audit insert: %w", err)
			}
		}
		last := recs[len(recs)-1]
		_, err = tx.StmtContext(ctx, headUpd).ExecContext(ctx, last.Seq, last.Hash)
		return err
	})
}

func (db *DB) ListAudit(ctx context.Context, q vault.AuditQuery) ([]vault.AuditRecord, error) {
	query := `SELECT ` + auditCols + ` FROM audit_log WHERE account_id = ?`
	args := []any{q.AccountID}
	if q.Since != nil {
		query += ` AND time >= ?`
		args = append(args, ts(*q.Since))
	}
	if q.Until != nil {
		query += ` AND time <= ?`
		args = append(args, ts(*q.Until))
	}
	if q.ObjectID != "" {
		query += ` AND object_id = ?`
		args = append(args, q.ObjectID)
	}
	if q.PrincipalID != "" {
		query += ` AND principal_id = ?`
		args = append(args, q.PrincipalID)
	}
	if q.BeforeSeq > 0 {
		query += ` AND seq < ?`
		args = append(args, q.BeforeSeq)
	}
	if q.Reach != nil {
		query, args = reachClause(query, args, q.AccountID, q.Reach)
	}
	query += fmt.Sprintf(` ORDER BY seq DESC LIMIT %d OFFSET %d`, max(q.Limit, 1), max(q.Offset, 0))
	rows, err := db.r.QueryContext(ctx, db.q(query), args...)
	if err != nil {
		return nil, db.translate(fmt.Errorf("list audit: %w", err))
	}
	defer rows.Close()
	var out []vault.AuditRecord
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, db.translate(err)
		}
		out = append(out, r)
	}
	return out, db.translate(rows.Err())
}

func (db *DB) ScanAudit(ctx context.Context, fn func(vault.AuditRecord) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT `+auditCols+` FROM audit_log ORDER BY seq`)
	if err != nil {
		return db.translate(fmt.Errorf("scan audit: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return db.translate(err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return db.translate(rows.Err())
}

func (db *DB) AuditHead(ctx context.Context) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := db.r.QueryRowContext(ctx, `SELECT seq, hash FROM audit_head WHERE id = 1`).Scan(&seq, &hash)
	if err == sql.ErrNoRows {
		return 0, nil, nil
	}
	return seq, hash, db.translate(err)
}
