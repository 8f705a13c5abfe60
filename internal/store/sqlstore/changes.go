package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The authentication change counter.
//
// Migration 0010 installs triggers that bump auth_changes.n in the same
// transaction as every write that can change what an authentication lookup
// returns: principals, memberships, accounts, DSM apps and sessions, and an
// API key's hash, principal, expiry or revocation. Because triggers do it,
// every writer bumps it — this server, another replica, the admin CLI on
// the same SQLite file, and write paths added later — without calling
// anything.
//
// A server reads the counter
//   - inside each of its own write transactions (db.tx), just before the
//     commit, and publishes it when the commit succeeds: a change made
//     through this process is visible to AuthGeneration before the write
//     call returns, so before the API answers 200;
//   - every ChangePollInterval from a background poller, which is how
//     changes made by other processes (replicas, the CLI) arrive.
//
// AuthGeneration reports the counter only while the last successful poll
// started less than RevocationBound-ChangePollInterval ago; otherwise
// (database unreachable, poller stuck) callers must not use cached answers.
// So a change committed at T is honoured by every replica from
// T+RevocationBound on at the latest.

// RevocationBound is the longest time a change to authentication state
// (a revoked or expired key, a removed membership, a deleted principal, a
// disabled app, an ended session) made by another process can take to
// reach a server's authentication cache. On the server that made it, it
// takes effect before the request that made it returns.
const RevocationBound = time.Second

// ChangePollInterval is how often a server reads the change counter.
const ChangePollInterval = RevocationBound / 5

const authChangesTable = "auth_changes"

const readChangesSQL = `SELECT n FROM auth_changes WHERE id = 1`

type changeWatch struct {
	active atomic.Bool
	gen    atomic.Uint64
	fresh  atomic.Int64 // start of the last successful poll, ns since base
	base   time.Time
	stmt   *sql.Stmt // readChangesSQL on the write pool, for db.tx

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// forEngine reports whether migration m applies to engine: a file named
// NNNN_name.sqlite.sql or NNNN_name.postgres.sql applies to that engine
// only (the two files then share a version number).
func (m migration) forEngine(engine string) bool {
	for _, e := range []string{SQLite, Postgres} {
		if strings.HasSuffix(m.name, "."+e+".sql") {
			return e == engine
		}
	}
	return true
}

// watchChanges starts the poller (servers; called by OpenWith after the
// migrations). Stores opened otherwise never report a generation, so
// nothing is cached on their behalf.
func (db *DB) watchChanges() {
	ctx := context.Background()
	w := &db.changes
	w.base = time.Now()
	stmt, err := db.w.PrepareContext(ctx, db.q(readChangesSQL))
	if err != nil {
		db.log.Warn("authentication cache disabled: cannot read the change counter", "err", err)
		return
	}
	w.stmt = stmt
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	db.pollChanges(ctx)
	w.active.Store(true)
	go func() {
		defer close(w.done)
		t := time.NewTicker(ChangePollInterval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C:
				db.pollChanges(ctx)
			}
		}
	}()
}

// pollChanges reads the counter on the read pool (a new snapshot: it sees
// every commit made before it started).
func (db *DB) pollChanges(ctx context.Context) {
	start := time.Since(db.changes.base)
	ctx, cancel := context.WithTimeout(ctx, RevocationBound)
	defer cancel()
	var n int64
	if err := db.r.QueryRowContext(ctx, db.q(readChangesSQL)).Scan(&n); err != nil {
		return // AuthGeneration goes stale by itself
	}
	db.changes.saw(uint64(n))
	db.changes.fresh.Store(int64(start))
}

func (w *changeWatch) stopWatching() {
	if w.stop == nil {
		return
	}
	w.once.Do(func() { close(w.stop); <-w.done; w.stmt.Close() })
	w.active.Store(false)
}

// saw raises the published generation to n (never lowers it: a poll that
// started before a local commit may finish after it).
func (w *changeWatch) saw(n uint64) {
	for {
		cur := w.gen.Load()
		if n <= cur || w.gen.CompareAndSwap(cur, n) {
			return
		}
	}
}

// AuthGeneration returns the authentication change counter as this server
// last saw it, and false if answers cached under it must not be used (no
// poller, or no successful poll within the bound). Implements the optional
// generation source of vault's authentication cache.
func (db *DB) AuthGeneration() (uint64, bool) {
	w := &db.changes
	if !w.active.Load() {
		return 0, false
	}
	if time.Since(w.base)-time.Duration(w.fresh.Load()) > RevocationBound-ChangePollInterval {
		return 0, false
	}
	return w.gen.Load(), true
}

type skipChangesKey struct{}

// withoutChanges marks a context whose transactions cannot touch
// authentication state (audit appends), so db.tx skips reading the counter.
func withoutChanges(ctx context.Context) context.Context {
	return context.WithValue(ctx, skipChangesKey{}, true)
}

// readChanges reads the counter inside tx, before its commit.
func (db *DB) readChanges(ctx context.Context, tx *sql.Tx) (uint64, bool) {
	if !db.changes.active.Load() || ctx.Value(skipChangesKey{}) != nil {
		return 0, false
	}
	var n int64
	if err := tx.StmtContext(ctx, db.changes.stmt).QueryRowContext(ctx).Scan(&n); err != nil {
		return 0, false
	}
	return uint64(n), true
}

// changed publishes the counter after a write made outside db.tx that can
// change authentication state, so that it takes effect here at once.
func (db *DB) changed(ctx context.Context) {
	if db.changes.active.Load() {
		db.pollChanges(ctx)
	}
}
