package sqlstore

import (
	"context"
	"database/sql"
)

// Prepared statements of the write path (issue 13).
//
// SQLite parses and plans a statement's text every time it is run from its
// text; on the create path that was half of the SQL's CPU. The fixed
// statements that write transactions run go through execIn and queryRowIn
// instead, which use a statement prepared once on the write pool and bound
// to the transaction (tx.StmtContext: on SQLite the one write connection
// has it prepared already; on PostgreSQL database/sql prepares it once per
// pooled connection).
//
// A statement cannot be prepared on the write pool while a transaction
// holds SQLite's one write connection (it would wait for itself). So the
// first time a text is met inside a transaction it runs from its text and
// is noted; tx prepares the noted texts before it begins its next
// transaction, and every later use is prepared.

// execIn runs the fixed statement query in tx, prepared if it can be.
func (db *DB) execIn(ctx context.Context, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if s := db.txStmt(ctx, tx, query); s != nil {
		return s.ExecContext(ctx, args...)
	}
	return tx.ExecContext(ctx, db.q(query), args...)
}

// queryRowIn runs the fixed single-row query in tx, prepared if it can be.
func (db *DB) queryRowIn(ctx context.Context, tx *sql.Tx, query string, args ...any) *sql.Row {
	if s := db.txStmt(ctx, tx, query); s != nil {
		return s.QueryRowContext(ctx, args...)
	}
	return tx.QueryRowContext(ctx, db.q(query), args...)
}

// queryIn runs the fixed query in tx, prepared if it can be.
func (db *DB) queryIn(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	if s := db.txStmt(ctx, tx, query); s != nil {
		return s.QueryContext(ctx, args...)
	}
	return tx.QueryContext(ctx, db.q(query), args...)
}

// txStmt returns query's prepared statement bound to tx, or nil (and notes
// query for preparing) if it is not prepared yet.
func (db *DB) txStmt(ctx context.Context, tx *sql.Tx, query string) *sql.Stmt {
	if s, ok := db.stmts.Load(stmtKey{db.w, query}); ok {
		return tx.StmtContext(ctx, s.(*sql.Stmt))
	}
	db.textWrites.Add(1)
	db.unprepared.Store(query, struct{}{})
	db.toPrepare.Store(true)
	return nil
}

// prepareWrites prepares the statements noted by txStmt. It runs outside
// any transaction; a statement that fails to prepare (a cancelled context)
// stays noted and runs from its text meanwhile.
func (db *DB) prepareWrites(ctx context.Context) {
	if !db.toPrepare.CompareAndSwap(true, false) {
		return
	}
	db.unprepared.Range(func(k, _ any) bool {
		if _, err := db.prepared(ctx, db.w, k.(string)); err != nil {
			db.toPrepare.Store(true)
			return true
		}
		db.unprepared.Delete(k)
		return true
	})
}
