package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Helpers for the fault tests (faults_pg_test.go, faults_disk_test.go,
// faults_corrupt_test.go): requests that keep their headers, and a small
// mixed load that records every outcome.

// doH sends one SGP request with c's key, bounded by requestTimeout, and
// says how long it took. err is set only when no response arrived.
func (c *client) doH(method, path string, body any) (*resp, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	t0 := time.Now()
	r, err := c.do(ctx, method, path, body)
	return r, time.Since(t0), err
}

// readyz returns the status and reason of GET /readyz.
func readyz(t testing.TB, base string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: requestTimeout}
	r, err := hc.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("/readyz: %v", err)
	}
	defer r.Body.Close()
	var b struct {
		Reason string `json:"reason"`
	}
	_ = json.NewDecoder(r.Body).Decode(&b)
	return r.StatusCode, b.Reason
}

// waitReadyz polls /readyz until it answers want, for at most d.
func waitReadyz(t testing.TB, base string, want int, d time.Duration) time.Duration {
	t.Helper()
	t0 := time.Now()
	for {
		got, reason := readyz(t, base)
		if got == want {
			return time.Since(t0)
		}
		if time.Since(t0) > d {
			t.Fatalf("/readyz: still %d (%s) after %s, want %d", got, reason, d, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// outcome is one request of a load.
type outcome struct {
	phase  string // when it started
	end    string // when it ended
	op     string
	status int // 0: no response
	retry  string
	err    error
	took   time.Duration
	body   string
	start  time.Time
}

// load runs workers mixing operations against ids until stopped, recording
// each outcome under the phase current when it started.
type load struct {
	c     *client
	ids   []string
	phase atomic.Pointer[string]

	mu       sync.Mutex
	outcomes []outcome
	stop     chan struct{}
	wg       sync.WaitGroup
	seq      atomic.Int64
}

// startLoad starts a load in phase whose workers take turns at ops (get,
// list, decrypt, create, update); by default get, list, decrypt and create.
func startLoad(c *client, ids []string, workers int, phase string, ops ...string) *load {
	if len(ops) == 0 {
		ops = []string{"get", "list", "decrypt", "create"}
	}
	l := &load{c: c, ids: ids, stop: make(chan struct{})}
	l.setPhase(phase)
	for w := range workers {
		l.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				default:
				}
				id := ids[(w*7+i)%len(ids)]
				op := ops[i%len(ops)]
				var method, path string
				var body any
				switch op {
				case "get":
					method, path = "GET", "/v5/credentials/"+id
				case "list":
					method, path = "GET", "/v5/credentials?limit=10"
				case "decrypt":
					method, path = "POST", "/v5/credentials/"+id+"/secret"
				case "create":
					method, path = "POST", "/v5/credentials"
					body = map[string]any{"type": "key", "name": fmt.Sprintf("load-%d-%d", w, l.seq.Add(1)), "payload": "x"}
				case "update":
					method, path = "PATCH", "/v5/credentials/"+id
					body = map[string]any{"description": fmt.Sprintf("touched %d", i)}
				default:
					panic("e2e: unknown load operation " + op)
				}
				ph, start := *l.phase.Load(), time.Now()
				r, took, err := c.doH(method, path, body)
				o := outcome{phase: ph, end: *l.phase.Load(), op: op, err: err, took: took, start: start}
				if r != nil {
					o.status, o.retry, o.body = r.Status, r.Header.Get("Retry-After"), string(r.Body)
				}
				l.mu.Lock()
				l.outcomes = append(l.outcomes, o)
				l.mu.Unlock()
				// Modest load (2 shared cores); a failing request must not
				// become a busy loop.
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return l
}

func (l *load) setPhase(p string) { l.phase.Store(&p) }

// count returns how many requests that started in phase have finished.
func (l *load) count(phase string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, o := range l.outcomes {
		if o.phase == phase {
			n++
		}
	}
	return n
}

// waitCount waits until n requests of phase have finished, for at most d.
func (l *load) waitCount(t testing.TB, phase string, n int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for l.count(phase) < n {
		if time.Now().After(deadline) {
			t.Fatalf("phase %s: only %d of %d requests finished in %s", phase, l.count(phase), n, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// halt stops the workers and returns every outcome.
func (l *load) halt() []outcome {
	stopAndWait(l.stop, &l.wg)
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.outcomes...)
}

// summary counts outcomes by phase, operation and status, for the log.
func summary(os []outcome) string {
	n := map[string]int{}
	for _, o := range os {
		n[fmt.Sprintf("%s/%s/%d", o.phase, o.op, o.status)]++
	}
	keys := make([]string, 0, len(n))
	for k := range n {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, " %s×%d", k, n[k])
	}
	return b.String()
}
