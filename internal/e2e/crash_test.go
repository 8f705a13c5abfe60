package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Crash durability: the real binary under concurrent creates, updates and
// deletes is SIGKILLed at random moments, restarted on the same data, and
// the database is compared with what the clients were told:
//
//   - every acknowledged create/update is there with exactly the
//     acknowledged payload (it decrypts to the same bytes);
//   - every acknowledged delete stays deleted;
//   - an operation whose response never arrived is either applied or not,
//     never half-applied (the payload is one of the two candidates; a
//     create is there with its payload or not at all);
//   - nothing is there that no client wrote;
//   - the database passes its integrity check after every kill;
//   - every stored credential has the audit record of its create and of
//     each committed update, every deleted one that of its delete, and no
//     record claims a change that is not there (the change and its record
//     commit in one transaction), and the trail verifies.
const (
	crashRounds     = 24
	crashMinRounds  = 20
	crashBudget     = 150 * time.Second // per engine; stop adding rounds after this
	crashClients    = 6
	crashMaxLive    = 40 // per client: beyond this, clients update and delete
	crashMinLoad    = 100 * time.Millisecond
	crashMaxLoad    = 1500 * time.Millisecond
	crashReqTimeout = 10 * time.Second
)

func TestCrashDurability(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			wantEngine(t, engine)
			runCrash(t, engine)
		})
	}
}

// opKind names a write operation.
type opKind int

const (
	opNone opKind = iota
	opCreate
	opUpdate
	opDelete
)

func (k opKind) String() string {
	return [...]string{"none", "create", "update", "delete"}[k]
}

// cred is the client's record of one credential. Each credential belongs to
// one client goroutine, which runs one operation at a time, so at most one
// operation per credential is ever in doubt.
type cred struct {
	name    string
	id      string // known once a create was acknowledged (or found after a crash)
	exists  bool   // acknowledged state
	payload string // acknowledged payload while exists

	pending        opKind // an operation whose response never arrived
	pendingPayload string
}

type crashStats struct {
	mu                            sync.Mutex
	rounds                        int
	acked                         [4]int // per opKind
	inDoubt                       int    // requests in flight at a kill (sent, no response)
	inDoubtApplied, inDoubtNotYet int
	refused                       int // requests refused at connect (never sent)
	verified                      int // credential checks after restarts
	losses                        []string
	unexpected                    []string
}

func (s *crashStats) loss(format string, a ...any) {
	s.mu.Lock()
	s.losses = append(s.losses, fmt.Sprintf(format, a...))
	s.mu.Unlock()
}

