package sgp_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// rawDB opens the vault's database directly, as an attacker with access to
// the storage (but not the master key) would. q rewrites '?' placeholders
// for the engine.
type rawDB struct {
	db     *sql.DB
	engine string
}

func openRaw(t *testing.T, v *vaulttest.Vault) *rawDB {
	t.Helper()
	db := v.RawDB(t)
	db.SetMaxOpenConns(1)
	return &rawDB{db: db, engine: v.Engine}
}

func (r *rawDB) q(query string) string {
	if r.engine != sqlstore.Postgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *rawDB) exec(t *testing.T, query string, args ...any) {
	t.Helper()
	res, err := r.db.ExecContext(context.Background(), r.q(query), args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("%s: %d rows affected, want 1", query, n)
	}
}

func (r *rawDB) ciphertext(t *testing.T, id string) []byte {
	t.Helper()
	var ct []byte
	if err := r.db.QueryRowContext(context.Background(), r.q(`SELECT ciphertext FROM credentials WHERE id = ?`), id).Scan(&ct); err != nil {
		t.Fatalf("read ciphertext of %s: %v", id, err)
	}
	return ct
}

func (r *rawDB) setCiphertext(t *testing.T, id string, ct []byte) {
	t.Helper()
	r.exec(t, `UPDATE credentials SET ciphertext = ? WHERE id = ?`, ct, id)
}

// wantUndecryptable checks that decrypting c by id and by name fails with a
// 409 integrity error (never a bare 500) that reveals none of the given
// plaintexts.
func wantUndecryptable(t *testing.T, a api, c credential, plaintexts ...string) {
	t.Helper()
	for _, path := range []string{
		"/v5/credentials/" + c.ID + "/secret",
		"/v5/credentials/name/" + pathName(c.Name) + "/secret",
	} {
		r := a.do(t, "POST", path, nil)
		if d := wantDetail(t, r, 409); !strings.Contains(d, "integrity check") {
			t.Errorf("POST %s: detail %q does not name the integrity failure", path, d)
		}
		for _, p := range plaintexts {
			notContains(t, "409 body", r.Body, p)
		}
	}
}

