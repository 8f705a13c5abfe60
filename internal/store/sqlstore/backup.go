package sqlstore

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// Backups are logical: every table, in creation order, read in one
// read-only snapshot transaction while the server keeps serving, written as
// gzip-compressed JSON lines. They hold exactly what the database holds —
// ciphertext and metadata, never plaintext — so they are useless without the
// master key, and restoring one needs the same master key. Because the
// format is engine-neutral, a SQLite backup restores into PostgreSQL and
// back.
//
//	{"format":"credvault-backup","version":2,"engine":"sqlite","schema_version":2,"created_at":"…",
//	 "mac":"hmac-sha256","mac_key_id":123,"key_check":"<base64>"}
//	{"table":"accounts","columns":["id","name","created_at"]}
//	{"r":["…","default",1763790000000000]}
//	…
//	{"end":true,"tables":9,"rows":1234,"mac":"<hex>"}
//
// Byte values are {"b64":"…"}. The backup is authenticated: the trailer's
// mac is HMAC-SHA256, under a key derived from the master key (the header
// names which master key), over every byte of the uncompressed stream before
// the trailer and then "end <tables> <rows>". An edited, reordered,
// truncated or extended backup is therefore refused, and so is one made
// under another master key; key_check (the database's master-key check
// value) lets a restore tell "wrong master key" from "tampered" before it
// reads on. Expired tombstones are left out (see TombstoneTTL).

const (
	backupFormat  = "credvault-backup"
	backupVersion = 2
	backupMACAlg  = "hmac-sha256"
)

// The backup types are the store package's (see store.Backupper).
type (
	BackupStats   = store.BackupStats
	BackupHeader  = store.BackupHeader
	BackupOptions = store.BackupOptions
	BackupKeyFunc = store.BackupKeyFunc
)

// ErrBackupMAC is returned when a backup's MAC does not verify.
var ErrBackupMAC = errors.New("the backup failed its integrity check (its MAC does not verify): it was changed after it was made, or it was made under another master key; nothing was restored")

type backupLine struct {
	Table   string            `json:"table,omitempty"`
	Columns []string          `json:"columns,omitempty"`
	Row     []json.RawMessage `json:"r,omitempty"`
	End     bool              `json:"end,omitempty"`
	Tables  int               `json:"tables,omitempty"`
	Rows    int64             `json:"rows,omitempty"`
	MAC     string            `json:"mac,omitempty"`
}

// trailerMACInput is what the MAC covers after the body: the counts the
// trailer states.
func trailerMACInput(tables int, rows int64) []byte {
	return fmt.Appendf(nil, "end %d %d", tables, rows)
}

