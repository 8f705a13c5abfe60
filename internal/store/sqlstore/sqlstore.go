// Package sqlstore implements vault.Store on SQL databases: SQLite (the
// embedded default, through modernc.org/sqlite) and PostgreSQL (through
// pgx). Both engines share one schema and one set of queries, written with
// '?' placeholders and rebound per dialect; the few differences (types,
// error codes, locking) live in a dialect value.
//
// SQLite runs in WAL mode with synchronous=FULL, so every acknowledged
// commit is on disk. Writes go through a single connection (SQLite has one
// writer anyway; this avoids busy-retry storms) and reads through a pool;
// concurrent writes share one transaction and one commit (group commit,
// txbatch.go).
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/credvault/credvault/internal/vault"
)

// DB is a vault.Store on a SQL database.
type DB struct {
	w *sql.DB // writes (and reads inside write transactions)
	r *sql.DB // reads
	d *dialect

	rebound sync.Map // query text → dialect text
	stmts   sync.Map // stmtKey → *sql.Stmt
	// Write statements met inside a transaction before they were prepared
	// (query text → struct{}): tx prepares them before its next
	// transaction (txstmt.go).
	unprepared sync.Map
	toPrepare  atomic.Bool  // unprepared may be non-empty
	textWrites atomic.Int64 // write statements run from their text (tests)

	clock func() time.Time // Options.Now; time.Now if unset

	log           *slog.Logger
	damaged       atomic.Pointer[error] // set once corruption is seen: writes are refused
	writeFailedAt atomic.Int64          // Unix ns of a storage failure not yet cleared by a successful write probe
	checkpointing atomic.Bool

	changes changeWatch // change counters (changes.go)
	// Rows read by id, ciphertext only (credcache.go).
	creds    rowCache[vault.Credential]
	dsmCreds rowCache[vault.IntegrationCredential]
	sobjects rowCache[vault.Sobject]
	pgcfg    *pgx.ConnConfig // PostgreSQL: for the change listener (changes.go)

	checkLater string // SQLite: the file whose quick_check runs in the background
	stopCheck  func() // stops that check and waits for it

	batch        writeBatcher // SQLite: group commit (txbatch.go)
	onDeliveries func()       // Options.OnDeliveries
}

var _ vault.Store = (*DB)(nil)

// Engine names.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// EngineOf returns the engine a database URL selects: postgres:// and
// postgresql:// URLs select PostgreSQL, anything else is a SQLite file path
// (optionally prefixed with sqlite://).
func EngineOf(dsn string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		return Postgres
	}
	return SQLite
}

// ErrCorrupt is wrapped by the errors of Open that find the database file
// damaged (or empty), and by those of a store that has seen corruption
// since.
var ErrCorrupt = errors.New("the database is damaged")