// TestCiphertextBinding: the associated data binds a ciphertext to its
// account, credential id and payload version. A ciphertext moved to another
// row, changed, or rolled back to an older version is rejected, never
// decrypted.
func TestCiphertextBinding(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		raw := openRaw(t, v)

		t.Run("err/moved-to-another-row", func(t *testing.T) {
			px, py := canary(t), canary(t)
			x := a.createNamed(t, "moved-x", px)
			y := a.createNamed(t, "moved-y", py)
			ctY := raw.ciphertext(t, y.ID)
			raw.setCiphertext(t, y.ID, raw.ciphertext(t, x.ID))

			wantUndecryptable(t, a, y, px, py)
			if s := a.decrypt(t, x.ID); s != px {
				t.Errorf("source credential decrypts to %q", s)
			}
			// The metadata is still served; only the secret is refused.
			if diff := cmp.Diff(y, a.get(t, y.ID)); diff != "" {
				t.Errorf("metadata (-want +got):\n%s", diff)
			}
			raw.setCiphertext(t, y.ID, ctY)
			if s := a.decrypt(t, y.ID); s != py {
				t.Errorf("restored ciphertext decrypts to %q, want %q", s, py)
			}
			logs := []byte(v.Logs())
			notContains(t, "server log", logs, px)
			notContains(t, "server log", logs, py)
			// An integrity failure is ours to fix, not the client's: ERROR.
			if !bytes.Contains(logs, []byte(`"level":"ERROR","msg":"request failed"`)) || !bytes.Contains(logs, []byte(`"kind":"integrity"`)) {
				t.Errorf("the integrity failure was not logged at ERROR with kind integrity:\n%s", logs)
			}
		})

		t.Run("err/moved-to-another-account", func(t *testing.T) {
			// The same row, id and all, copied into another account.
			other := v.NewTenant(t, "other", vault.RoleAdmin)
			px := canary(t)
			x := a.createNamed(t, "copied-row", px)
			raw.exec(t, `INSERT INTO credentials (account_id, id, name, type, description, metadata, created_by, created_by_kind, created_at, updated_at, version, ciphertext)
				SELECT ?, id, name, type, description, metadata, created_by, created_by_kind, created_at, updated_at, version, ciphertext
				FROM credentials WHERE account_id = ? AND id = ?`, other.AccountID, v.AccountID, x.ID)
			b := as(v, other)
			b.get(t, x.ID)                 // the copy is there…
			wantUndecryptable(t, b, x, px) // …but does not open.
			if s := a.decrypt(t, x.ID); s != px {
				t.Errorf("original decrypts to %q", s)
			}
		})

		t.Run("err/flipped-byte", func(t *testing.T) {
			p := canary(t)
			c := a.createNamed(t, "flipped", p)
			orig := raw.ciphertext(t, c.ID)
			// The length prefix, the wrapped data key, the payload nonce, the
			// payload ciphertext and the tag.
			for _, pos := range []int{0, 3, 4, 10, 40, len(orig) - 40, len(orig) - 17, len(orig) - 1} {
				ct := bytes.Clone(orig)
				ct[pos] ^= 0x01
				raw.setCiphertext(t, c.ID, ct)
				t.Run(fmt.Sprint(pos), func(t *testing.T) { wantUndecryptable(t, a, c, p) })
			}
			for _, ct := range [][]byte{orig[:len(orig)-1], append(bytes.Clone(orig), 0), {}, {0, 0, 0, 0}} {
				raw.setCiphertext(t, c.ID, ct)
				wantUndecryptable(t, a, c, p)
			}
			raw.setCiphertext(t, c.ID, orig)
			if s := a.decrypt(t, c.ID); s != p {
				t.Errorf("restored ciphertext decrypts to %q", s)
			}
		})

		t.Run("err/older-version-restored", func(t *testing.T) {
			p1, p2 := canary(t), canary(t)
			c := a.createNamed(t, "versioned", p1)
			ct1 := raw.ciphertext(t, c.ID)
			wantStatus(t, a.do(t, "PATCH", "/v5/credentials/"+c.ID, map[string]any{"payload": p2}), 200)
			ct2 := raw.ciphertext(t, c.ID)
			raw.setCiphertext(t, c.ID, ct1)
			wantUndecryptable(t, a, c, p1, p2)
			raw.setCiphertext(t, c.ID, ct2)
			if s := a.decrypt(t, c.ID); s != p2 {
				t.Errorf("current ciphertext decrypts to %q, want the new payload", s)
			}
		})
	})
}

