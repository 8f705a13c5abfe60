package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds what differs between engines.
type dialect struct {
	name          string
	dollar        bool // $1 placeholders instead of ?
	blob          string
	isUnique      func(error) bool
	isUnavailable func(error) bool
	// lock serialises migrations across processes; it returns the unlock func.
	lock func(ctx context.Context, db *sql.DB) (func(), error)
}

var sqliteDialect = &dialect{
	name: SQLite,
	blob: "BLOB",
	isUnique: func(err error) bool {
		var se *sqlite.Error
		if errors.As(err, &se) {
			c := se.Code()
			return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
		}
		return false
	},
	isUnavailable: func(err error) bool {
		var se *sqlite.Error
		if errors.As(err, &se) {
			switch se.Code() & 0xff {
			case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN:
				return true
			}
		}
		return false
	},
	// SQLite migrations run in an IMMEDIATE transaction, which already
	// excludes other writers.
	lock: func(context.Context, *sql.DB) (func(), error) { return func() {}, nil },
}

var postgresDialect = &dialect{
	name:   Postgres,
	dollar: true,
	blob:   "BYTEA",
	isUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
	isUnavailable: func(err error) bool {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			// Class 08: connection exception; 57P01..57P03: admin shutdown,
			// crash shutdown, cannot connect now; 53300: too many connections.
			return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P") || pe.Code == "53300"
		}
		var ne net.Error
		var ce *pgconn.ConnectError
		return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) ||
			errors.Is(err, syscall.ECONNRESET) || errors.Is(err, sql.ErrConnDone) || pgconn.SafeToRetry(err) ||
			strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "driver: bad connection")
	},
	lock: func(ctx context.Context, db *sql.DB) (func(), error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		// An arbitrary constant: "credvault" in ASCII, truncated to int64.
		const key = 0x6372656476617531
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", int64(key)); err != nil {
			conn.Close()
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		return func() {
			_, _ = conn.ExecContext(context.Background(), "SELECT pg_advisory_unlock($1)", int64(key))
			conn.Close()
		}, nil
	},
}

func openSQLite(ctx context.Context, path string) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create directory: %w", err)
		}
	}
	// WAL with synchronous=FULL: a commit returns only after the WAL is
	// fsynced, so every acknowledged write survives a crash or power loss.
	base := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)"
	w, err := sql.Open("sqlite", base+"&_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(8000)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// Switching a new file to WAL takes an exclusive lock, and SQLite
	// answers SQLITE_BUSY at once (no busy handler) if another process is
	// doing the same; retry for a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := w.PingContext(ctx)
		if err == nil {
			break
		}
		if !sqliteDialect.isUnavailable(err) || time.Now().After(deadline) {
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Create the file with owner-only permissions before readers attach.
	_ = os.Chmod(path, 0o600)
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	return &DB{w: w, r: r, d: sqliteDialect}, nil
}

func openPostgres(ctx context.Context, dsn string) (*DB, error) {
	// Parse first, so that a malformed URL is reported as such rather than
	// as a failed connection. pgconn redacts the password in its message.
	if _, err := pgconn.ParseConfig(dsn); err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL: %s", pgErrText(err))
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %s: %s", redactDSN(dsn), pgErrText(err))
	}
	db.SetMaxOpenConns(max(8, runtime.GOMAXPROCS(0)*4))
	db.SetMaxIdleConns(max(8, runtime.GOMAXPROCS(0)*4))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: cannot connect to %s: %s", redactDSN(dsn), pgErrText(err))
	}
	return &DB{w: db, r: db, d: postgresDialect}, nil
}

// pgErrText returns a one-line description of a connection error without
// the connection string (pgx errors can include it).
func pgErrText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s, "password") {
		s = s[i+2:]
	}
	// pgx reports one line per connection attempt (every host address, and
	// with sslmode=prefer TLS and then plain), which usually fail alike:
	// keep each distinct line once.
	var parts []string
	seen := map[string]bool{}
	for _, l := range strings.Split(s, "\n") {
		l = strings.Join(strings.Fields(l), " ")
		if l != "" && !seen[l] {
			seen[l] = true
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}

// forUpdate returns the row-locking suffix for a read-modify-write select.
// SQLite needs none: write transactions are IMMEDIATE and exclusive.
func (d *dialect) forUpdate() string {
	if d.name == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// expand turns the portable type names of the migrations into the
// dialect's: BLOB, and SEQ_PK — a 64-bit integer primary key, which on
// SQLite must be spelled INTEGER PRIMARY KEY to be the table's row id (one
// B-tree instead of two).
func (d *dialect) expand(sql string) string {
	seq := "BIGINT PRIMARY KEY"
	if d.name == SQLite {
		seq = "INTEGER PRIMARY KEY"
	}
	return strings.NewReplacer("BLOB", d.blob, "SEQ_PK", seq).Replace(sql)
}