// Options tunes Open.
type Options struct {
	// Timeout, if positive, bounds the database's own waits: each connection
	// attempt (PostgreSQL connect_timeout), each statement and each idle
	// moment inside a transaction on the server (statement_timeout,
	// idle_in_transaction_session_timeout), and SQLite's wait for another
	// process's write lock (busy_timeout, half of Timeout). The caller
	// bounds each request's context with the same value. Zero leaves them
	// unbounded, for admin commands that stream whole tables.
	Timeout time.Duration
	// QuickCheck runs SQLite's PRAGMA quick_check, which reads every page:
	// on a file up to QuickCheckInline bytes before anything else touches
	// it, refusing a damaged file (ErrCorrupt); on a larger one in the
	// background once the store is open, so that a large vault restarts in
	// milliseconds — damage found then is handled like damage met at run
	// time (writes refused, readiness failing, an ERROR log).
	QuickCheck bool
	// QuickCheckInline is the file size up to which QuickCheck runs before
	// the store opens; zero means 64 MiB (well under a second here).
	QuickCheckInline int64
	// Logger receives what the operator must act on: corruption seen at run
	// time, writes that fail. Nil discards.
	Logger *slog.Logger
	// OnDeliveries, if set, runs after every commit that wrote webhook
	// deliveries: the webhook worker's wake-up.
	OnDeliveries func()
	// OnWriteBatch, if set, receives the number of writes of every
	// transaction the SQLite group commit runs (for metrics).
	OnWriteBatch func(n int)
	// Now is the clock the store uses for the bookkeeping it does itself
	// (tombstone, trash and delivery times and their expiry, backup times);
	// time.Now if nil. Tests pass a clock they can move instead of sleeping.
	Now func() time.Time
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// Open opens the database at dsn, applies pending migrations and returns
// the store.
func Open(ctx context.Context, dsn string) (*DB, error) {
	return OpenWith(ctx, dsn, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, dsn string, opts Options) (*DB, error) {
	var (
		db  *DB
		err error
	)
	if EngineOf(dsn) == Postgres {
		db, err = openPostgres(ctx, dsn, opts)
	} else {
		db, err = openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite://"), opts)
	}
	if err != nil {
		return nil, err
	}
	db.clock = opts.Now
	db.sobjects.max = sobjectCacheMax
	db.onDeliveries, db.batch.observe = opts.OnDeliveries, opts.OnWriteBatch
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if db.d == sqliteDialect {
		db.dropSQLiteStat4(ctx)
		db.journalsInMemory(ctx)
	}
	db.watchChanges()
	if db.checkLater != "" {
		db.checkInBackground()
	}
	return db, nil
}

// checkInBackground runs the quick_check that opening a large SQLite file
// deferred, on a read connection (writers are not held up), and treats
// damage it finds like damage met by a request. Close stops it.
func (db *DB) checkInBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	db.stopCheck = func() { cancel(); <-done }
	go func() {
		defer close(done)
		start := time.Now()
		err := quickCheck(ctx, db.r, db.checkLater)
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, ErrCorrupt):
			db.markDamaged(err)
		case err != nil:
			db.log.Warn("the background integrity check (quick_check) did not run to the end", "err", err.Error())
		default:
			db.log.Info("integrity check (quick_check) passed", "duration_ms", time.Since(start).Milliseconds())
		}
	}()
}

// Pools returns the connection pools by role, for metrics.
func (db *DB) Pools() map[string]*sql.DB {
	if db.r == db.w {
		return map[string]*sql.DB{"main": db.w}
	}
	return map[string]*sql.DB{"write": db.w, "read": db.r}
}

// Engine returns SQLite or Postgres.
func (db *DB) Engine() string { return db.d.name }

// Close closes the database.
func (db *DB) Close() error {
	if db.stopCheck != nil {
		db.stopCheck()
	}
	db.changes.stopWatching()
	db.stmts.Range(func(_, s any) bool { s.(*sql.Stmt).Close(); return true })
	err := db.w.Close()
	if db.r != db.w {
		err = errors.Join(err, db.r.Close())
	}
	return err
}

// Exclusive runs fn while holding the database-wide start-up lock (the one
// migrations take), so that one-time work done at start-up — bootstrapping
// an empty vault — is done by exactly one of several replicas starting at
// once: the others wait, then find the work done. On PostgreSQL it is a
// session advisory lock on a dedicated connection; fn runs on the pool. On
// SQLite (one process per database file) it is a no-op.
func (db *DB) Exclusive(ctx context.Context, fn func() error) error {
	unlock, err := db.d.lock(ctx, db.w)
	if err != nil {
		return db.translate(err)
	}
	defer unlock()
	return fn()
}

// Ping checks that the database answers and can be written: it fails
// while the store has seen corruption, and after a storage failure (disk
// full, I/O error) until a probe write succeeds again.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.refuseWrites(); err != nil {
		return err
	}
	if err := db.w.PingContext(ctx); err != nil {
		return db.translate(fmt.Errorf("ping: %w", err))
	}
	var one int
	if err := db.r.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return db.translate(fmt.Errorf("ping: %w", err))
	}
	if db.writeFailedAt.Load() != 0 {
		return db.probeWrite(ctx)
	}
	return nil
}

// writeProbeKey is the meta row the write probe rewrites.
const writeProbeKey = "write_probe"