func runCrash(t *testing.T, engine string) {
	dbURL := newDatabase(t, engine)
	dataDir := t.TempDir()
	key := newBootstrapKey()
	srv := server{DatabaseURL: dbURL, DataDir: dataDir, BootstrapKey: key}
	st := &crashStats{}
	clients := make([][]*cred, crashClients)
	var deleted []*cred // acknowledged deletes, all rounds
	seq := 0
	t0 := time.Now()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 42))

	for round := 1; round <= crashRounds; round++ {
		if round > crashMinRounds && time.Since(t0) > crashBudget {
			t.Logf("time budget of %s used up after %d rounds", crashBudget, round-1)
			break
		}
		p := start(t, fmt.Sprintf("%s-round%d", engine, round), srv)
		c := newClient(p.URL, key)

		// Verify everything recorded so far against the restarted server.
		newlyDeleted := verifyCrashState(t, c, clients, deleted, st)
		deleted = append(deleted, newlyDeleted...)
		if t.Failed() {
			return
		}

		// Load, and a SIGKILL at a random moment.
		load := crashMinLoad + time.Duration(rng.Int64N(int64(crashMaxLoad-crashMinLoad)))
		var wg sync.WaitGroup
		var delMu sync.Mutex
		for i := range clients {
			seed := rng.Uint64()
			wg.Go(func() {
				d := crashClient(c, i, &clients[i], &seq, seed, st)
				delMu.Lock()
				deleted = append(deleted, d...)
				delMu.Unlock()
			})
		}
		killer := time.AfterFunc(load, func() { _ = p.cmd.Process.Signal(syscall.SIGKILL) })
		wg.Wait()
		killer.Stop()
		p.kill()
		st.rounds++

		rep, err := checkIntegrity(dbURL)
		if err != nil {
			t.Fatalf("round %d: integrity check after SIGKILL: %v", round, err)
		}
		if out, errOut, code := runCLI(t, time.Minute, nil, "audit", "verify", "--data-dir", dataDir, "--database-url", dbURL); code != 0 {
			t.Fatalf("round %d: credvault audit verify after SIGKILL: exit %d\n%s%s", round, code, out, errOut)
		}
		if n, err := checkAudited(dbURL); err != nil {
			t.Fatalf("round %d: after SIGKILL: %v", round, err)
		} else if round == 1 || round%6 == 0 {
			t.Logf("round %d: all %d stored credentials (live and deleted) have their audit records", round, n)
		}
		if round == 1 || round%6 == 0 {
			check := "PRAGMA integrity_check"
			if engine == "postgres" {
				check = fmt.Sprintf("amcheck on %d indexes", rep.Indexes)
			}
			t.Logf("round %d: killed after %s of load; %s, counters, name index and audit chain ok (%d live rows, %d tombstones)",
				round, load.Round(time.Millisecond), check, rep.Credentials, rep.Tombstones)
		}
	}

	// A last restart verifies the last round.
	p := start(t, engine+"-final", srv)
	c := newClient(p.URL, key)
	deleted = append(deleted, verifyCrashState(t, c, clients, deleted, st)...)
	live := 0
	for _, cs := range clients {
		live += len(cs)
	}
	t.Logf("%s crash summary: %d rounds in %s; acknowledged ops: %d creates, %d updates, %d deletes; "+
		"%d in doubt at a kill (%d applied, %d not applied), %d refused at connect; %d credential checks; "+
		"%d live and %d deleted credentials at the end; LOSSES: %d",
		engine, st.rounds, time.Since(t0).Round(time.Second), st.acked[opCreate], st.acked[opUpdate], st.acked[opDelete],
		st.inDoubt, st.inDoubtApplied, st.inDoubtNotYet, st.refused, st.verified, live, len(deleted), len(st.losses))
	for _, l := range st.losses {
		t.Errorf("LOSS: %s", l)
	}
	for _, u := range st.unexpected {
		t.Errorf("unexpected response: %s", u)
	}
	if st.rounds < crashMinRounds {
		t.Errorf("only %d rounds, want at least %d", st.rounds, crashMinRounds)
	}
	if st.acked[opCreate] == 0 || st.acked[opUpdate] == 0 || st.acked[opDelete] == 0 {
		t.Errorf("the load did not exercise every operation: %v", st.acked)
	}
}

// crashClient runs one client until its first failed request (the server
// was killed). It returns the credentials whose delete was acknowledged.
func crashClient(c *client, idx int, mine *[]*cred, seq *int, seed uint64, st *crashStats) (deleted []*cred) {
	rng := rand.New(rand.NewPCG(seed, uint64(idx)))
	for {
		live := *mine
		var (
			kind opKind
			cr   *cred
			pos  int
		)
		switch x := rng.IntN(100); {
		case len(live) < 5 || (len(live) < crashMaxLive && x < 40):
			kind = opCreate
			seqLock.Lock()
			*seq++
			n := *seq
			seqLock.Unlock()
			cr = &cred{name: fmt.Sprintf("c%d-%06d", idx, n)}
		case x < 75:
			kind, pos = opUpdate, rng.IntN(len(live))
			cr = live[pos]
		default:
			kind, pos = opDelete, rng.IntN(len(live))
			cr = live[pos]
		}
		payload := randomText(fmt.Sprintf("payload-%s-", cr.name))
		ctx, cancel := context.WithTimeout(context.Background(), crashReqTimeout)
		var (
			r   *resp
			err error
		)
		switch kind {
		case opCreate:
			r, err = c.do(ctx, "POST", "/v5/credentials", map[string]any{"type": "key", "name": cr.name, "payload": payload, "description": "crash test"})
		case opUpdate:
			r, err = c.do(ctx, "PATCH", "/v5/credentials/"+url.PathEscape(cr.id), map[string]any{"payload": payload, "description": "updated"})
		case opDelete:
			r, err = c.do(ctx, "DELETE", "/v5/credentials/"+url.PathEscape(cr.id), nil)
		}
		cancel()
		if err != nil {
			if isRefused(err) {
				// Never sent: nothing to record (the create's name is
				// simply not used).
				st.mu.Lock()
				st.refused++
				st.mu.Unlock()
				return deleted
			}
			cr.pending, cr.pendingPayload = kind, payload
			if kind == opCreate {
				*mine = append(*mine, cr)
			}
			st.mu.Lock()
			st.inDoubt++
			st.mu.Unlock()
			return deleted
		}
		if r.Status != 200 {
			// The server answered with an error: the operation is in
			// doubt for the model, and reported.
			st.mu.Lock()
			st.unexpected = append(st.unexpected, fmt.Sprintf("%s %s: %d %s", kind, cr.name, r.Status, r.Body))
			st.inDoubt++
			st.mu.Unlock()
			cr.pending, cr.pendingPayload = kind, payload
			if kind == opCreate {
				*mine = append(*mine, cr)
			}
			return deleted
		}
		st.mu.Lock()
		st.acked[kind]++
		st.mu.Unlock()
		switch kind {
		case opCreate:
			cr.id, cr.exists, cr.payload = r.str("id"), true, payload
			*mine = append(*mine, cr)
		case opUpdate:
			cr.payload = payload
		case opDelete:
			cr.exists, cr.payload = false, ""
			*mine = append(live[:pos:pos], live[pos+1:]...)
			deleted = append(deleted, cr)
		}
	}
}

