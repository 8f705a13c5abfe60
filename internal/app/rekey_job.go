package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/server"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

const (
	// rekeyHeartbeat is how often a running rotation proves it is alive.
	rekeyHeartbeat = 10 * time.Second
	// rekeyStaleAfter is how long a running rotation may go without a
	// heartbeat before another server takes it for dead (interrupted).
	rekeyStaleAfter = time.Minute
)

// rekeyJobs runs the admin API's master-key rotations (server.RekeyJobs)
// on the server's own store — not a second connection to the database —
// and keeps each job's state in the database (store.RekeyJobStore), so
// that every replica reports the same job and at most one runs at a time.
//
// Shutdown (App.Close) cancels a running rotation and waits for it to stop;
// the job is then recorded as interrupted, and the next POST /admin/v1/rekey,
// on any replica, resumes it (as `credvault rekey --resume` does) instead of
// adding yet another key. A rotation whose server died without recording
// that is taken for interrupted once its heartbeat is rekeyStaleAfter old.
type rekeyJobs struct {
	db    store.Engine
	keys  func() keyStore // the keyset a rotation changes (a key file, or the database's under the root key)
	kr    *crypto.Keyring
	grace time.Duration
	log   *slog.Logger

	ctx    context.Context // the jobs' context, canceled by stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
}

func newRekeyJobs(db store.Engine, keys func() keyStore, kr *crypto.Keyring, grace time.Duration, log *slog.Logger) *rekeyJobs {
	ctx, cancel := context.WithCancel(context.Background())
	return &rekeyJobs{db: db, keys: keys, kr: kr, grace: grace, log: log, ctx: ctx, cancel: cancel}
}

func rekeyNow() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Start implements server.RekeyJobs.
func (j *rekeyJobs) Start(ctx context.Context, audit func() error) (server.RekeyStatus, error) {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return server.RekeyStatus{}, vault.Errorf(vault.KindUnavailable, "the server is shutting down")
	}
	j.wg.Add(1)
	j.mu.Unlock()
	started := false
	defer func() {
		if !started {
			j.wg.Done()
		}
	}()
	at := rekeyNow()
	staleBefore := at.Add(-rekeyStaleAfter)
	last, err := j.db.LatestRekeyJob(ctx)
	if err != nil && !errors.Is(err, vault.ErrNotFound) {
		return server.RekeyStatus{}, err
	}
	if last != nil && last.State == store.RekeyRunning && !last.UpdatedAt.Before(staleBefore) {
		return server.RekeyStatus{}, vault.Errorf(vault.KindConflict, "a master-key rotation is already running")
	}
	if err := audit(); err != nil {
		return server.RekeyStatus{}, err
	}
	job := &store.RekeyJob{ID: vault.NewID(), StartedAt: at, UpdatedAt: at}
	// A rotation that stopped after adding its key is finished, not
	// started over: another key would only lengthen the keyset.
	if last != nil && last.State != store.RekeyDone && last.NewPrimary != 0 {
		job.Resume, job.NewPrimary = true, last.NewPrimary
	}
	if err := j.db.StartRekeyJob(ctx, job, staleBefore); err != nil {
		return server.RekeyStatus{}, err
	}
	started = true
	go j.run(job)
	return rekeyStatus(job, staleBefore), nil
}

// Status implements server.RekeyJobs.
func (j *rekeyJobs) Status(ctx context.Context) (server.RekeyStatus, error) {
	last, err := j.db.LatestRekeyJob(ctx)
	if errors.Is(err, vault.ErrNotFound) {
		return server.RekeyStatus{Status: "idle"}, nil
	}
	if err != nil {
		return server.RekeyStatus{}, err
	}
	return rekeyStatus(last, rekeyNow().Add(-rekeyStaleAfter)), nil
}

func rekeyStatus(job *store.RekeyJob, staleBefore time.Time) server.RekeyStatus {
	st := server.RekeyStatus{ID: job.ID, Status: job.State, Resume: job.Resume, NewPrimary: job.NewPrimary, Report: job.Report, Error: job.Error,
		Started: job.StartedAt.Format(time.RFC3339)}
	if !job.FinishedAt.IsZero() {
		st.Finished = job.FinishedAt.Format(time.RFC3339)
	}
	if job.State == store.RekeyRunning && job.UpdatedAt.Before(staleBefore) {
		st.Status, st.Error = store.RekeyInterrupted, "the server running it stopped"
	}
	return st
}

// run runs job until it ends or stop cancels it, recording its progress.
func (j *rekeyJobs) run(job *store.RekeyJob) {
	defer j.wg.Done()
	ctx := j.ctx
	var mu sync.Mutex // guards job between run and the heartbeat
	update := func(ctx context.Context, change func()) error {
		mu.Lock()
		defer mu.Unlock()
		change()
		job.UpdatedAt = rekeyNow()
		return j.db.UpdateRekeyJob(ctx, job)
	}
	stopHeartbeat := every(ctx, rekeyHeartbeat, false, func(hbCtx context.Context) {
		if err := update(hbCtx, func() {}); err != nil && hbCtx.Err() == nil {
			j.log.Warn("master-key rotation heartbeat not recorded", "err", err.Error())
		}
	})
	rep, err := rekeyStore(ctx, j.db, j.keys(), RekeyOptions{
		Resume:  job.Resume,
		Grace:   j.grace,
		Keyring: j.kr,
		Log:     func(msg string, args ...any) { j.log.Info(msg, args...) },
		OnKeyAdded: func(ctx context.Context, id uint32) error {
			return update(ctx, func() { job.NewPrimary = id })
		},
	})
	stopHeartbeat()
	// The outcome is recorded even when shutdown canceled the job.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	uerr := update(wctx, func() {
		job.FinishedAt = rekeyNow()
		if rep != nil {
			job.Report, _ = json.Marshal(rep)
		}
		switch {
		case err == nil:
			job.State = store.RekeyDone
		case ctx.Err() != nil:
			job.State, job.Error = store.RekeyInterrupted, "interrupted by a server shutdown; POST /admin/v1/rekey again to finish it"
		default:
			job.State, job.Error = store.RekeyFailed, err.Error()
		}
	})
	switch {
	case err == nil:
		j.log.Info("master-key rotation finished", "job", job.ID)
	case ctx.Err() != nil:
		j.log.Warn("master-key rotation interrupted by shutdown; POST /admin/v1/rekey resumes it", "job", job.ID)
	default:
		j.log.Error("master-key rotation failed", "job", job.ID, "err", err.Error())
	}
	if uerr != nil {
		j.log.Error("master-key rotation outcome not recorded", "job", job.ID, "err", uerr.Error())
	}
}

// stop cancels a running rotation and waits for it to record its state.
// Later Starts are refused.
func (j *rekeyJobs) stop() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.cancel()
	j.wg.Wait()
}
