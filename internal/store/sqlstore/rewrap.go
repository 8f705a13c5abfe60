package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"

	"github.com/credvault/credvault/internal/store"
)

// sealedColumn names a column that holds envelope ciphertext (a data key
// wrapped by the master key), for master-key rotation.
type sealedColumn struct {
	table string
	keys  []string // primary key columns
	col   string
}

// sealedColumns lists every column of the schema that holds ciphertext.
// A migration that adds one must add it here (TestSealedColumnsComplete
// checks the schema for BLOB columns that are not listed or exempt).
var sealedColumns = []sealedColumn{
	{table: "meta", keys: []string{"key"}, col: "value"},
	{table: "credentials", keys: []string{"account_id", "id"}, col: "ciphertext"},
	{table: "dsm_sobjects", keys: []string{"account_id", "kid"}, col: "ciphertext"},
	{table: "dsm_app_secrets", keys: []string{"app_id"}, col: "ciphertext"},
	{table: "credential_versions", keys: []string{"account_id", "credential_id", "version"}, col: "ciphertext"},
	{table: "credential_trash", keys: []string{"account_id", "id"}, col: "ciphertext"},
	{table: "webhooks", keys: []string{"account_id", "id"}, col: "secret"},
}

// RewrapStats counts the work of RewrapAll (see store.Rewrapper).
type RewrapStats = store.RewrapStats

// RewrapAll re-wraps, in batches, every ciphertext for which needs returns
// true, with rewrap. Each row is updated only if its ciphertext is still the
// one read (compare-and-set), so concurrent writes through the API are never
// overwritten; such a row was re-sealed by the writer under the current key
// anyway. It is safe to run again after an interruption.
func (db *DB) RewrapAll(ctx context.Context, needs func([]byte) bool, rewrap func([]byte) ([]byte, error)) (RewrapStats, error) {
	var st RewrapStats
	have, err := db.tables(ctx, db.r)
	if err != nil {
		return st, db.translate(err)
	}
	for _, sc := range sealedColumns {
		if !slices.Contains(have, sc.table) {
			continue
		}
		if err := db.rewrapColumn(ctx, sc, needs, rewrap, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func (db *DB) rewrapColumn(ctx context.Context, sc sealedColumn, needs func([]byte) bool, rewrap func([]byte) ([]byte, error), st *RewrapStats) error {
	const batch = 500
	keys := strings.Join(sc.keys, ", ")
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(sc.keys)), ", ")
	var after []any
	for {
		q := `SELECT ` + keys + `, ` + sc.col + ` FROM ` + sc.table
		if after != nil {
			q += ` WHERE (` + keys + `) > (` + marks + `)`
		}
		q += ` ORDER BY ` + keys + fmt.Sprintf(` LIMIT %d`, batch)
		rows, err := db.r.QueryContext(ctx, db.q(q), after...)
		if err != nil {
			return db.translate(fmt.Errorf("rewrap %s: %w", sc.table, err))
		}
		type row struct {
			keys []any
			ct   []byte
		}
		var todo []row
		n := 0
		for rows.Next() {
			vals := make([]any, len(sc.keys))
			ptrs := make([]any, len(sc.keys)+1)
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			var ct []byte
			ptrs[len(sc.keys)] = &ct
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return db.translate(err)
			}
			for i, v := range vals { // drivers may hand back []byte for TEXT
				if b, ok := v.([]byte); ok {
					vals[i] = string(b)
				}
			}
			n++
			st.Scanned++
			after = vals
			if needs(ct) {
				todo = append(todo, row{keys: vals, ct: ct})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return db.translate(err)
		}
		if len(todo) > 0 {
			err := db.tx(ctx, func(tx *sql.Tx) error {
				where := strings.Join(sc.keys, " = ? AND ") + " = ?"
				stmt, err := tx.PrepareContext(ctx, db.q(`UPDATE `+sc.table+` SET `+sc.col+` = ? WHERE `+where+` AND `+sc.col+` = ?`))
				if err != nil {
					return err
				}
				defer stmt.Close()
				for _, r := range todo {
					nct, err := rewrap(r.ct)
					if err != nil {
						return fmt.Errorf("rewrap %s %v: %w", sc.table, r.keys, err)
					}
					args := append(append([]any{nct}, r.keys...), r.ct)
					res, err := stmt.ExecContext(ctx, args...)
					if err != nil {
						return err
					}
					if k, _ := res.RowsAffected(); k == 1 {
						st.Rewrapped++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		if n < batch {
			return nil
		}
	}
}

// WrappingKeysInUse counts ciphertexts by the master key id that wraps
// their data key.
func (db *DB) WrappingKeysInUse(ctx context.Context, keyID func([]byte) (uint32, error)) (map[uint32]int64, error) {
	out := map[uint32]int64{}
	_, err := db.RewrapAll(ctx, func(ct []byte) bool {
		if id, err := keyID(ct); err == nil {
			out[id]++
		}
		return false
	}, nil)
	return out, err
}