var seqLock sync.Mutex

// isRefused reports whether err is a refused connection (the request was
// never sent).
func isRefused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial" && errors.Is(err, syscall.ECONNREFUSED)
}

// verifyCrashState compares the restarted server with the clients' records,
// resolves operations in doubt (updating the records to what is durable),
// and returns credentials whose in-doubt delete turned out applied.
func verifyCrashState(t *testing.T, c *client, clients [][]*cred, deleted []*cred, st *crashStats) (newlyDeleted []*cred) {
	t.Helper()
	listed := c.listAll(t)
	accounted := map[string]bool{}
	for ci := range clients {
		var keep []*cred
		for _, cr := range clients[ci] {
			st.verified++
			switch cr.pending {
			case opNone:
				id, ok := listed[cr.name]
				switch {
				case !ok:
					st.loss("acknowledged credential %s (%s) is not listed", cr.name, cr.id)
				case id != cr.id:
					st.loss("credential %s has id %s, acknowledged %s", cr.name, id, cr.id)
				default:
					if got := secretOrStatus(t, c, cr.id); got != cr.payload {
						st.loss("credential %s decrypts to %q, acknowledged %q", cr.name, got, cr.payload)
					}
				}
				keep = append(keep, cr)
			case opCreate:
				id, ok := listed[cr.name]
				if !ok {
					st.inDoubtNotYet++
					// Never created: the record goes away. Getting it by
					// name must agree with the list.
					if r := c.must(t, 404, "GET", "/v5/credentials/name/"+url.PathEscape(cr.name), nil); r == nil {
						return
					}
					continue
				}
				got := secretOrStatus(t, c, id)
				if got != cr.pendingPayload {
					st.loss("in-doubt create of %s is half-applied: decrypts to %q, sent %q", cr.name, got, cr.pendingPayload)
				}
				st.inDoubtApplied++
				cr.id, cr.exists, cr.payload = id, true, cr.pendingPayload
				keep = append(keep, cr)
			case opUpdate:
				got := secretOrStatus(t, c, cr.id)
				switch got {
				case cr.payload:
					st.inDoubtNotYet++
				case cr.pendingPayload:
					st.inDoubtApplied++
					cr.payload = cr.pendingPayload
				default:
					st.loss("in-doubt update of %s: decrypts to %q, neither the acknowledged %q nor the sent %q", cr.name, got, cr.payload, cr.pendingPayload)
				}
				if listed[cr.name] != cr.id {
					st.loss("in-doubt update of %s: listed with id %q, want %s", cr.name, listed[cr.name], cr.id)
				}
				keep = append(keep, cr)
			case opDelete:
				got := secretOrStatus(t, c, cr.id)
				_, isListed := listed[cr.name]
				switch {
				case got == "404" && !isListed:
					st.inDoubtApplied++
					cr.exists, cr.payload = false, ""
					newlyDeleted = append(newlyDeleted, cr)
				case got == cr.payload && isListed:
					st.inDoubtNotYet++
					keep = append(keep, cr)
				default:
					st.loss("in-doubt delete of %s half-applied: decrypt gives %q, listed %v", cr.name, got, isListed)
					keep = append(keep, cr)
				}
			}
			cr.pending, cr.pendingPayload = opNone, ""
			if cr.exists {
				accounted[cr.name] = true
			}
		}
		clients[ci] = keep
	}
	for _, cr := range deleted {
		st.verified++
		if _, ok := listed[cr.name]; ok {
			st.loss("acknowledged delete of %s (%s) undone: the name is listed again", cr.name, cr.id)
		}
	}
	// Recently deleted ones are also fetched by id.
	for _, cr := range deleted[max(0, len(deleted)-50):] {
		if got := secretOrStatus(t, c, cr.id); got != "404" {
			st.loss("acknowledged delete of %s (%s) undone: decrypt gives %q", cr.name, cr.id, got)
		}
	}
	for name := range listed {
		if !accounted[name] {
			st.loss("credential %s is listed but no client has it (phantom)", name)
		}
	}
	return newlyDeleted
}

