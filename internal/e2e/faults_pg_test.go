package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/dbtest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
)

// TestPostgresCrashAndFreeze runs a mixed load while PostgreSQL first
// crashes (every backend of the vault's database SIGKILLed mid-request, so
// the server restarts itself through crash recovery) and then freezes
// (SIGSTOP: connections are accepted by the kernel but nothing answers).
// Every request gets an answer: 200, or 503 with Retry-After and a JSON
// body, never a 500 and never a hang; while frozen, within the database
// deadline plus a margin; /readyz says not ready; and after each fault the
// service recovers without a restart.
func TestPostgresCrashAndFreeze(t *testing.T) {
	wantEngine(t, "postgres")
	cl := pgtest.NewCluster(t)
	// Registered after NewCluster, so it runs first: never leave the
	// cluster frozen for its own cleanup.
	t.Cleanup(func() { _ = cl.Signal(syscall.SIGCONT) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := cl.CreateDB(ctx, "credvault"); err != nil {
		t.Fatal(err)
	}
	const dbTimeout = 2 * time.Second
	bound := dbTimeout + 3*time.Second // a request while frozen is answered within this
	key := newBootstrapKey()
	p := start(t, "server", server{DatabaseURL: cl.URL("credvault"), BootstrapKey: key, Args: []string{"--db-timeout", dbTimeout.String()}})
	c := newClient(p.URL, key)
	payloads, ids := c.createBefore(t, 10)

	l := startLoad(c, ids, 4, "up")
	defer l.halt()
	l.waitCount(t, "up", 40, 30*time.Second)

	// Crash: SIGKILL every backend serving the vault.
	l.setPhase("crash")
	killed := killBackends(t, cl, "credvault")
	t.Logf("SIGKILLed %d backends", killed)
	took := waitReadyz(t, p.URL, 200, 30*time.Second)
	t.Logf("/readyz 200 again %s after the crash", took.Round(time.Millisecond))
	l.setPhase("recovered")
	l.waitCount(t, "recovered", 40, 30*time.Second)
	l.setPhase("settled")
	l.waitCount(t, "settled", 40, 30*time.Second)

	// Freeze: SIGSTOP the postmaster and every backend.
	// Requests that start while the processes are being stopped may still
	// be answered: "freeze" begins once all of them are.
	l.setPhase("stopping")
	if err := cl.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	l.setPhase("freeze")
	t0 := time.Now()
	st, reason := readyz(t, p.URL)
	if st != 503 || time.Since(t0) > bound {
		t.Errorf("/readyz while frozen: %d (%s) after %s, want 503 within %s", st, reason, time.Since(t0).Round(time.Millisecond), bound)
	}
	// The DSM dialect answers the same way (plain text).
	req, _ := http.NewRequest("POST", p.URL+"/sys/v1/session/auth", nil)
	req.Header.Set("Authorization", "Basic "+key)
	t1 := time.Now()
	hr, err := (&http.Client{Timeout: requestTimeout}).Do(req)
	if err != nil {
		t.Errorf("DSM auth while frozen: %v", err)
	} else {
		hr.Body.Close()
		if hr.StatusCode != 503 || hr.Header.Get("Retry-After") == "" || time.Since(t1) > bound {
			t.Errorf("DSM auth while frozen: %d (Retry-After %q) after %s, want 503 with Retry-After within %s", hr.StatusCode, hr.Header.Get("Retry-After"), time.Since(t1).Round(time.Millisecond), bound)
		}
	}
	l.waitCount(t, "freeze", 12, 30*time.Second)
	frozen := time.Since(t0)
	l.setPhase("thawed")
	if err := cl.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL frozen for %s", frozen.Round(time.Millisecond))
	took = waitReadyz(t, p.URL, 200, 30*time.Second)
	t.Logf("/readyz 200 again %s after SIGCONT", took.Round(time.Millisecond))
	l.waitCount(t, "thawed", 40, 30*time.Second)
	l.setPhase("settled2")
	l.waitCount(t, "settled2", 40, 30*time.Second)
	outs := l.halt()
	t.Logf("%d requests:%s", len(outs), summary(outs))

	frozenCount := 0
	for _, o := range outs {
		if o.err != nil {
			t.Errorf("%s (%s→%s): no response after %s: %v", o.op, o.phase, o.end, o.took.Round(time.Millisecond), o.err)
			continue
		}
		if o.status != 200 && o.status != 503 {
			t.Errorf("%s (%s→%s): %d %s, want 200 or 503", o.op, o.phase, o.end, o.status, o.body)
			continue
		}
		if o.status == 503 {
			var b map[string]any
			if o.retry == "" {
				t.Errorf("%s (%s→%s): 503 without Retry-After", o.op, o.phase, o.end)
			}
			if json.Unmarshal([]byte(o.body), &b) != nil || b["detail"] == nil {
				t.Errorf("%s (%s→%s): 503 body %q, want JSON with detail", o.op, o.phase, o.end, o.body)
			}
		}
		if o.phase == "freeze" && o.took > bound {
			t.Errorf("%s started while frozen: answered after %s, want within %s", o.op, o.took.Round(time.Millisecond), bound)
		}
		if o.phase != o.end {
			continue
		}
		switch o.phase {
		case "up", "settled", "settled2":
			if o.status != 200 {
				t.Errorf("%s (%s): %d %s, want 200", o.op, o.phase, o.status, o.body)
			}
		case "freeze":
			frozenCount++
			// A metadata read may be answered from the coherent cache for
			// up to sqlstore.RevocationBound after the database stopped
			// answering (docs/security.md, "Caches and revocation").
			if o.op == "get" && o.status == 200 && o.start.Sub(t0) < sqlstore.RevocationBound {
				continue
			}
			if o.status != 503 {
				t.Errorf("%s while frozen: %d, want 503", o.op, o.status)
			}
		}
	}
	if frozenCount < 8 {
		t.Errorf("only %d requests ran entirely while PostgreSQL was frozen", frozenCount)
	}
	for id, payload := range payloads {
		if got := c.secret(t, id); got != payload {
			t.Errorf("after the faults %s decrypts to %q, want %q", id, got, payload)
		}
	}
}

// killBackends SIGKILLs every backend connected to dbname on cl and returns
// how many there were. PostgreSQL answers a killed backend by terminating
// all the others and restarting through crash recovery.
func killBackends(t *testing.T, cl *pgtest.Cluster, dbname string) int {
	t.Helper()
	db, err := sql.Open("pgx", cl.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pids := dbtest.Column[int](ctx, t, db, `SELECT pid FROM pg_stat_activity WHERE datname = $1`, dbname)
	if len(pids) == 0 {
		t.Fatalf("no backend is connected to %s", dbname)
	}
	for _, pid := range pids {
		// ESRCH: the postmaster already ended it after the first SIGKILL.
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			t.Fatalf("kill -9 %d: %v", pid, err)
		}
	}
	return len(pids)
}
