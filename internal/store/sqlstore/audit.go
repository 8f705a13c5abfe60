package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/credvault/credvault/internal/vault"
)

const auditCols = `seq, id, time, account_id, principal_id, principal_kind, action, object_type, object_id, outcome, request_id, client_addr, prev_hash, hash`

func scanAudit(row scanner) (*vault.AuditRecord, error) {
	var r vault.AuditRecord
	var t int64
	var kind string
	if err := row.Scan(&r.Seq, &r.ID, &t, &r.AccountID, &r.PrincipalID, &kind, &r.Action, &r.ObjectType, &r.ObjectID,
		&r.Outcome, &r.RequestID, &r.ClientAddr, &r.PrevHash, &r.Hash); err != nil {
		return nil, err
	}
	r.Time = fromTS(t)
	r.PrincipalKind = vault.PrincipalKind(kind)
	return &r, nil
}

// AppendAudit appends records in a transaction of their own (the group
// commit of secret reads and failure records). The record of a change is
// written by tx instead, in the change's own transaction (vault.TxAudit).
func (db *DB) AppendAudit(ctx context.Context, build func(vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error)) error {
	st, err := db.auditStmts(ctx)
	if err != nil {
		return db.translate(fmt.Errorf("audit head: %w", err))
	}
	return db.tx(withoutChanges(ctx), func(tx *sql.Tx) error { return db.appendAudit(ctx, tx, st, build) })
}

// auditStatements are the head row's statements, prepared on the write pool
// before a transaction begins (preparing inside one would wait for the one
// SQLite write connection the transaction holds).
type auditStatements struct{ sel, upd *sql.Stmt }

func (db *DB) auditStmts(ctx context.Context) (auditStatements, error) {
	sel, err := db.prepared(ctx, db.w, `SELECT seq, hash, mac FROM audit_head WHERE id = 1`+db.d.forUpdate())
	if err != nil {
		return auditStatements{}, err
	}
	upd, err := db.prepared(ctx, db.w, `UPDATE audit_head SET seq = ?, hash = ?, mac = ? WHERE id = 1`)
	if err != nil {
		return auditStatements{}, err
	}
	return auditStatements{sel, upd}, nil
}

// auditChunk is the number of records of the largest multi-row audit
// INSERT (a power of two).
const auditChunk = 64

// auditInserts[i] inserts 1<<i audit records.
var auditInserts = func() (s [7]string) {
	for i := range s {
		s[i] = buildAuditInsert(1 << i)
	}
	return s
}()

// auditInsertSQL returns the INSERT of n audit records (a power of two up
// to auditChunk).
func auditInsertSQL(n int) string {
	return auditInserts[bits.Len(uint(n))-1]
}

func buildAuditInsert(n int) string {
	var sb strings.Builder
	sb.WriteString(`INSERT INTO audit_log (` + auditCols + `) VALUES `)
	for i := range n {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	return sb.String()
}

// appendAudit locks the head row (PostgreSQL: row lock, held to the commit,
// so appenders are serialised; SQLite: the write transaction already
// excludes other writers), chains build's records after it, inserts them and
// moves the head, all in tx.
func (db *DB) appendAudit(ctx context.Context, tx *sql.Tx, st auditStatements, build func(vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error)) error {
	var head vault.AuditHead
	err := tx.StmtContext(ctx, st.sel).QueryRowContext(ctx).Scan(&head.Seq, &head.Hash, &head.MAC)
	if errors.Is(err, sql.ErrNoRows) {
		// First append ever (or after a restore without a head row).
		if _, err := tx.ExecContext(ctx, db.q(`INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?) ON CONFLICT (id) DO NOTHING`), []byte{}); err != nil {
			return fmt.Errorf("audit head: %w", err)
		}
		err = tx.StmtContext(ctx, st.sel).QueryRowContext(ctx).Scan(&head.Seq, &head.Hash, &head.MAC)
	}
	if err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	if len(head.Hash) == 0 {
		head.Hash = nil
	}
	recs, next, err := build(head)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	// Prepared multi-row INSERTs of a power of two records each, largest
	// first (a group-committed batch can hold hundreds of records; a
	// change has one): 64+32+2+1 for 99. Seven fixed statements, nothing
	// parsed per call, at most six per call beyond the full chunks.
	for len(recs) > 0 {
		n := auditChunk
		for n > len(recs) {
			n /= 2
		}
		args := make([]any, 0, n*14)
		for _, r := range recs[:n] {
			args = append(args, r.Seq, r.ID, ts(r.Time), r.AccountID, r.PrincipalID, string(r.PrincipalKind), r.Action,
				r.ObjectType, r.ObjectID, r.Outcome, r.RequestID, r.ClientAddr, r.PrevHash, r.Hash)
		}
		if _, err := db.execIn(ctx, tx, auditInsertSQL(n), args...); err != nil {
			return fmt.Errorf("audit insert: %w", err)
		}
		recs = recs[n:]
	}
	var mac any
	if len(next.MAC) > 0 {
		mac = next.MAC
	}
	if _, err := tx.StmtContext(ctx, st.upd).ExecContext(ctx, next.Seq, next.Hash, mac); err != nil {
		return fmt.Errorf("audit head: %w", err)
	}
	return nil
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
	out, err := queryAll(ctx, db.r, db.q(query), scanAudit, args...)
	if err != nil {
		return nil, db.translate(fmt.Errorf("list audit: %w", err))
	}
	return out, nil
}

func (db *DB) ScanAudit(ctx context.Context, fn func(vault.AuditRecord) error) error {
	var fnErr error // fn's own error, returned as it is
	err := forRows(ctx, db.r, `SELECT `+auditCols+` FROM audit_log ORDER BY seq`, nil, func(row scanner) error {
		r, err := scanAudit(row)
		if err != nil {
			return err
		}
		fnErr = fn(*r)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return db.translate(fmt.Errorf("scan audit: %w", err))
	}
	return nil
}

func (db *DB) AuditHead(ctx context.Context) (vault.AuditHead, error) {
	var h vault.AuditHead
	err := db.r.QueryRowContext(ctx, `SELECT seq, hash, mac FROM audit_head WHERE id = 1`).Scan(&h.Seq, &h.Hash, &h.MAC)
	if err == sql.ErrNoRows {
		return vault.AuditHead{}, nil
	}
	return h, db.translate(err)
}