// checkAudited checks, on the database directly, that the audit trail and
// the credentials agree: every live credential has one success record of
// its create and one of each committed update (the crash load sends a
// payload with every update, so version-1 of them), every deleted one
// (tombstone) a record of its delete, and every create record names a
// credential that exists or was deleted. It returns the credentials checked.
func checkAudited(dbURL string) (int, error) {
	return onDirect(dbURL, 60*time.Second, func(ctx context.Context, db *sql.DB, _ string) (int, error) {
		type key struct{ id, action string }
		recs := map[key]int64{}
		rows, err := db.QueryContext(ctx, `SELECT object_id, action, COUNT(*) FROM audit_log
			WHERE object_type = 'credential' AND outcome = 'success' GROUP BY object_id, action`)
		if err != nil {
			return 0, fmt.Errorf("read the audit trail: %w", err)
		}
		for rows.Next() {
			var k key
			var n int64
			if err := rows.Scan(&k.id, &k.action, &n); err != nil {
				rows.Close()
				return 0, err
			}
			recs[k] = n
		}
		rows.Close()
		var problems []string
		stored := map[string]bool{}
		rows, err = db.QueryContext(ctx, `SELECT id, version, 0 FROM credentials UNION ALL SELECT id, 0, 1 FROM credential_tombstones`)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var id string
			var version, deleted int64
			if err := rows.Scan(&id, &version, &deleted); err != nil {
				rows.Close()
				return 0, err
			}
			stored[id] = true
			if n := recs[key{id, "credential.create"}]; n != 1 {
				problems = append(problems, fmt.Sprintf("credential %s has %d create records, want 1", id, n))
			}
			if deleted == 1 {
				if n := recs[key{id, "credential.delete"}]; n != 1 {
					problems = append(problems, fmt.Sprintf("deleted credential %s has %d delete records, want 1", id, n))
				}
			} else if n := recs[key{id, "credential.update"}]; n != version-1 {
				problems = append(problems, fmt.Sprintf("credential %s is at version %d but has %d update records, want %d", id, version, n, version-1))
			}
		}
		rows.Close()
		for k := range recs {
			if k.action == "credential.create" && !stored[k.id] {
				problems = append(problems, fmt.Sprintf("a create of credential %s is recorded, but it was never stored", k.id))
			}
		}
		if len(problems) > 0 {
			return len(stored), fmt.Errorf("audit trail and credentials disagree (%d problems): %s", len(problems), strings.Join(problems[:min(len(problems), 10)], "; "))
		}
		return len(stored), nil
	})
}

// secretOrStatus decrypts a credential; a non-200 answer is returned as its
// status code ("404").
func secretOrStatus(t *testing.T, c *client, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := c.do(ctx, "POST", "/v5/credentials/"+url.PathEscape(id)+"/secret", nil)
	if err != nil {
		t.Fatalf("decrypt %s: %v", id, err)
	}
	if r.Status != 200 {
		return fmt.Sprint(r.Status)
	}
	return r.str("result")
}
