package sqlstore

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Change counters.
//
// Migration 0010 installs triggers that bump a counter row of
// change_counters in the same transaction as every write that can change
// what a cached read returns: row 0 for authentication state (principals,
// memberships, accounts, DSM apps and sessions, an API key's hash,
// principal, expiry or revocation), rows 1-16 for updates and deletions of
// credentials (sharded by the id's last character); rows 17 and 18
// (migration 0019) count webhooks for the outbox (events.go) and are not
// read as counters here. Because triggers do
// it, every writer bumps them — this server, another replica, the admin CLI
// on the same SQLite file, and write paths added later — without calling
// anything. A new column is covered by its table's trigger; a new TABLE
// that LookupAPIKey, LookupSession or GetApp come to read needs its own
// trigger (copy migration 0010's) — TestAuthCache_Revocation is where to
// add its case.
//
// A server reads the counters
//   - inside each of its own write transactions (db.tx), just before the
//     commit, and publishes them when the commit succeeds: a change made
//     through this process is visible to the caches before the write call
//     returns, so before the API answers 200;
//   - every ChangePollInterval from a background poller, which is how
//     changes made by other processes (replicas, the CLI) arrive.
//
// The caches are used only while the last successful poll started less
// than RevocationBound-ChangePollInterval ago; otherwise (database
// unreachable, poller stuck) every read goes to the database. So a change
// committed at T is honoured by every server from T+RevocationBound on at
// the latest.

// RevocationBound is the longest time a change to authentication state
// (a revoked or expired key, a removed membership, a deleted principal, a
// disabled app, an ended session) made by another process can take to
// reach a server's authentication cache. On the server that made it, it
// takes effect before the request that made it returns.
const RevocationBound = time.Second

// ChangePollInterval is how often a server reads the change counter.
const ChangePollInterval = RevocationBound / 5

const changeCountersTable = "change_counters"

// credentialShards is the number of credential counter rows (ids 1..16).
const credentialShards = 16

const readChangesSQL = `SELECT id, n FROM change_counters`

type changeWatch struct {
	active atomic.Bool
	gen    [1 + credentialShards]atomic.Uint64 // [0]: authentication; [1+i]: credential shard i
	fresh  atomic.Int64                        // start of the last successful poll, ns since base
	lost   atomic.Bool                         // PostgreSQL: the LISTEN connection broke since that poll
	lostMu sync.Mutex                          // orders lost's transitions:
	lostAt int64                               // when lost was last set, ns since base
	base   time.Time
	stmt   *sql.Stmt // readChangesSQL on the write pool, for db.tx

	stop chan struct{}
	done chan struct{}
	once sync.Once

	cancelListen context.CancelFunc // PostgreSQL: stops listen
	listening    sync.WaitGroup
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
	if db.pgcfg != nil {
		lctx, cancel := context.WithCancel(ctx)
		w.cancelListen = cancel
		w.listening.Go(func() { db.listen(lctx) })
	}
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
	rows, err := db.r.QueryContext(ctx, readChangesSQL)
	if err != nil {
		return // the caches go stale by themselves
	}
	counts, err := scanCounters(rows)
	if err != nil {
		return
	}
	db.changes.saw(counts)
	db.changes.fresh.Store(int64(start))
	db.changes.found(int64(start))
}

// markLost stops cached answers at once: the LISTEN connection broke, so
// the database may be gone, and changes may go unseen.
func (w *changeWatch) markLost() {
	w.lostMu.Lock()
	defer w.lostMu.Unlock()
	w.lostAt = int64(time.Since(w.base))
	w.lost.Store(true)
}

// found allows cached answers again after a poll that started at start
// (ns since base) succeeded — unless the connection broke after that poll
// began: a poll in flight when the database went away may still succeed,
// and must not switch the caches back on.
func (w *changeWatch) found(start int64) {
	w.lostMu.Lock()
	defer w.lostMu.Unlock()
	if start > w.lostAt {
		w.lost.Store(false)
	}
}

type counters [1 + credentialShards]uint64

