package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/credvault/credvault/internal/vault"
)

// Group commit of SQLite writes (issue 13).
//
// SQLite has one writer, and with synchronous=FULL every commit waits for
// an fsync of the WAL. Run one transaction per request, concurrent writers
// queue for the write connection and each pays its own fsync. Instead,
// write requests queue here, and one of them — the leader — takes every
// request queued so far (at most maxWriteBatch), opens one transaction,
// runs each request inside a savepoint of its own, and commits once:
//
//	BEGIN IMMEDIATE
//	SAVEPOINT w; fn₁, events₁, audit₁; RELEASE w
//	SAVEPOINT w; fn₂ fails;             ROLLBACK TO w; RELEASE w   → request 2 gets its own error
//	SAVEPOINT w; fn₃, events₃, audit₃; RELEASE w
//	read the change counters; COMMIT                               → requests 1 and 3 succeed
//
// A request is acknowledged only after the COMMIT that holds it returned;
// if the COMMIT fails, every request that was to be committed by it gets
// that error, and none of them is stored. Each request's audit record is
// chained inside its savepoint, after the head row as the previous
// requests left it, so a request rolled back to its savepoint takes its
// records and its move of the head row with it: the chain stays gapless,
// and nothing about the head is kept outside the database.
//
// A lone request is not delayed: the first request finds no leader and
// runs at once, alone (without savepoints, as before group commit). While
// a batch commits, new requests queue; when it is done, its leader hands
// the lead to the first of them and returns, so no request serves more
// than one batch. A request whose context ends while it waits is not run.
//
// PostgreSQL has concurrent writers and keeps one transaction per request.

// maxWriteBatch bounds the requests committed in one transaction.
const maxWriteBatch = 128

// writeReq is one db.tx call.
type writeReq struct {
	ctx   context.Context
	fn    func(tx *sql.Tx) error
	ta    *vault.TxAudit
	te    *vault.TxEvents
	st    auditStatements
	count bool // read the change counters before the commit

	deliveries int           // webhook deliveries its events wrote (leader-private)
	eventsLeft []vault.Event // its events, not written: no webhook existed (leader-private)
	finished   bool          // its outcome was delivered (leader-private)
	done       chan error    // its outcome (buffered)
	lead       chan struct{}
	// leader is set (under writeBatcher.mu) when the request is made the
	// next leader: it must lead even if its context ended meanwhile.
	leader bool
}

// writeBatcher queues the write requests of a SQLite store.
type writeBatcher struct {
	mu      sync.Mutex
	queue   []*writeReq
	leading bool // a leader is running; false ⇒ queue is empty

	observe func(n int) // Options.OnWriteBatch
}

// QueuedWrites returns the number of write requests waiting for a
// transaction (SQLite; for metrics).
func (db *DB) QueuedWrites() int {
	db.batch.mu.Lock()
	defer db.batch.mu.Unlock()
	return len(db.batch.queue)
}

// panicked carries a panic of a request's fn to its own goroutine.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprintf("panic: %v", p.v) }

// outcome returns r's result, re-raising a panic of its fn.
func (r *writeReq) outcome(err error) error {
	if p, ok := err.(panicked); ok {
		panic(p.v)
	}
	return err
}

// batchedTx queues r and waits for its outcome, leading a batch when its
// turn comes.
func (db *DB) batchedTx(r *writeReq) error {
	b := &db.batch
	r.done, r.lead = make(chan error, 1), make(chan struct{}, 1)
	b.mu.Lock()
	b.queue = append(b.queue, r)
	lead := !b.leading
	b.leading = true
	b.mu.Unlock()
	if !lead {
		select {
		case err := <-r.done:
			return r.outcome(err)
		case <-r.lead:
		case <-r.ctx.Done():
			b.mu.Lock()
			if i := slices.Index(b.queue, r); i >= 0 && !r.leader {
				b.queue = slices.Delete(b.queue, i, i+1)
				b.mu.Unlock()
				return db.translate(fmt.Errorf("begin: %w", r.ctx.Err()))
			}
			b.mu.Unlock()
			// Taken into a batch already (its outcome follows the
			// batch's commit), or made the next leader.
			select {
			case err := <-r.done:
				return r.outcome(err)
			case <-r.lead:
			}
		}
	}
	db.leadBatch()
	return r.outcome(<-r.done)
}

// leadBatch runs one batch from the head of the queue, then hands the lead
// to the first request queued after it, or ends the lead.
func (db *DB) leadBatch() {
	b := &db.batch
	b.mu.Lock()
	n := min(len(b.queue), maxWriteBatch)
	batch := slices.Clone(b.queue[:n])
	b.queue = slices.Delete(b.queue, 0, n)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.queue) == 0 {
			b.leading = false
			return
		}
		next := b.queue[0]
		next.leader = true
		next.lead <- struct{}{}
	}()
	defer func() {
		// Whatever happens to the leader, no request waits forever.
		for _, r := range batch {
			if !r.finished {
				r.finish(&vault.Error{Kind: vault.KindInternal, Msg: "the write was abandoned"})
			}
		}
	}()
	if b.observe != nil {
		b.observe(n)
	}
	for rest := batch; len(rest) > 0; {
		rest = db.runBatch(rest)
	}
}

// finish delivers r's outcome.
func (r *writeReq) finish(err error) {
	r.finished = true
	r.done <- err
}

