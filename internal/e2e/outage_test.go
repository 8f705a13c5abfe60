package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
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
	// update), recording every outcome with the phase it started and ended
	// in: up, stopping, down, starting, back.
	l := startLoad(c, ids, 4, "up", "get", "decrypt", "list", "create", "update")
	defer l.halt()

	l.waitCount(t, "up", 100, 30*time.Second)
	l.setPhase("stopping")
	tStop := time.Now()
	if err := cl.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL stopped (%s)", time.Since(tStop).Round(time.Millisecond))
	l.setPhase("down")
	l.waitCount(t, "down", 200, 30*time.Second)

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

	l.setPhase("starting")
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
	l.setPhase("back")
	l.waitCount(t, "back", 200, 30*time.Second)
	outcomes := l.halt()

	// Judge the outcomes.
	byStatus := map[string]int{}
	var slowest time.Duration
	downCount, backFail, okBefore := 0, 0, 0
	for _, o := range outcomes {
		if o.err != nil {
			t.Errorf("%s (phase %s→%s): no response after %s: %v", o.op, o.phase, o.end, o.took.Round(time.Millisecond), o.err)
			continue
		}
		switch {
		case o.phase == "up" && o.end == "up":
			if o.status != 200 {
				t.Errorf("%s before the outage: %d %s", o.op, o.status, o.body)
			}
			okBefore++
		case o.phase == "down" && o.end == "down":
			downCount++
			byStatus[fmt.Sprintf("%s %d", o.op, o.status)]++
			slowest = max(slowest, o.took)
			var b map[string]any
			if o.status != 503 {
				t.Errorf("%s while the database is down: %d %s, want 503", o.op, o.status, o.body)
			} else if err := json.Unmarshal([]byte(o.body), &b); err != nil || b["detail"] == nil {
				t.Errorf("%s while the database is down: body %q is not JSON with a detail", o.op, o.body)
			}
			if o.took > failFast {
				t.Errorf("%s while the database is down took %s, want < %s", o.op, o.took, failFast)
			}
		case o.phase == "back":
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