// probeWrite checks that writes succeed again after a storage failure. On
// SQLite it first checkpoints the WAL into the database and truncates it:
// a WAL below its automatic checkpoint size can fill a small volume by
// itself, and only a checkpoint gives that room back. The checkpoint must
// complete (it needs room for the database to grow), which also keeps a
// small probe from passing in WAL space a failed larger write left behind.
// Then it writes one small row; success clears the storage failure.
func (db *DB) probeWrite(ctx context.Context) error {
	if db.d.name == SQLite {
		var busy, frames, done int
		err := db.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done)
		if err == nil && busy != 0 {
			err = fmt.Errorf("checkpoint incomplete: %d of %d WAL frames copied", done, frames)
		}
		if err != nil {
			return &vault.Error{Kind: vault.KindUnavailable, Msg: "writes to the database fail", Err: db.translate(fmt.Errorf("wal checkpoint: %w", err))}
		}
	}
	err := db.tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.q(`INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`),
			writeProbeKey, []byte(strconv.FormatInt(time.Now().UnixMicro(), 10)))
		return err
	})
	if err != nil {
		return &vault.Error{Kind: vault.KindUnavailable, Msg: "writes to the database fail", Err: err}
	}
	if db.writeFailedAt.Swap(0) != 0 {
		db.log.Info("database writes succeed again")
	}
	return nil
}

// noteFault records what err says about the database itself: corruption
// (from then on writes are refused) or a storage failure (readiness fails
// until a write succeeds).
func (db *DB) noteFault(err error) {
	switch {
	case db.d.isCorrupt(err):
		db.markDamaged(fmt.Errorf("%w: %w", ErrCorrupt, err))
	case db.d.isStorageFault(err):
		if db.writeFailedAt.Swap(time.Now().UnixNano()) == 0 {
			db.log.Error("database writes fail (disk full or I/O error): credvault reports not ready until a write succeeds; reads that need no write go on",
				"engine", db.d.name, "err", err.Error())
		}
		if db.d.name == SQLite && db.checkpointing.CompareAndSwap(false, true) {
			// A WAL below its automatic checkpoint size can fill a small
			// volume by itself; truncating it may give the room back.
			go func() {
				defer db.checkpointing.Store(false)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _ = db.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)")
			}()
		}
	}
}

// markDamaged records err (wrapping ErrCorrupt): from then on writes are
// refused and readiness fails.
func (db *DB) markDamaged(err error) {
	if !db.damaged.CompareAndSwap(nil, &err) {
		return
	}
	db.log.Error("THE DATABASE IS DAMAGED: credvault refuses writes and reports not ready. "+
		"Stop credvault, keep the damaged file for analysis, and restore the latest backup (credvault restore) into a new database.",
		"engine", db.d.name, "err", err.Error())
	if db.d.name == SQLite {
		// Make the single write connection read-only too, so that no
		// write path (not only transactions) touches the damaged file.
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _ = db.w.ExecContext(ctx, "PRAGMA query_only = 1")
		}()
	}
}

// refuseWrites returns an Unavailable error once the store has seen
// corruption.
func (db *DB) refuseWrites() error {
	if p := db.damaged.Load(); p != nil {
		return &vault.Error{Kind: vault.KindUnavailable, Msg: "the database is damaged; it must be restored from a backup", Err: *p}
	}
	return nil
}

// q rewrites a query written with '?' placeholders for the dialect.
func (db *DB) q(query string) string {
	if !db.d.dollar {
		return query
	}
	if v, ok := db.rebound.Load(query); ok {
		return v.(string)
	}
	var b strings.Builder
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	db.rebound.Store(query, b.String())
	return b.String()
}