// runBatch runs the requests of batch in one transaction and delivers
// their outcomes. It returns the requests it did not run because the
// shared transaction was lost to another request's failure (SQLite rolls
// the whole transaction back after an interrupted write, an I/O error or a
// full disk), to be run in a new one.
func (db *DB) runBatch(batch []*writeReq) []*writeReq {
	failAll := func(err error) {
		for _, r := range batch {
			if !r.finished {
				r.finish(err)
			}
		}
	}
	if err := db.refuseWrites(); err != nil {
		failAll(err)
		return nil
	}
	// A lone request's transaction is its own: bound by its context, as
	// without group commit. A shared one must not end with one request's
	// context; each statement is still bound by its request's.
	ctx := batch[0].ctx
	shared := len(batch) > 1
	if shared {
		ctx = context.WithoutCancel(ctx)
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		failAll(db.translate(fmt.Errorf("begin: %w", err)))
		return nil
	}
	defer func() {
		if p := recover(); p != nil { // not a request's fn (apply recovers those)
			_ = tx.Rollback() // give the write connection back
			panic(p)
		}
	}()
	var ok []*writeReq // run, to be committed
	hooks := db.webhooksAtStart(ctx, tx, batch)
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil && shared {
			// Its context ended before its turn: it is not run.
			r.finish(db.translate(fmt.Errorf("begin: %w", err)))
			continue
		}
		if shared {
			if _, err := db.execIn(ctx, tx, "SAVEPOINT w"); err != nil {
				return db.lostBatch(tx, ok, batch[i:], err)
			}
		}
		err := db.apply(r, tx, hooks.none)
		if err == nil {
			ok = append(ok, r)
			if shared {
				if _, err := db.execIn(ctx, tx, "RELEASE w"); err != nil {
					return db.lostBatch(tx, ok, batch[i+1:], err)
				}
			}
			continue
		}
		r.finish(err)
		if !shared {
			_ = tx.Rollback()
			return nil
		}
		if _, rerr := db.execIn(ctx, tx, "ROLLBACK TO w"); rerr != nil {
			return db.lostBatch(tx, ok, batch[i+1:], err)
		}
		if _, rerr := db.execIn(ctx, tx, "RELEASE w"); rerr != nil {
			return db.lostBatch(tx, ok, batch[i+1:], err)
		}
	}
	if len(ok) == 0 {
		_ = tx.Rollback()
		return nil
	}
	if err := db.eventsLeftOut(ctx, tx, ok, hooks); err != nil {
		return db.lostBatch(tx, ok, nil, err)
	}
	var n counters
	counted := false
	if slices.ContainsFunc(ok, func(r *writeReq) bool { return r.count }) {
		cctx := ctx
		if shared {
			cctx = context.Background() // ctx may carry another request's withoutChanges
		}
		n, counted = db.readChanges(cctx, tx)
	}
	if err := tx.Commit(); err != nil {
		failAll(db.translate(fmt.Errorf("commit: %w", err)))
		return nil
	}
	if counted {
		db.changes.saw(n)
	}
	deliveries := 0
	for _, r := range ok {
		if r.ta != nil {
			r.ta.Committed()
		}
		if r.te != nil {
			r.te.Committed()
		}
		deliveries += r.deliveries
		r.finish(nil)
	}
	if deliveries > 0 && db.onDeliveries != nil {
		db.onDeliveries()
	}
	return nil
}

// lostBatch ends a shared transaction that SQLite rolled back (or that can
// no longer be used) after cause: the requests already run in it (ok) fail,
// since their work is gone; rest have not run, and are returned to run in
// a new transaction.
func (db *DB) lostBatch(tx *sql.Tx, ok, rest []*writeReq, cause error) []*writeReq {
	_ = tx.Rollback()
	err := &vault.Error{Kind: vault.KindUnavailable, Msg: "the write was rolled back with another write of its transaction; retry", Err: db.translate(cause)}
	for _, r := range ok {
		r.finish(err)
	}
	return slices.DeleteFunc(slices.Clone(rest), func(r *writeReq) bool { return r.finished })
}

// apply runs r's part of a transaction: its fn, then its events and its
// audit record (last, so that on PostgreSQL the head row's lock is held
// only until the commit). A panic of fn becomes an error (panicked) that
// its caller re-raises.
func (db *DB) apply(r *writeReq, tx *sql.Tx, noWebhooks bool) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicked{p}
		}
	}()
	r.deliveries, r.eventsLeft = 0, nil
	if err := r.fn(tx); err != nil {
		return db.translate(err)
	}
	if r.te != nil {
		evs, err := r.te.Events()
		if err != nil {
			return db.translate(err)
		}
		if noWebhooks {
			r.eventsLeft = evs
		} else if r.deliveries, err = db.writeEvents(r.ctx, tx, evs); err != nil {
			return db.translate(err)
		}
	}
	if r.ta != nil {
		if err := db.appendAudit(r.ctx, tx, r.st, r.ta.Records); err != nil {
			return vault.AuditWriteError(db.translate(err))
		}
	}
	return nil
}

// journalsInMemory keeps the write connection's savepoint and statement
// journals in memory (temp_store = MEMORY). Each request of a shared
// transaction copies the pages it changes into the savepoint journal
// first; on a temporary file that cost a write system call per page (a
// fifth of a create's CPU at c=64). The journals are only for rolling a
// savepoint back; the commit's durability does not depend on them. It is
// set after the migrations, whose index builds keep sorting in temporary
// files rather than in memory.
func (db *DB) journalsInMemory(ctx context.Context) {
	if _, err := db.w.ExecContext(ctx, "PRAGMA temp_store = MEMORY"); err != nil {
		db.log.Warn("sqlite: temp_store = MEMORY not set; savepoint journals go to temporary files", "err", err.Error())
	}
}