// TestCanary: a payload written through the API never appears in plaintext
// in the database (for SQLite: the file, its WAL and shared memory; for
// PostgreSQL: every row of every table), the server log, the metrics, or any
// response other than the two decrypt endpoints.
func TestCanary(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		created, updated, inJSON, deletedC, rejected := canary(t), canary(t), canary(t), canary(t), canary(t)
		all := []string{created, updated, inJSON, deletedC, rejected}
		var responses [][]byte
		keep := func(r *vaulttest.Response) *vaulttest.Response { responses = append(responses, r.Body); return r }

		// Written via create and via update.
		c1 := a.createNamed(t, "canary-created", created)
		c2 := a.createNamed(t, "canary-updated", "short-lived")
		keep(a.do(t, "PATCH", "/v5/credentials/"+c2.ID, map[string]any{"payload": updated}))
		c3 := a.create(t, map[string]any{"type": "json", "name": "canary-json", "payload": `{"token":"` + inJSON + `"}`})
		c4 := a.createNamed(t, "canary-deleted", deletedC)
		keep(a.do(t, "DELETE", "/v5/credentials/"+c4.ID, nil))
		// Rejected requests carrying a payload.
		keep(a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-created", "payload": rejected}))
		keep(a.do(t, "POST", "/v5/credentials", map[string]any{"type": "json", "name": "canary-bad-json", "payload": rejected}))
		keep(a.do(t, "PATCH", "/v5/credentials/"+c1.ID, map[string]any{"name": "canary-updated", "payload": rejected}))
		keep(a.do(t, "POST", "/v5/credentials", `{"type":"key","name":"canary-broken","payload":"`+rejected+`"`))
		keep(a.do(t, "POST", "/v5/credentials", map[string]any{"type": "key", "name": "canary-huge", "payload": rejected + strings.Repeat("x", vault.DefaultMaxPayload)}))

		// Every non-secret read.
		for _, c := range []credential{c1, c2, c3} {
			keep(a.do(t, "GET", "/v5/credentials/"+c.ID, nil))
			keep(a.do(t, "GET", "/v5/credentials/name/"+pathName(c.Name), nil))
		}
		for _, q := range []string{"", "?sort_by=name", "?name=canary-created", "?limit=1"} {
			keep(a.do(t, "GET", "/v5/credentials"+q, nil))
		}
		// The secrets do come back from decrypt (and only there).
		for c, want := range map[string]string{c1.ID: created, c2.ID: updated, c3.ID: `{"token":"` + inJSON + `"}`} {
			if s := a.decrypt(t, c); s != want {
				t.Errorf("decrypt %s = %q, want %q", c, s, want)
			}
		}
		metrics := v.Do(t, "GET", "/metrics", nil)
		wantStatus(t, metrics, 200)

		t.Run("responses", func(t *testing.T) {
			for i, body := range responses {
				for _, s := range all {
					notContains(t, fmt.Sprintf("response %d", i), body, s)
				}
			}
		})

		t.Run("log", func(t *testing.T) {
			logs := []byte(v.Logs())
			if len(logs) == 0 {
				t.Fatal("the server logged nothing; the check would prove nothing")
			}
			for _, s := range all {
				notContains(t, "server log", logs, s)
			}
			notContains(t, "server log", logs, v.AdminKey)
		})

		t.Run("metrics", func(t *testing.T) {
			for _, s := range all {
				notContains(t, "metrics", metrics.Body, s)
			}
		})

		t.Run("database", func(t *testing.T) {
			// SQLite: the database file, its -wal and -shm; PostgreSQL:
			// every row of every table as text plus the raw bytea columns.
			stored := v.DatabaseBytes(t)
			for _, s := range all {
				notContains(t, "the stored database", stored, s)
			}
			// The store holds the (unencrypted) metadata: the check reads
			// the right bytes.
			for _, name := range []string{c1.Name, c2.Name, c3.Name} {
				if !bytes.Contains(stored, []byte(name)) {
					t.Errorf("credential name %q not found in the stored database: wrong database?", name)
				}
			}
		})
	})
}

// TestDecryptFromCachedRow: a decrypt may open the cached row (ciphertext
// only), so a row changed in the database behind the server's back is seen
// within sqlstore.RevocationBound, not at once — but never wrongly: until
// then the decrypt returns the payload that was genuinely stored (the cached
// copy still opens under its own id and version), and from then on the
// tampered row is refused as an integrity failure. The other direction —
// a cached row that no longer opens while the database's does — is read
// again at once (TestCiphertextBinding "older-version-restored").
func TestDecryptFromCachedRow(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		raw := openRaw(t, v)
		px, py := canary(t), canary(t)
		x := a.createNamed(t, "cached-x", px)
		y := a.createNamed(t, "cached-y", py)
		for range 2 { // the first read fills the cache, the second uses it
			if s := a.decrypt(t, x.ID); s != px {
				t.Fatalf("decrypt = %q, want %q", s, px)
			}
		}
		raw.setCiphertext(t, x.ID, raw.ciphertext(t, y.ID))

		deadline := time.Now().Add(sqlstore.RevocationBound + 2*time.Second)
		for {
			r := a.do(t, "POST", "/v5/credentials/"+x.ID+"/secret", nil)
			if r.Status == 409 {
				if d := wantDetail(t, r, 409); !strings.Contains(d, "integrity check") {
					t.Fatalf("detail %q does not name the integrity failure", d)
				}
				notContains(t, "409 body", r.Body, py)
				break
			}
			var got struct{ Result string }
			if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || got.Result != px {
				t.Fatalf("decrypt of a row tampered behind the cache: %d %s, want the stored payload or 409", r.Status, r.Body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("tampered row still served from the cache %v after the change", sqlstore.RevocationBound+2*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
