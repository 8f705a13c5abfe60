package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
)

// replicaSet is n credvault serve processes on one PostgreSQL database,
// sharing the master key and the bootstrap admin key.
type replicaSet struct {
	DatabaseURL string
	AdminKey    string
	Procs       []*proc
	Clients     []*client // Clients[i] talks to Procs[i] as the admin
}

// startReplicas starts n `credvault serve` processes on one fresh
// PostgreSQL database AT THE SAME TIME (so that their migrations and
// bootstrap race), with the same master key and CREDVAULT_BOOTSTRAP_API_KEY,
// and waits until every one is ready. Tests of cross-replica behaviour (the
// SGP checks below; DSM sessions and tokens issued by one replica and used
// on another) build on it.
func startReplicas(t *testing.T, n int) *replicaSet {
	t.Helper()
	rs := &replicaSet{DatabaseURL: newDatabase(t, "postgres"), AdminKey: newBootstrapKey()}
	for i := range n {
		rs.Procs = append(rs.Procs, launch(t, fmt.Sprintf("replica-%c", 'A'+i), server{DatabaseURL: rs.DatabaseURL, BootstrapKey: rs.AdminKey}))
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i, p := range rs.Procs {
		wg.Go(func() { errs[i] = p.waitReady(startTimeout) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s did not start: %v\nstderr:\n%s", rs.Procs[i].name, err, rs.Procs[i].stderr.String())
		}
	}
	for _, p := range rs.Procs {
		rs.Clients = append(rs.Clients, newClient(p.URL, rs.AdminKey))
	}
	return rs
}

func TestReplicas(t *testing.T) {
	wantEngine(t, "postgres")
	rs := startReplicas(t, 2)
	a, b := rs.Clients[0], rs.Clients[1]

	// Exactly one replica bootstrapped the database: one account.
	if n, err := countRows(rs.DatabaseURL, "accounts"); err != nil || n != 1 {
		t.Fatalf("accounts after two replicas started at once: %d (%v), want 1", n, err)
	}

	t.Run("created through A is at once visible through B", func(t *testing.T) {
		for i := range 20 {
			name := fmt.Sprintf("rep-%02d", i)
			payload := randomText("secret-")
			id := a.create(t, name, payload)
			if got := b.must(t, 200, "GET", "/v5/credentials/"+id, nil).str("name"); got != name {
				t.Fatalf("B: get %s: name %q, want %q", id, got, name)
			}
			if got := b.must(t, 200, "GET", "/v5/credentials/name/"+name, nil).str("id"); got != id {
				t.Fatalf("B: get by name %s: id %q, want %s", name, got, id)
			}
			if got := b.secret(t, id); got != payload {
				t.Fatalf("B: decrypt %s: %q, want %q", id, got, payload)
			}
			if got := b.listAll(t)[name]; got != id {
				t.Fatalf("B: list: %s has id %q, want %s", name, got, id)
			}
		}
	})

	t.Run("update through B is seen by A within the bound (payload and metadata)", func(t *testing.T) {
		id := a.create(t, "rep-upd", "v0")
		a.secret(t, id) // A has read it: a cache, if any, now holds v0
		for v := 1; v <= 10; v++ {
			writer, reader := b, a
			if v%2 == 0 {
				writer, reader = a, b
			}
			payload, desc := fmt.Sprintf("v%d-%s", v, randomText("")), fmt.Sprintf("description %d", v)
			writer.must(t, 200, "PATCH", "/v5/credentials/"+id, map[string]any{"payload": payload, "description": desc})
			// The writer answers with the new payload at once; the other
			// replica may answer from its row cache (ciphertext only) until
			// it sees the change: within the bound, and never with anything
			// but the previous payload meanwhile.
			if got := writer.secret(t, id); got != payload {
				t.Fatalf("round %d: stale payload through the writing replica: %q, want %q", v, got, payload)
			}
			changed := time.Now()
			for {
				sent := time.Now()
				got := reader.secret(t, id)
				if got == payload && reader.must(t, 200, "GET", "/v5/credentials/"+id, nil).str("description") == desc {
					break
				}
				previous := strings.HasPrefix(got, fmt.Sprintf("v%d-", v-1)) || (v == 1 && got == "v0") // v0: as created
				if got != payload && !previous {
					t.Fatalf("round %d: the other replica decrypted %q, neither the new payload nor the previous one", v, got)
				}
				if sent.Sub(changed) > sqlstore.RevocationBound {
					t.Fatalf("round %d: stale payload or metadata through the other replica after %v", v, sqlstore.RevocationBound)
				}
			}
		}
	})

	t.Run("deleted through A is gone through B", func(t *testing.T) {
		id := a.create(t, "rep-del", "doomed")
		b.secret(t, id) // B has read it
		a.must(t, 200, "DELETE", "/v5/credentials/"+id, nil)
		b.within(t, time.Now(), 404, "GET", "/v5/credentials/"+id, nil)
		b.must(t, 404, "POST", "/v5/credentials/"+id+"/secret", nil)
		b.must(t, 404, "GET", "/v5/credentials/name/rep-del", nil)
		b.must(t, 404, "POST", "/v5/credentials/name/rep-del/secret", nil)
		if _, ok := b.listAll(t)["rep-del"]; ok {
			t.Fatal("B still lists the deleted credential")
		}
		// The name is free again, through either replica.
		id2 := b.create(t, "rep-del", "reborn")
		if got := a.secret(t, id2); got != "reborn" {
			t.Fatalf("A: recreated credential decrypts to %q", got)
		}
	})

	t.Run("names stay unique under concurrent creates through both", func(t *testing.T) {
		const names, perReplica = 40, 2
		type result struct {
			status  int
			payload string
		}
		results := make([][]result, names)
		var mu sync.Mutex
		var wg sync.WaitGroup
		// perReplica workers on each replica walk the same names in the same
		// order, so every name is created 2×perReplica times at about the
		// same moment, half through each replica.
		for ri, c := range rs.Clients {
			for w := range perReplica {
				wg.Go(func() {
					for i := range names {
						payload := fmt.Sprintf("from-%d-%d-%s", ri, w, randomText(""))
						ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
						r, err := c.do(ctx, "POST", "/v5/credentials", map[string]any{"type": "key", "name": fmt.Sprintf("race-%03d", i), "payload": payload})
						cancel()
						res := result{payload: payload}
						if err != nil {
							t.Errorf("create race-%03d: %v", i, err)
						} else {
							res.status = r.Status
							if r.Status != 200 && r.Status != 409 {
								t.Errorf("create race-%03d: %d %s", i, r.Status, r.Body)
							}
						}
						mu.Lock()
						results[i] = append(results[i], res)
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		for i, rs2 := range results {
			var winners []result
			conflicts := 0
			for _, r := range rs2 {
				switch r.status {
				case 200:
					winners = append(winners, r)
				case 409:
					conflicts++
				}
			}
			if len(winners) != 1 || conflicts != len(rs2)-1 {
				t.Errorf("race-%03d: %d created, %d conflicts of %d attempts; want exactly 1 created", i, len(winners), conflicts, len(rs2))
				continue
			}
			for _, c := range rs.Clients {
				r := c.must(t, 200, "POST", "/v5/credentials/name/"+url.PathEscape(fmt.Sprintf("race-%03d", i))+"/secret", nil)
				if got := r.str("result"); got != winners[0].payload {
					t.Errorf("race-%03d: decrypts to %q, the winning create sent %q", i, got, winners[0].payload)
				}
			}
		}
		t.Logf("%d names × %d concurrent creates (%d per replica): exactly one 200 per name, the rest 409", names, 2*perReplica, perReplica)
	})

	t.Run("both replicas list the same", func(t *testing.T) {
		la, lb := a.listAll(t), b.listAll(t)
		if len(la) != len(lb) {
			t.Fatalf("A lists %d, B lists %d", len(la), len(lb))
		}
		for name, id := range la {
			if lb[name] != id {
				t.Fatalf("%s: A says %s, B says %q", name, id, lb[name])
			}
		}
	})

	if rep, err := checkIntegrity(rs.DatabaseURL); err != nil {
		t.Fatalf("integrity: %v", err)
	} else {
		t.Logf("integrity ok: %d credentials, amcheck on %d indexes", rep.Credentials, rep.Indexes)
	}
}

// TestConcurrentBootstrap: two vaults bootstrapping one empty PostgreSQL
// database at the same moment, as serve does it (under the store's
// start-up lock), create exactly one account and one admin key, and neither
// fails. Without the lock, vault.Service.Bootstrap is not atomic: both see
// an empty database, both create a "default" account, and the loser fails
// on the API key's primary key.
func TestConcurrentBootstrap(t *testing.T) {
	wantEngine(t, "postgres")
	for try := range 5 {
		dbURL := newDatabase(t, "postgres")
		ctx := context.Background()
		var apps []*app.App
		for range 2 {
			a, err := app.Open(ctx, app.Config{DatabaseURL: dbURL, MasterKey: masterKey, DataDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			apps = append(apps, a)
		}
		key := newBootstrapKey()
		var wg sync.WaitGroup
		errs := make([]error, len(apps))
		booted := make([]bool, len(apps))
		for i, a := range apps {
			wg.Go(func() {
				b, err := a.Bootstrap(ctx, key)
				booted[i], errs[i] = b != nil, err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("try %d: vault %d: bootstrap: %v", try, i, err)
			}
		}
		if booted[0] == booted[1] {
			t.Errorf("try %d: bootstrapped by both or neither: %v", try, booted)
		}
		for table, want := range map[string]int{"accounts": 1, "principals": 1, "api_keys": 1} {
			if n, err := countRows(dbURL, table); err != nil || n != want {
				t.Errorf("try %d: %s has %d rows (%v), want %d", try, table, n, err, want)
			}
		}
	}
}