// tx runs fn in a write transaction, committing if it returns nil. If ctx
// carries the audit record of the change (vault.TxAudit), it is appended in
// the same transaction, last (so that the head row's lock is held only
// until the commit): the change commits with its record or not at all; so
// do the change events ctx carries (vault.TxEvents, the outbox). On SQLite
// concurrent calls share one transaction and one commit, each in a
// savepoint of its own (txbatch.go); on PostgreSQL each call is its own
// transaction.
func (db *DB) tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if err := db.refuseWrites(); err != nil {
		return err
	}
	db.prepareWrites(ctx)
	r := &writeReq{ctx: ctx, fn: fn, ta: vault.TxAuditFrom(ctx), te: vault.TxEventsFrom(ctx), count: ctx.Value(skipChangesKey{}) == nil}
	if r.ta != nil {
		var err error
		if r.st, err = db.auditStmts(ctx); err != nil {
			return vault.AuditWriteError(db.translate(fmt.Errorf("audit head: %w", err)))
		}
	}
	if db.d == sqliteDialect {
		return db.batchedTx(r)
	}
	r.done = make(chan error, 1)
	db.runBatch([]*writeReq{r})
	return r.outcome(<-r.done)
}

// write runs one statement as a transaction through tx, so that the audit
// record a context carries is written with it.
func (db *DB) write(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := db.tx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, db.q(query), args...)
		return err
	})
	return res, err
}

// translate maps driver errors to vault errors: no rows → NotFound,
// uniqueness violations → Conflict, connection failures → Unavailable.
func (db *DB) translate(err error) error {
	if err == nil {
		return nil
	}
	db.noteFault(err)
	var ve *vault.Error
	switch {
	case errors.As(err, &ve):
		return err
	case errors.Is(err, sql.ErrNoRows):
		return vault.ErrNotFound
	case db.d.isUnique(err):
		return fmt.Errorf("%w: %w", vault.ErrConflict, err)
	case db.d.isUnavailable(err):
		return &vault.Error{Kind: vault.KindUnavailable, Msg: "the database is unavailable", Err: err}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
		return &vault.Error{Kind: vault.KindUnavailable, Msg: "the database did not answer in time", Err: err}
	}
	return err
}

// Times are stored as Unix microseconds.
func ts(t time.Time) int64 { return t.UnixMicro() }

func fromTS(us int64) time.Time { return time.UnixMicro(us).UTC() }

func tsPtr(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMicro()
}

func fromNullTS(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromTS(n.Int64)
	return &t
}

// redactDSN removes a password from a database URL for messages.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparseable database URL)"
		}
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// stmtKey identifies a prepared statement of one pool.
type stmtKey struct {
	pool  *sql.DB
	query string
}

// prepared returns a statement for query prepared on pool, cached for the
// life of the DB. Only fixed query texts go through it (the hot paths, and
// the single-row lookups of queryOne): SQLite otherwise parses and plans
// every query text on every call, which profiling showed to be the largest
// single cost of a decrypt. The cache is bounded by the number of such
// texts in the code.
func (db *DB) prepared(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	k := stmtKey{pool, query}
	if s, ok := db.stmts.Load(k); ok {
		return s.(*sql.Stmt), nil
	}
	s, err := pool.PrepareContext(ctx, db.q(query))
	if err != nil {
		return nil, err
	}
	if prev, loaded := db.stmts.LoadOrStore(k, s); loaded {
		s.Close()
		return prev.(*sql.Stmt), nil
	}
	return s, nil
}

// errRow is a row that reports err from Scan, so that a failed prepare
// surfaces where the query's error would.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// readRow runs a fixed single-row query on the read pool through a cached
// prepared statement.
func (db *DB) readRow(ctx context.Context, query string, args ...any) interface{ Scan(...any) error } {
	s, err := db.prepared(ctx, db.r, query)
	if err != nil {
		return errRow{err}
	}
	return s.QueryRowContext(ctx, args...)
}

// Analyze refreshes the query planner's statistics. Bulk loads call it at
// the end: right after a large load, PostgreSQL's planner still believes the
// tables are small (autovacuum has not analysed them yet) and may choose a
// full scan and sort over the pagination index for a first page.
func (db *DB) Analyze(ctx context.Context) error {
	if db.d == sqliteDialect {
		return db.analyzeSQLite(ctx)
	}
	if _, err := db.w.ExecContext(ctx, `ANALYZE`); err != nil {
		return db.translate(fmt.Errorf("analyze: %w", err))
	}
	return nil
}
