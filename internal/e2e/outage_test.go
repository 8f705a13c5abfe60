package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/pgtest"
)

// failFast bounds how long a request may take while the database is gone:
// well under the clients' timeout (requestTimeout).
const failFast = 3 * time.Second

// TestDatabaseGoesAway stops the PostgreSQL server under load and starts it
// again: requests fail fast with 503 and a JSON body, /readyz says not
// ready, and the service resumes by itself, with the data intact.
func TestDatabaseGoesAway(t *testing.T) {
	wantEngine(t, "postgres")
	cl := pgtest.NewCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.CreateDB(ctx, "credvault"); err != nil {
		t.Fatal(err)
	}
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: cl.URL("credvault"), BootstrapKey: key})
	c := newClient(p.URL, key)

	// Data written before the outage.
	before, ids := c.createBefore(t, 20) // id → payload

	// Load: 4 clients mixing reads (get, decrypt, list) and writes (create,
	// update), recording every outcome with the phase it started and ended in.
	const (
		phaseUp = iota
		phaseStopping
		phaseDown
		phaseStarting
		phaseBack
	)
	var phase atomic.Int32
	type outcome struct {
		startPhase, endPhase int32
		op                   string
		status               int
		err                  error
		took                 time.Duration
		body                 []byte
	}
	var (
		mu       sync.Mutex
		outcomes []outcome
		stop     = make(chan struct{})
		wg       sync.WaitGroup
		seq      atomic.Int64
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ids[(w*7+i)%len(ids)]
				var method, path, op string
				var body any
				switch i % 5 {
				case 0:
					op, method, path = "get", "GET", "/v5/credentials/"+id
				case 1:
					op, method, path = "decrypt", "POST", "/v5/credentials/"+id+"/secret"
				case 2:
					op, method, path = "list", "GET", "/v5/credentials?limit=10"
				case 3:
					op, method, path = "create", "POST", "/v5/credentials"
					body = map[string]any{"type": "key", "name": fmt.Sprintf("during-%d", seq.Add(1)), "payload": "x"}
				case 4:
					op, method, path = "update", "PATCH", "/v5/credentials/"+id
					body = map[string]any{"description": fmt.Sprintf("touched %d", i)}
				}
				sp := phase.Load()
				rctx, rcancel := context.WithTimeout(context.Background(), requestTimeout)
				t0 := time.Now()
				r, err := c.do(rctx, method, path, body)
				rcancel()
				o := outcome{startPhase: sp, endPhase: phase.Load(), op: op, err: err, took: time.Since(t0)}
				if r != nil {
					o.status, o.body = r.Status, r.Body
				}
				mu.Lock()
				outcomes = append(outcomes, o)
				mu.Unlock()
				// Keep the load modest (2 shared cores); a failing request
				// must not turn into a busy loop.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	defer stopAndWait(stop, &wg)

	waitOutcomes := func(n int, what string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			got := len(outcomes)
			mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: only %d requests finished in 30s", what, got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	countNow := func() int { mu.Lock(); defer mu.Unlock(); return len(outcomes) }

	waitOutcomes(100, "before the outage")
	phase.Store(phaseStopping)
	tStop := time.Now()
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL stopped (%s)", time.Since(tStop).Round(time.Millisecond))
	phase.Store(phaseDown)
	downStart := countNow()
	waitOutcomes(downStart+200, "while the database is down")

	// /readyz: not ready, fast, JSON.
	hc := &http.Client{Timeout: requestTimeout}
	t0 := time.Now()
	rr, err := hc.Get(p.URL + "/readyz")
	if err != nil {
		t.Fatalf("/readyz while down: %v", err)
	}
	var ready map[string]any
	derr := json.NewDecoder(rr.Body).Decode(&ready)
	rr.Body.Close()
	if rr.StatusCode != 503 || derr != nil || time.Since(t0) > failFast {
		t.Fatalf("/readyz while down: %d (JSON error %v) after %s; want 503 with a JSON body, fast", rr.StatusCode, derr, time.Since(t0))
	}
	t.Logf("/readyz while down: 503 %v", ready)

	phase.Store(phaseStarting)
	tStart := time.Now()
	if err := cl.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL started again (%s)", time.Since(tStart).Round(time.Millisecond))

	// The service resumes by itself: /readyz turns 200, then every request
	// succeeds again.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 30s of the database's return (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("/readyz 200 again %s after PostgreSQL was back", time.Since(tStart).Round(time.Millisecond))
	phase.Store(phaseBack)
	backStart := countNow()
	waitOutcomes(backStart+200, "after the database returned")
	stopAndWait(stop, &wg)

	// Judge the outcomes.
	mu.Lock()
	defer mu.Unlock()
	byStatus := map[string]int{}
	var slowest time.Duration
	downCount, backFail, okBefore := 0, 0, 0
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("%s (phase %d→%d): no response after %s: %v", o.op, o.startPhase, o.endPhase, o.took.Round(time.Millisecond), o.err)
			continue
		}
		switch {
		case o.startPhase == phaseUp && o.endPhase == phaseUp:
			if o.status != 200 {
				t.Errorf("%s before the outage: %d %s", o.op, o.status, o.body)
			}
			okBefore++
		case o.startPhase == phaseDown && o.endPhase == phaseDown:
			downCount++
			byStatus[fmt.Sprintf("%s %d", o.op, o.status)]++
			slowest = max(slowest, o.took)
			var b map[string]any
			if o.status != 503 {
				t.Errorf("%s while the database is down: %d %s, want 503", o.op, o.status, o.body)
			} else if err := json.Unmarshal(o.body, &b); err != nil || b["detail"] == nil {
				t.Errorf("%s while the database is down: body %q is not JSON with a detail", o.op, o.body)
			}
			if o.took > failFast {
				t.Errorf("%s while the database is down took %s, want < %s", o.op, o.took, failFast)
			}
		case o.startPhase == phaseBack:
			if o.status != 200 {
				backFail++
				t.Errorf("%s after the service resumed: %d %s", o.op, o.status, o.body)
			}
		}
	}
	keys := make([]string, 0, len(byStatus))
	for k := range byStatus {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	summary := ""
	for _, k := range keys {
		summary += fmt.Sprintf(" %s×%d", k, byStatus[k])
	}
	t.Logf("%d requests in all: %d ok before the outage; while down %d, slowest %s:%s; %d failed after resuming",
		len(outcomes), okBefore, downCount, slowest.Round(time.Millisecond), summary, backFail)
	if downCount < 50 {
		t.Errorf("only %d requests ran entirely while the database was down", downCount)
	}

	// Data written before the outage is intact.
	for id, payload := range before {
		if got := c.secret(t, id); got != payload {
			t.Errorf("after the outage %s decrypts to %q, want %q", id, got, payload)
		}
	}
}