// tables lists the application tables in creation order (so that a table
// comes after the tables it references).
func (db *DB) tables(ctx context.Context, q querier) ([]string, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid`
	if db.d.name == Postgres {
		query = `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY c.oid`
	}
	var out []string
	err := forRows(ctx, q, query, nil, func(row scanner) error {
		var name string
		if err := row.Scan(&name); err != nil {
			return err
		}
		if name != "schema_migrations" && name != changeCountersTable {
			out = append(out, name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (db *DB) schemaVersion(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (int, error) {
	var v int
	err := q.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// Backup writes a consistent, authenticated snapshot of the whole database
// to w. Expired tombstones are left out.
func (db *DB) Backup(ctx context.Context, w io.Writer, opts BackupOptions) (BackupStats, error) {
	var st BackupStats
	if len(opts.MACKey) < 16 {
		return st, errors.New("backup: no MAC key")
	}
	readOpts := &sql.TxOptions{ReadOnly: true}
	if db.d.name == Postgres {
		readOpts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.r.BeginTx(ctx, readOpts)
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
	var keyCheck []byte
	err = tx.QueryRowContext(ctx, db.q(`SELECT value FROM meta WHERE key = ?`), vault.MasterKeyCheckMeta).Scan(&keyCheck)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, db.translate(fmt.Errorf("backup: key check: %w", err))
	}
	var rootKey string
	var masterKeyset []byte
	err = tx.QueryRowContext(ctx, `SELECT root_key, keyset FROM master_keyset WHERE id = 1`).Scan(&rootKey, &masterKeyset)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return st, db.translate(fmt.Errorf("backup: master keyset: %w", err))
	}
	zw := gzip.NewWriter(w)
	mac := hmac.New(sha256.New, opts.MACKey)
	enc := json.NewEncoder(io.MultiWriter(zw, mac))
	hdr := BackupHeader{
		Format: backupFormat, Version: backupVersion, Engine: db.d.name, SchemaVersion: ver,
		CreatedAt: db.now().UTC().Format(time.RFC3339),
		MAC:       backupMACAlg, MACKeyID: opts.MACKeyID, KeyCheck: keyCheck,
		RootKey: rootKey, MasterKeyset: masterKeyset,
	}
	if err := enc.Encode(hdr); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	horizon := db.tombstoneHorizon()
	for _, t := range tables {
		n, err := db.backupTable(ctx, tx, enc, t, horizon)
		if err != nil {
			return st, err
		}
		st.Tables++
		st.Rows += n
	}
	mac.Write(trailerMACInput(st.Tables, st.Rows))
	trailer := backupLine{End: true, Tables: st.Tables, Rows: st.Rows, MAC: hex.EncodeToString(mac.Sum(nil))}
	if err := json.NewEncoder(zw).Encode(trailer); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	if err := zw.Close(); err != nil {
		return st, fmt.Errorf("backup: %w", err)
	}
	return st, nil
}

func (db *DB) backupTable(ctx context.Context, tx *sql.Tx, enc *json.Encoder, table string, tombstoneHorizon int64) (int64, error) {
	query, args := `SELECT * FROM `+quoteIdent(table), []any(nil)
	if table == "credential_tombstones" {
		query, args = db.q(query+` WHERE deleted_at >= ?`), []any{tombstoneHorizon}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
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

// backupReader reads a backup line by line, checking its structure and
// computing its MAC as it goes; the trailer is verified when it is reached.
type backupReader struct {
	sc    *bufio.Scanner
	hdr   BackupHeader
	mac   hash.Hash
	st    BackupStats
	cols  int // width of the current table, 0 before the first table
	ended bool
}

// openBackup reads the header of a backup and gets its MAC key from key.
// Nothing is written.
func openBackup(r io.Reader, key BackupKeyFunc) (*backupReader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("restore: not a credvault backup: %w", err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("restore: read: %w", err)
		}
		return nil, errors.New("restore: empty backup")
	}
	var hdr BackupHeader
	if err := json.Unmarshal(sc.Bytes(), &hdr); err != nil || hdr.Format != backupFormat {
		return nil, errors.New("restore: not a credvault backup")
	}
	if hdr.Version != backupVersion || hdr.MAC != backupMACAlg {
		return nil, fmt.Errorf("restore: backup format version %d is not supported (this binary reads version %d, which is authenticated); take a new backup with this version", hdr.Version, backupVersion)
	}
	k, err := key(hdr)
	if err != nil {
		return nil, err
	}
	if len(k) < 16 {
		return nil, errors.New("restore: no MAC key")
	}
	br := &backupReader{sc: sc, hdr: hdr, mac: hmac.New(sha256.New, k)}
	br.hash(sc.Bytes())
	return br, nil
}

func (br *backupReader) hash(line []byte) {
	br.mac.Write(line)
	br.mac.Write([]byte{'\n'})
}

// next returns the next table or row line; io.EOF after a verified trailer.
func (br *backupReader) next() (*backupLine, error) {
	if !br.sc.Scan() {
		if err := br.sc.Err(); err != nil {
			return nil, fmt.Errorf("restore: read: %w", err)
		}
		if !br.ended {
			return nil, errors.New("restore: the backup is truncated (no trailer); nothing was restored")
		}
		return nil, io.EOF
	}
	if br.ended {
		return nil, errors.New("restore: corrupt backup: data after the trailer; nothing was restored")
	}
	raw := br.sc.Bytes()
	var l backupLine
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("restore: corrupt line: %w", err)
	}
	switch {
	case l.End:
		br.mac.Write(trailerMACInput(l.Tables, l.Rows))
		want, err := hex.DecodeString(l.MAC)
		if err != nil || !hmac.Equal(want, br.mac.Sum(nil)) {
			return nil, ErrBackupMAC
		}
		if l.Rows != br.st.Rows || l.Tables != br.st.Tables {
			return nil, fmt.Errorf("restore: trailer says %d tables/%d rows, read %d/%d", l.Tables, l.Rows, br.st.Tables, br.st.Rows)
		}
		br.ended = true
		return br.next()
	case l.Table != "":
		if len(l.Columns) == 0 {
			return nil, fmt.Errorf("restore: corrupt backup: table %q without columns", l.Table)
		}
		br.cols = len(l.Columns)
		br.st.Tables++
	case l.Row != nil:
		if br.cols == 0 || len(l.Row) != br.cols {
			return nil, errors.New("restore: corrupt backup: row outside a table or with the wrong width")
		}
		br.st.Rows++
	default:
		return nil, errors.New("restore: corrupt backup: unknown line")
	}
	br.hash(raw)
	return &l, nil
}

// VerifyBackup reads a whole backup and checks its structure, its key (via
// key) and its MAC, writing nothing. A restore that can read its input
// twice runs it first, so that a tampered backup is refused before a
// database is even opened.
func VerifyBackup(r io.Reader, key BackupKeyFunc) (BackupHeader, BackupStats, error) {
	br, err := openBackup(r, key)
	if err != nil {
		return BackupHeader{}, BackupStats{}, err
	}
	for {
		if _, err := br.next(); err == io.EOF {
			return br.hdr, br.st, nil
		} else if err != nil {
			return br.hdr, BackupStats{}, err
		}
	}
}

// Restore loads a backup into this database, which must be empty (migrated,
// never served). The backup's key and MAC are checked (see BackupKeyFunc)
// and everything is written in one transaction that commits only after the
// trailer's MAC has verified: a failed, tampered or truncated restore leaves
// the database empty.
func (db *DB) Restore(ctx context.Context, r io.Reader, key BackupKeyFunc) (BackupStats, error) {
	br, err := openBackup(r, key)
	if err != nil {
		return BackupStats{}, err
	}
	myVer, err := db.schemaVersion(ctx, db.w)
	if err != nil {
		return BackupStats{}, db.translate(fmt.Errorf("restore: %w", err))
	}
	if br.hdr.SchemaVersion != myVer {
		return BackupStats{}, fmt.Errorf("restore: backup has schema version %d, this binary %d; use the credvault version that made it", br.hdr.SchemaVersion, myVer)
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
		)
		defer func() {
			if stmt != nil {
				stmt.Close()
			}
		}()
		for {
			l, err := br.next()
			if err == io.EOF {
				return nil // the trailer verified: commit
			}
			if err != nil {
				return err
			}
			switch {
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
			case l.Row != nil:
				args := make([]any, len(l.Row))
				for i, c := range l.Row {
					if args[i], err = decodeCell(c, types[i]); err != nil {
						return fmt.Errorf("restore: %s: %w", table, err)
					}
				}
				if _, err := stmt.ExecContext(ctx, args...); err != nil {
					return fmt.Errorf("restore: %s: %w", table, err)
				}
			}
		}
	})
	if err != nil {
		return BackupStats{}, err
	}
	return br.st, nil
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