func scanCounters(rows *sql.Rows) (counters, error) {
	defer rows.Close()
	var c counters
	for rows.Next() {
		var id, n int64
		if err := rows.Scan(&id, &n); err != nil {
			return c, err
		}
		if id >= 0 && id < int64(len(c)) {
			c[id] = uint64(n)
		}
	}
	return c, rows.Err()
}

// credentialShard is the counter row of credential id (as the trigger
// computes it: 1 + the code point of the id's last character, mod 16).
func credentialShard(id string) int {
	r, _ := utf8.DecodeLastRuneInString(id)
	if id == "" {
		r = 0
	}
	return 1 + int(r)%credentialShards
}

func (w *changeWatch) stopWatching() {
	if w.stop == nil {
		return
	}
	w.once.Do(func() {
		if w.cancelListen != nil {
			w.cancelListen()
			w.listening.Wait()
		}
		close(w.stop)
		<-w.done
		w.stmt.Close()
	})
	w.active.Store(false)
}

// saw raises the published counters to c (never lowers one: a poll that
// started before a local commit may finish after it).
func (w *changeWatch) saw(c counters) {
	for i, n := range c {
		for {
			cur := w.gen[i].Load()
			if n <= cur || w.gen[i].CompareAndSwap(cur, n) {
				break
			}
		}
	}
}

// usable reports whether cached reads may be used now.
func (w *changeWatch) usable() bool {
	return w.active.Load() && !w.lost.Load() && time.Since(w.base)-time.Duration(w.fresh.Load()) <= RevocationBound-ChangePollInterval
}

// AuthGeneration returns the authentication change counter as this server
// last saw it, and false if answers cached under it must not be used (no
// poller, or no successful poll within the bound): vault.AuthGenerations,
// what the core's authentication cache reads under.
func (db *DB) AuthGeneration() (uint64, bool) {
	if !db.changes.usable() {
		return 0, false
	}
	return db.changes.gen[0].Load(), true
}

type skipChangesKey struct{}

// withoutChanges marks a context whose transactions cannot touch
// authentication state (audit appends), so db.tx skips reading the counter.
func withoutChanges(ctx context.Context) context.Context {
	return context.WithValue(ctx, skipChangesKey{}, true)
}

// readChanges reads the counters inside tx, before its commit.
func (db *DB) readChanges(ctx context.Context, tx *sql.Tx) (counters, bool) {
	if !db.changes.active.Load() || ctx.Value(skipChangesKey{}) != nil {
		return counters{}, false
	}
	rows, err := tx.StmtContext(ctx, db.changes.stmt).QueryContext(ctx)
	if err != nil {
		return counters{}, false
	}
	c, err := scanCounters(rows)
	return c, err == nil
}

// changed publishes the counter after a write made outside db.tx that can
// change authentication state, so that it takes effect here at once.
func (db *DB) changed(ctx context.Context) {
	if db.changes.active.Load() {
		db.pollChanges(ctx)
	}
}

// changesChannel is the NOTIFY channel of migration 0010's PostgreSQL
// triggers.
const changesChannel = "credvault_changes"

// listen keeps a connection LISTENing on changesChannel and reads the
// counters as soon as another replica commits a change, so that it usually
// arrives within milliseconds; the poll remains the guarantee (a
// notification can be lost while the connection is being re-established).
func (db *DB) listen(ctx context.Context) {
	for ctx.Err() == nil {
		conn, err := pgx.ConnectConfig(ctx, db.pgcfg.Copy())
		if err == nil {
			if _, err = conn.Exec(ctx, `LISTEN `+changesChannel); err == nil {
				db.pollChanges(ctx) // what changed while not listening
				for err == nil {
					if _, err = conn.WaitForNotification(ctx); err == nil {
						db.pollChanges(ctx)
					}
				}
			}
			if ctx.Err() == nil {
				// The server went away (or restarts): stop answering from
				// the caches at once, so that requests fail as they would
				// without them, until a poll succeeds again.
				db.changes.markLost()
			}
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			conn.Close(cctx)
			cancel()
		}
		select { // the poll covers the gap; retry calmly
		case <-ctx.Done():
		case <-time.After(RevocationBound):
		}
	}
}
