package sqlstore

import (
	"bufio"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Backups are logical: every table, in creation order, read in one
// read-only snapshot transaction while the server keeps serving, written as
// gzip-compressed JSON lines. They hold exactly what the database holds —
// ciphertext and metadata, never plaintext — so they are useless without the
// master key, and restoring one needs the same master key. Because the
// format is engine-neutral, a SQLite backup restores into PostgreSQL and
// back.
//
//	{"format":"credvault-backup","version":1,"engine":"sqlite","schema_version":2,"created_at":"…"}
//	{"table":"accounts","columns":["id","name","created_at"]}
//	{"r":["…","default",1763790000000000]}
//	…
//	{"end":true,"tables":9,"rows":1234}
//
// Byte values are {"b64":"…"}; the trailer detects a truncated file.

const backupFormat = "credvault-backup"

// BackupStats summarises a backup or restore.
type BackupStats struct {
	Tables int
	Rows   int64
}

type backupHeader struct {
	Format        string `json:"format"`
	Version       int    `json:"version"`
	Engine        string `json:"engine"`
	SchemaVersion int    `json:"schema_version"`
	CreatedAt     string `json:"created_at"`
}

type backupLine struct {
	Table   string            `json:"table,omitempty"`
	Columns []string          `json:"columns,omitempty"`
	Row     []json.RawMessage `json:"r,omitempty"`
	End     bool              `json:"end,omitempty"`
	Tables  int               `json:"tables,omitempty"`
	Rows    int64             `json:"rows,omitempty"`
}

// tables lists the application tables in creation order (so that a table
// comes after the tables it references).
func (db *DB) tables(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]string, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid`
	if db.d.name == Postgres {
		query = `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY c.oid`
	}
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		if name != "schema_migrations" {
			out = append(out, name)
		}
	}
	return out, rows.Err()
}

func (db *DB) schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Backup writes a consistent snapshot of the whole database to w.
func (db *DB) Backup(ctx context.Context, w io.Writer) (BackupStats, error) {
	var st BackupStats
	opts := &sql.TxOptions{ReadOnly: true}
	if db.d.name == Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, opts)
	if err != nil {
		return st, db.translate(fmt.Errorf("backup: begin: %w", err))
	}
	defer tx.Rollback()
	ver, err := db.schemaVersion(ctx, tx)
	if err != nil {
		return st, db.translate(fmt.Errorf("backup: %w", err))
	}
	tables, err := db.tables(ctx, tx)
	if err != nil {
		return st, db.translate(fmt.Errorf("backup: list tables: %w", err))
	}
	zw := gzip.NewWriter(w)
	enc := json.NewEncoder(zw)
	if err := enc.Encode(backupHeader{Format: backupFormat, Version: 1, Engine: db.d.name, SchemaVersion: ver, CreatedAt: time.Now().UTC().Format(time.RFC3339)}); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	for _, t := range tables {
		n, err := db.backupTable(ctx, tx, enc, t)
		if err != nil {
			return st, err
		}
		st.Tables++
		st.Rows += n
	}
	if err := enc.Encode(backupLine{End: true, Tables: st.Tables, Rows: st.Rows}); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	return st, nil
}

func (db *DB) backupTable(ctx context.Context, tx *sql.Tx, enc *json.Encoder, table string) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table))
	if err != nil {
		return 0, db.translate(fmt.Errorf("backup: %s: %w", table, err))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, fmt.Errorf("backup: %s: %w", table, err)
	}
	if err := enc.Encode(backupLine{Table: table, Columns: cols}); err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	line := backupLine{Row: make([]json.RawMessage, len(cols))}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, db.translate(fmt.Errorf("backup: %s: %w", table, err))
		}
		for i, v := range vals {
			line.Row[i], err = encodeCell(v)
			if err != nil {
				return n, fmt.Errorf("backup: %s.%s: %w", table, cols[i], err)
			}
		}
		if err := enc.Encode(line); err != nil {
			return n, fmt.Errorf("backup: %w", err)
		}
		n++
	}
	return n, db.translate(rows.Err())
}

func encodeCell(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return json.RawMessage("null"), nil
	case []byte:
		return json.Marshal(map[string]string{"b64": base64.StdEncoding.EncodeToString(x)})
	case int64, float64, bool, string:
		return json.Marshal(x)
	case time.Time:
		return json.Marshal(x.UTC().Format(time.RFC3339Nano))
	}
	return nil, fmt.Errorf("unsupported value type %T", v)
}

func decodeCell(raw json.RawMessage, colType string) (any, error) {
	if string(raw) == "null" {
		return nil, nil
	}
	if len(raw) > 0 && raw[0] == '{' {
		var b struct {
			B64 string `json:"b64"`
		}
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, err
		}
		return base64.StdEncoding.DecodeString(b.B64)
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case json.Number:
		i, err := x.Int64()
		if err != nil {
			return x.Float64()
		}
		if strings.Contains(strings.ToUpper(colType), "BOOL") {
			return i != 0, nil
		}
		return i, nil
	}
	return v, nil
}

// ErrNotEmpty is returned by Restore when the target database holds data.
var ErrNotEmpty = errors.New("restore: the target database is not empty; restore only into a new, empty database")

// Restore loads a backup into this database, which must be empty (migrated,
// never served). Everything is written in one transaction: a failed or
// truncated restore leaves the database empty.
func (db *DB) Restore(ctx context.Context, r io.Reader) (BackupStats, error) {
	var st BackupStats
	zr, err := gzip.NewReader(r)
	if err != nil {
		return st, fmt.Errorf("restore: not a credvault backup: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if !sc.Scan() {
		return st, errors.New("restore: empty backup")
	}
	var hdr backupHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Format != backupFormat {
		return st, errors.New("restore: not a credvault backup")
	}
	myVer, err := db.schemaVersion(ctx, db.w)
	if err != nil {
		return st, db.translate(fmt.Errorf("restore: %w", err))
	}
	if hdr.SchemaVersion != myVer {
		return st, fmt.Errorf("restore: backup has schema version %d, this binary %d; use the credvault version that made it", hdr.SchemaVersion, myVer)
	}
	err = db.tx(ctx, func(tx *sql.Tx) error {
		tables, err := db.tables(ctx, tx)
		if err != nil {
			return err
		}
		for _, t := range tables {
			var one int
			err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+quoteIdent(t)+` LIMIT 1`).Scan(&one)
			if err == nil {
				return ErrNotEmpty
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		known := map[string]bool{}
		for _, t := range tables {
			known[t] = true
		}
		var (
			stmt  *sql.Stmt
			types []string
			table string
			ended bool
		)
		defer func() {
			if stmt != nil {
				stmt.Close()
			}
		}()
		for sc.Scan() {
			var l backupLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return fmt.Errorf("restore: corrupt line: %w", err)
			}
			switch {
			case l.End:
				if l.Rows != st.Rows || l.Tables != st.Tables {
					return fmt.Errorf("restore: trailer says %d tables/%d rows, read %d/%d", l.Tables, l.Rows, st.Tables, st.Rows)
				}
				ended = true
			case l.Table != "":
				if !known[l.Table] {
					return fmt.Errorf("restore: backup has unknown table %q", l.Table)
				}
				if stmt != nil {
					stmt.Close()
				}
				table = l.Table
				types, err = columnTypes(ctx, tx, table, l.Columns)
				if err != nil {
					return err
				}
				qcols := make([]string, len(l.Columns))
				marks := make([]string, len(l.Columns))
				for i, c := range l.Columns {
					qcols[i], marks[i] = quoteIdent(c), "?"
				}
				stmt, err = tx.PrepareContext(ctx, db.q(`INSERT INTO `+quoteIdent(table)+` (`+strings.Join(qcols, ", ")+`) VALUES (`+strings.Join(marks, ", ")+`)`))
				if err != nil {
					return fmt.Errorf("restore: %s: %w", table, err)
				}
				st.Tables++
			case l.Row != nil:
				if stmt == nil || len(l.Row) != len(types) {
					return errors.New("restore: corrupt backup: row outside a table or with the wrong width")
				}
				args := make([]any, len(l.Row))
				for i, c := range l.Row {
					if args[i], err = decodeCell(c, types[i]); err != nil {
						return fmt.Errorf("restore: %s: %w", table, err)
					}
				}
				if _, err := stmt.ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("restore: %s: %w", table, err)
				}
				st.Rows++
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("restore: read: %w", err)
		}
		if !ended {
			return errors.New("restore: the backup is truncated (no trailer); nothing was restored")
		}
		return nil
	})
	if err != nil {
		return BackupStats{}, err
	}
	return st, nil
}

func columnTypes(ctx context.Context, tx *sql.Tx, table string, cols []string) ([]string, error) {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	rows, err := tx.QueryContext(ctx, `SELECT `+strings.Join(q, ", ")+` FROM `+quoteIdent(table)+` WHERE 1 = 0`)
	if err != nil {
		return nil, fmt.Errorf("restore: %s: columns do not match this schema: %w", table, err)
	}
	defer rows.Close()
	cts, err := rows.ColumnTypes()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(cts))
	for i, ct := range cts {
		out[i] = ct.DatabaseTypeName()
	}
	return out, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
