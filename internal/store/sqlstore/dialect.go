package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
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
	// isStorageFault reports a failure to write to storage (disk full, I/O
	// error): the database answers, but writes do not persist.
	isStorageFault func(error) bool
	// isCorrupt reports that the database file or a page of it is damaged.
	isCorrupt func(error) bool
	// lock serialises migrations across processes; it returns the unlock func.
	lock func(ctx context.Context, db *sql.DB) (func(), error)
}

// sqliteCode is the primary result code of a SQLite error, 0 for other
// errors.
func sqliteCode(err error) int {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() & 0xff
	}
	return 0
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
		switch sqliteCode(err) {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_READONLY, sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return true
		}
		return false
	},
	isStorageFault: func(err error) bool {
		// READONLY included: a file system remounted read-only after I/O
		// errors refuses writes just as a full one does.
		switch sqliteCode(err) {
		case sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
			return true
		}
		return false
	},
	isCorrupt: func(err error) bool {
		c := sqliteCode(err)
		return c == sqlite3.SQLITE_CORRUPT || c == sqlite3.SQLITE_NOTADB
	},
	// SQLite migrations run in an IMMEDIATE transaction, which already
	// excludes other writers.
	lock: func(context.Context, *sql.DB) (func(), error) { return func() {}, nil },
}

// pgUnavailableCodes are the SQLSTATEs (besides class 08, connection
// exception) after which a retry may succeed: the server is shutting down,
// restarting or refusing connections, a statement or idle transaction ran
// past its timeout, or the server ran out of a resource.
var pgUnavailableCodes = map[string]bool{
	"57P01": true, // admin_shutdown
	"57P02": true, // crash_shutdown
	"57P03": true, // cannot_connect_now (starting up, recovering)
	"57P05": true, // idle_session_timeout
	"57014": true, // query_canceled (statement_timeout)
	"25P03": true, // idle_in_transaction_session_timeout
	"53000": true, // insufficient_resources
	"53100": true, // disk_full
	"53200": true, // out_of_memory
	"53300": true, // too_many_connections
	"58030": true, // io_error
	"XX001": true, // data_corrupted
	"XX002": true, // index_corrupted
}

// connectionLost are the errors, wherever they are wrapped, that mean the
// connection to the database failed or was cut: the server went away
// (EOF mid-message, reset, refused), the driver had already closed the
// connection, or database/sql found it bad.
var connectionLost = []error{
	io.EOF, io.ErrUnexpectedEOF, net.ErrClosed, os.ErrDeadlineExceeded,
	syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
	syscall.ETIMEDOUT, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
	driver.ErrBadConn, sql.ErrConnDone, pgconn.ErrConnClosed,
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
			return strings.HasPrefix(pe.Code, "08") || pgUnavailableCodes[pe.Code]
		}
		for _, target := range connectionLost {
			if errors.Is(err, target) {
				return true
			}
		}
		var (
			ne net.Error
			ce *pgconn.ConnectError
		)
		return errors.As(err, &ce) || errors.As(err, &ne) || pgconn.SafeToRetry(err) || pgconn.Timeout(err)
	},
	isStorageFault: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && (pe.Code == "53100" || pe.Code == "58030")
	},
	isCorrupt: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && (pe.Code == "XX001" || pe.Code == "XX002")
	},
	// A session advisory lock, taken by polling: a blocking pg_advisory_lock
	// would run into the statement timeout while another replica migrates.
	lock: func(ctx context.Context, db *sql.DB) (func(), error) {
		conn, err := db.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("migration lock: %w", err)
		}
		// An arbitrary constant: "credvault" in ASCII, truncated to int64.
		const key = 0x6372656476617531
		for {
			var got bool
			if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", int64(key)).Scan(&got); err != nil {
				conn.Close()
				return nil, fmt.Errorf("migration lock: %w", err)
			}
			if got {
				break
			}
			t := time.NewTimer(50 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				conn.Close()
				return nil, fmt.Errorf("migration lock: %w", ctx.Err())
			case <-t.C:
			}
		}
		return func() {
			uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = conn.ExecContext(uctx, "SELECT pg_advisory_unlock($1)", int64(key))
			conn.Close()
		}, nil
	},
}

