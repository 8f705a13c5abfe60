package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// worker is one client goroutine's state, passed to a builder.
type worker struct {
	id  int
	seq int // requests this worker has built
	rng *rand.Rand
	buf []byte // scratch for request bodies
}

// cellResult is one measured cell.
type cellResult struct {
	ops     int
	errs    int
	firstEr string
	elapsed time.Duration
	p50     time.Duration
	p99     time.Duration
	cpu     time.Duration // user+system CPU time of the whole process during the measured window
}

// cpuPerOp is the process's CPU time per completed operation (server, client
// and bare handler together): unlike ops/s, it is barely affected by other
// load on the machine.
func (r cellResult) cpuPerOp() time.Duration {
	if r.ops == 0 {
		return 0
	}
	return r.cpu / time.Duration(r.ops)
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (r cellResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

var workerSeq atomic.Int64

// runCell runs conc workers against client: warmup unmeasured, then
// duration measured. Each worker records its own latencies; they are merged
// at the end.
// hook, if not nil, is called with true when measuring starts and false when
// it ends (the CPU profile of a cell).
func runCell(ctx context.Context, client *http.Client, conc int, warmup, duration time.Duration, build builder, status int, hook func(bool)) cellResult {
	var (
		wg       sync.WaitGroup
		measure  atomic.Bool
		stop     atomic.Bool
		mu       sync.Mutex
		all      []time.Duration
		errs     int
		firstErr string
	)
	for i := range conc {
		wg.Go(func() {
			w := &worker{id: int(workerSeq.Add(1)), rng: rand.New(rand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))}
			lats := make([]time.Duration, 0, 4096)
			nerr := 0
			var ferr string
			for !stop.Load() && ctx.Err() == nil {
				rec := measure.Load()
				t0 := time.Now()
				err := do(ctx, client, build, w, status)
				lat := time.Since(t0)
				if !rec || !measure.Load() {
					continue
				}
				if err != nil {
					nerr++
					if ferr == "" {
						ferr = err.Error()
					}
					continue
				}
				lats = append(lats, lat)
			}
			mu.Lock()
			all = append(all, lats...)
			errs += nerr
			if firstErr == "" {
				firstErr = ferr
			}
			mu.Unlock()
		})
	}
	sleep(ctx, warmup)
	if hook != nil {
		hook(true)
	}
	measure.Store(true)
	start, cpu0 := time.Now(), processCPU()
	sleep(ctx, duration)
	measure.Store(false)
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	if hook != nil {
		hook(false)
	}
	stop.Store(true)
	wg.Wait()

	slices.Sort(all)
	r := cellResult{ops: len(all), errs: errs, firstEr: firstErr, elapsed: elapsed, cpu: cpu}
	if len(all) > 0 {
		r.p50 = all[len(all)*50/100]
		r.p99 = all[min(len(all)-1, len(all)*99/100)]
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// do sends one request and drains the response.
func do(ctx context.Context, client *http.Client, build builder, w *worker, status int) error {
	req, err := build(w)
	w.seq++
	if err != nil {
		return err
	}
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL.Path, resp.StatusCode, status, b)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// probe sends one request of op and fails on an unexpected answer, so that
// a broken cell is reported before the run rather than as a column of errors.
func probe(e *env, op *opSpec, b builder) error {
	client := e.vault
	if op.name == "bare" {
		client = e.bare
	}
	w := &worker{id: int(workerSeq.Add(1)), rng: rand.New(rand.NewPCG(1, 2))}
	return do(e.ctx, client, b, w, op.status)
}

// medianCell returns the cell with the median ops/s.
func medianCell(cs []cellResult) cellResult {
	s := slices.Clone(cs)
	slices.SortFunc(s, func(a, b cellResult) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// deepRow is the preloaded row whose id the deep-page cursor uses.
type deepRow struct {
	index int
	id    string
}

// preload creates cfg.rows credentials through the core's bulk path and
// returns an even sample of their ids (for get and decrypt) and the cursor
// for the deep page: the row at about 99% of the list in the default order
// (created_at ascending), leaving more than a page after it.
func preload(ctx context.Context, svc *vault.Service, st store.Analyzer, id *vault.Identity, cfg config) ([]string, deepRow, error) {
	n := cfg.rows
	deep := deepRow{index: max(0, n-n/100-101)}
	step := max(1, n/cfg.sample)
	var sample []string
	payload := make([]byte, cfg.payloadSize)
	ins := make([]vault.CredentialInput, 0, cfg.batch)
	for lo := 0; lo < n; lo += cfg.batch {
		hi := min(lo+cfg.batch, n)
		ins = ins[:0]
		for i := lo; i < hi; i++ {
			p := make([]byte, len(payload))
			for j := range p {
				p[j] = 'a' + byte((i+j)%26)
			}
			ins = append(ins, vault.CredentialInput{Name: fmt.Sprintf("load-%09d", i), Type: "key", Payload: p})
		}
		cs, err := svc.BulkCreateCredentials(ctx, id, ins)
		if err != nil {
			return nil, deep, err
		}
		for k, c := range cs {
			i := lo + k
			if i%step == 0 {
				sample = append(sample, c.ID)
			}
			if i == deep.index {
				deep.id = c.ID
			}
		}
	}
	// As credvault load does: refresh planner statistics after the load.
	if err := st.Analyze(ctx); err != nil {
		return nil, deep, err
	}
	return sample, deep, nil
}
