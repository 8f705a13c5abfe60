package sqlstore

import (
	"context"
	"database/sql"

	"github.com/credvault/credvault/internal/vault"
)

// The shapes most tables share: reading every row of a query, the
// read-modify-write of one row, statements that must find their row, and
// runs of statements with the same arguments. The callers translate the
// errors (db.translate), as they did before these helpers existed.

// forRows runs query (already rebound with db.q) on q and calls each for
// every row, stopping at the first error.
func forRows(ctx context.Context, q querier, query string, args []any, each func(scanner) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// queryOne reads the one row that query selects, through the read pool's
// prepared statement; no row, or a driver error, comes back translated
// (vault.KindNotFound for no row).
func queryOne[T any](ctx context.Context, db *DB, scan func(scanner) (*T, error), query string, args ...any) (*T, error) {
	v, err := scan(db.readRow(ctx, query, args...))
	if err != nil {
		return nil, db.translate(err)
	}
	return v, nil
}

// queryAll runs query (already rebound with db.q) on q and scans every row
// with scan. No rows is an empty, non-nil slice.
func queryAll[T any](ctx context.Context, q querier, query string, scan func(scanner) (*T, error), args ...any) ([]T, error) {
	out := []T{}
	err := forRows(ctx, q, query, args, func(row scanner) error {
		v, err := scan(row)
		if err == nil {
			out = append(out, *v)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// txValue runs fn in a write transaction (db.tx) and returns its value
// once the transaction has committed, the zero value otherwise.
func txValue[T any](ctx context.Context, db *DB, fn func(tx *sql.Tx) (T, error)) (T, error) {
	var out T
	err := db.tx(ctx, func(tx *sql.Tx) error {
		v, err := fn(tx)
		out = v
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// modify is the read-modify-write of one row in one write transaction: get
// reads the row (locked on PostgreSQL), change edits it (the caller's
// function), put writes it back. It returns the row as written.
func modify[T any](ctx context.Context, db *DB, get func(*sql.Tx) (*T, error), change func(*T) error, put func(*sql.Tx, *T) error) (*T, error) {
	return txValue(ctx, db, func(tx *sql.Tx) (*T, error) {
		v, err := get(tx)
		if err != nil {
			return nil, err
		}
		if err := change(v); err != nil {
			return nil, err
		}
		if err := put(tx, v); err != nil {
			return nil, err
		}
		return v, nil
	})
}

// found is the error of a statement that must change a row: err if it
// failed, vault.ErrNotFound if it changed none.
func found(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return vault.ErrNotFound
	}
	return nil
}

// execEach runs each query in tx with the same arguments, in order.
func (db *DB) execEach(ctx context.Context, tx *sql.Tx, args []any, queries ...string) error {
	for _, q := range queries {
		if _, err := tx.ExecContext(ctx, db.q(q), args...); err != nil {
			return err
		}
	}
	return nil
}
