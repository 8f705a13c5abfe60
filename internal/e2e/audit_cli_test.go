package e2e

import (
	"bufio"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// TestAdminChangesAudited runs the real binary's administrative commands
// and checks that every change of who-can-do-what is in the audit trail,
// as the named operator "operator:cli:<OS user>", that a change whose
// record cannot be written is refused and not made, and that serve's
// checkpoints (--audit-anchor-file) verify and catch an edited anchor.
func TestAdminChangesAudited(t *testing.T) {
	for _, engine := range []string{"sqlite", "postgres"} {
		t.Run(engine, func(t *testing.T) {
			wantEngine(t, engine)
			dbURL := newDatabase(t, engine)
			dataDir := t.TempDir()
			anchors := filepath.Join(t.TempDir(), "anchors.jsonl")
			p := start(t, engine+"-serve", server{DatabaseURL: dbURL, DataDir: dataDir, BootstrapKey: newBootstrapKey(),
				Args: []string{"--audit-anchor-file", anchors, "--audit-checkpoint-interval", "50ms"}})
			// The bootstrap record moved the head: a checkpoint of it follows
			// (one of the empty trail may come first, if the first tick beat
			// the bootstrap).
			deadline := time.Now().Add(20 * time.Second)
			for tick := time.NewTicker(20 * time.Millisecond); ; <-tick.C {
				if b, _ := os.ReadFile(anchors); regexp.MustCompile(`"seq":[1-9]`).Match(b) {
					tick.Stop()
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no checkpoint in the anchor file")
				}
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			if _, err := p.wait(30 * time.Second); err != nil {
				t.Fatal(err)
			}

			cli := func(wantOK bool, args ...string) string {
				t.Helper()
				out, errOut, code := runCLI(t, time.Minute, nil, append(args, "--data-dir", dataDir, "--database-url", dbURL)...)
				if (code == 0) != wantOK {
					t.Fatalf("credvault %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
				}
				return out + errOut
			}
			id := func(out string) string {
				t.Helper()
				m := uuidRE.FindString(out)
				if m == "" {
					t.Fatalf("no id in %q", out)
				}
				return m
			}
			acct := id(cli(true, "account", "create", "acme"))
			pr := id(cli(true, "principal", "create", "bob", "--account", acct, "--kind", "service_account"))
			cli(true, "principal", "grant", pr, acct, "--role", "reader")
			key := id(cli(true, "apikey", "create", pr, "--name", "ci"))
			cli(true, "apikey", "revoke", key)

			u, err := user.Current()
			if err != nil {
				t.Fatal(err)
			}
			operator := "operator:cli:" + u.Username
			type rec struct {
				Action, ObjectID, PrincipalID, PrincipalKind, Outcome, AccountID string
			}
			var recs []rec
			sc := bufio.NewScanner(strings.NewReader(cli(true, "audit", "export")))
			for sc.Scan() {
				var r struct {
					Action        string `json:"action"`
					ObjectID      string `json:"object_id"`
					PrincipalID   string `json:"principal_id"`
					PrincipalKind string `json:"principal_kind"`
					Outcome       string `json:"outcome"`
					AccountID     string `json:"account_id"`
				}
				if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
					t.Fatalf("export line %q: %v", sc.Text(), err)
				}
				recs = append(recs, rec(r))
			}
			want := []rec{
				{"account.create", acct, operator, "operator", "success", acct},
				{"principal.create", pr, operator, "operator", "success", acct},
				{"membership.put", pr, operator, "operator", "success", acct},
				{"api_key.create", key, operator, "operator", "success", acct},
				{"api_key.revoke", key, operator, "operator", "success", ""},
			}
			if len(recs) < 1+len(want) || recs[0].Action != "vault.bootstrap" || recs[0].PrincipalID != "operator:bootstrap" {
				t.Fatalf("trail: %+v", recs)
			}
			if got := recs[len(recs)-len(want):]; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("administrative records:\n got %+v\nwant %+v", got, want)
			}

			// Verify: intact, authenticated head, the checkpoints hold.
			out := cli(true, "audit", "verify", "--anchor-file", anchors)
			if !strings.Contains(out, "authenticated: true") || !strings.Contains(out, "audit trail intact") {
				t.Fatalf("verify: %s", out)
			}
			anchor := regexp.MustCompile(`anchor: (\d+:[0-9a-f]+)`).FindStringSubmatch(out)
			if anchor == nil {
				t.Fatalf("no anchor printed: %s", out)
			}
			cli(true, "audit", "verify", "--expect-head", anchor[1])
			cli(false, "audit", "verify", "--expect-head", "999:"+strings.Repeat("ab", 32))

			// An edited checkpoint is caught.
			b, err := os.ReadFile(anchors)
			if err != nil {
				t.Fatal(err)
			}
			edited := filepath.Join(t.TempDir(), "edited.jsonl")
			if err := os.WriteFile(edited, []byte(strings.Replace(string(b), `"seq":1`, `"seq":2`, 1)), 0o600); err != nil {
				t.Fatal(err)
			}
			if out := cli(false, "audit", "verify", "--anchor-file", edited); !strings.Contains(out, "MAC does not verify") {
				t.Fatalf("edited anchor: %s", out)
			}

			// Fail closed: with the trail's insert failing in the database,
			// no key is created.
			driver := map[string]string{"sqlite": "sqlite", "postgres": "pgx"}[engine]
			raw, err := sql.Open(driver, dbURL)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()

			// An unauthenticated head (its MAC removed, or an older version's
			// trail) fails verify and refuses changes until the operator
			// seals it.
			if _, err := raw.Exec(`UPDATE audit_head SET mac = NULL`); err != nil {
				t.Fatal(err)
			}
			if out := cli(false, "audit", "verify"); !strings.Contains(out, "not authenticated") {
				t.Fatalf("verify of an unauthenticated head: %s", out)
			}
			cli(false, "account", "create", "refused-while-unsealed")
			cli(true, "audit", "seal-head")
			cli(true, "audit", "verify", "--expect-head", anchor[1])
			cli(true, "account", "create", "after-seal")

			if engine == "sqlite" {
				_, err = raw.Exec(`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`)
			} else {
				_, err = raw.Exec(`CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
					CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION refuse_audit()`)
			}
			if err != nil {
				t.Fatal(err)
			}
			cli(false, "apikey", "create", pr, "--name", "refused")
			var n int
			if err := raw.QueryRow(`SELECT COUNT(*) FROM api_keys WHERE name = 'refused'`).Scan(&n); err != nil || n != 0 {
				t.Fatalf("a key whose audit record failed was created (%d, %v)", n, err)
			}
		})
	}
}