func openSQLite(ctx context.Context, path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite: create directory: %w", err)
		}
	}
	// Only a missing file becomes a new database. A file that exists but is
	// empty was a database once (or is something else): initialising it
	// would silently turn a damaged vault into a new, empty one.
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if err := createSQLite(path); err != nil {
			return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
		}
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
		return nil, fmt.Errorf("sqlite: %s exists but is empty (0 bytes), so it is not a credvault database; it was left untouched: "+
			"restore the latest backup with `credvault restore`, or remove the file to start a new, empty vault: %w", path, ErrCorrupt)
	}
	// The busy wait (another process holding the write lock: a backup, a
	// restore, an admin command) is bounded below the call deadline.
	busy := 10 * time.Second
	if opts.Timeout > 0 {
		busy = min(busy, max(opts.Timeout/2, 100*time.Millisecond))
	}
	// WAL with synchronous=FULL: a commit returns only after the WAL is
	// fsynced, so every acknowledged write survives a crash or power loss.
	base := "file:" + path + fmt.Sprintf("?_pragma=busy_timeout(%d)", busy.Milliseconds()) + "&_pragma=synchronous(FULL)&_pragma=foreign_keys(ON)"
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
		if sqliteDialect.isCorrupt(err) {
			w.Close()
			return nil, corruptError(path, err.Error())
		}
		if !sqliteDialect.isUnavailable(err) || time.Now().After(deadline) {
			w.Close()
			return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Create the file with owner-only permissions before readers attach.
	_ = os.Chmod(path, 0o600)
	checkLater := ""
	if opts.QuickCheck {
		inline := opts.QuickCheckInline
		if inline <= 0 {
			inline = 64 << 20
		}
		if fi, err := os.Stat(path); err == nil && fi.Size() > inline {
			checkLater = path
		} else if err := quickCheck(ctx, w, path); err != nil {
			w.Close()
			return nil, err
		}
	}
	r, err := sql.Open("sqlite", base+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0)*2)
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	r.SetConnMaxLifetime(0)
	return &DB{w: w, r: r, d: sqliteDialect, log: opts.logger(), checkLater: checkLater}, nil
}

// sqliteAppID is credvault's SQLite application_id ("crdv"), written into
// the header of the databases it creates.
const sqliteAppID = 0x63726476

// createSQLite creates a new database file at path, which does not exist:
// built under a temporary name and linked into place, so that path never
// names an empty file of ours, even while several processes create it at
// once (the first link wins; the others find its file). An empty file at
// path is therefore never one credvault is creating, and is refused.
func createSQLite(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".new-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	tmp.Close()
	defer os.Remove(name)
	if err := os.Chmod(name, 0o600); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+name+"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return err
	}
	_, err = db.Exec(fmt.Sprintf("PRAGMA application_id = %d", sqliteAppID))
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(name, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// quickCheck runs PRAGMA quick_check, which reads every page of the file
// and checks the structure of every table and index (but not that indexes
// match their tables): a damaged page is found at start rather than by the
// first request that reads it.
func quickCheck(ctx context.Context, w *sql.DB, path string) error {
	rows, err := w.QueryContext(ctx, "PRAGMA quick_check(20)")
	if err != nil {
		if sqliteDialect.isCorrupt(err) {
			return corruptError(path, err.Error())
		}
		return fmt.Errorf("sqlite: quick_check %s: %w", path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return fmt.Errorf("sqlite: quick_check %s: %w", path, err)
		}
		if line != "ok" {
			problems = append(problems, line)
		}
	}
	if err := rows.Err(); err != nil {
		if sqliteDialect.isCorrupt(err) {
			return corruptError(path, err.Error())
		}
		return fmt.Errorf("sqlite: quick_check %s: %w", path, err)
	}
	if len(problems) > 0 {
		return corruptError(path, strings.Join(problems, "; "))
	}
	return nil
}

func corruptError(path, detail string) error {
	// quick_check's report can run to many lines: keep the first few.
	detail = strings.Join(strings.Fields(strings.ReplaceAll(detail, "*** in database main ***", "")), " ")
	if len(detail) > 200 {
		detail = detail[:200] + " …"
	}
	return fmt.Errorf("sqlite: %s is damaged (%s); credvault will not write to it: "+
		"keep the file for analysis, and restore the latest backup with `credvault restore` into a new database: %w", path, detail, ErrCorrupt)
}

func openPostgres(ctx context.Context, dsn string, opts Options) (*DB, error) {
	// Parse first, so that a malformed URL is reported as such rather than
	// as a failed connection. pgconn redacts the password in its message.
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: invalid database URL: %s", pgErrText(err))
	}
	if opts.Timeout > 0 {
		// The client gives up on a call at the deadline; the server is told
		// the same, so that it does not go on working for a client that has
		// left (or hold locks for an abandoned transaction). Settings given
		// in the URL win.
		if cfg.ConnectTimeout == 0 {
			cfg.ConnectTimeout = opts.Timeout
		}
		ms := strconv.FormatInt(max(opts.Timeout.Milliseconds(), 1), 10)
		for _, p := range []string{"statement_timeout", "idle_in_transaction_session_timeout"} {
			if _, set := cfg.RuntimeParams[p]; !set {
				cfg.RuntimeParams[p] = ms
			}
		}
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(max(8, runtime.GOMAXPROCS(0)*4))
	db.SetMaxIdleConns(max(8, runtime.GOMAXPROCS(0)*4))
	// A connection keeps the statements prepared on it (DB.prepared). If a
	// newer replica's migration changes the type of a column they select,
	// they fail until the connection goes; a bounded lifetime bounds that,
	// and spreads connections again after a failover.
	db.SetConnMaxLifetime(30 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: cannot connect to %s: %s", redactDSN(dsn), pgErrText(err))
	}
	return &DB{w: db, r: db, d: postgresDialect, log: opts.logger(), pgcfg: cfg}, nil
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

// bytewise returns the collation suffix that compares and orders text
// byte by byte, as Go does (PostgreSQL's database collation may not;
// SQLite's default BINARY does).
func (d *dialect) bytewise() string {
	if d.name == Postgres {
		return ` COLLATE "C"`
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
