package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/storetest"
	"github.com/credvault/credvault/internal/testutil/cryptotest"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/vault"
)

// newDSN returns the address of a fresh, empty database on engine: a
// SQLite file in a temp dir, or a new PostgreSQL database.
func newDSN(tb testing.TB, engine string) string {
	tb.Helper()
	if engine == Postgres {
		return pgtest.URL(tb)
	}
	return tb.TempDir() + "/s.db"
}

// openDB opens a fresh, empty, migrated database on engine (newDSN),
// closed when the test ends.
func openDB(tb testing.TB, engine string) *DB {
	tb.Helper()
	db, err := Open(context.Background(), newDSN(tb, engine))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// newAccount creates an account named "a", created at now, in db.
func newAccount(tb testing.TB, db *DB, now time.Time) *vault.Account {
	tb.Helper()
	acct := &vault.Account{ID: vault.NewID(), Name: "a", CreatedAt: now}
	if err := db.CreateAccount(context.Background(), acct); err != nil {
		tb.Fatal(err)
	}
	return acct
}

// seedCredentials stores n credentials in a new account of db: credential
// i is made by row from one with its ids, type "key", metadata {}, version
// 1, a ciphertext, and created and updated at base (a time in the test's
// present, to the microsecond). It returns the account and the credentials.
func seedCredentials(tb testing.TB, db *DB, n int, row func(i int, c *vault.Credential)) (*vault.Account, []*vault.Credential) {
	tb.Helper()
	base := time.Now().UTC().Truncate(time.Microsecond)
	acct := newAccount(tb, db, base)
	cs := make([]*vault.Credential, n)
	for i := range cs {
		cs[i] = &vault.Credential{AccountID: acct.ID, ID: vault.NewID(), Type: "key", Metadata: []byte("{}"),
			CreatedAt: base, UpdatedAt: base, Version: 1, Ciphertext: []byte{1}}
		row(i, cs[i])
	}
	if err := db.CreateCredentials(context.Background(), cs); err != nil {
		tb.Fatal(err)
	}
	return acct, cs
}

// newService returns a vault service on db with a fresh keyring,
// bootstrapped, and the identity of its first admin's API key.
func newService(t *testing.T, db *DB) (*vault.Service, *vault.Identity) {
	t.Helper()
	ctx := context.Background()
	kr, _ := cryptotest.NewKeyring(t)
	svc := vault.NewService(db, kr, vault.Options{})
	boot, err := svc.Bootstrap(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	id, err := svc.Authenticate(ctx, boot.APIKey, "")
	if err != nil {
		t.Fatal(err)
	}
	return svc, id
}

// newGroups creates a group of each name in the account accountID of db,
// created at now by user "u", and returns their ids in the same order.
func newGroups(tb testing.TB, db *DB, accountID string, now time.Time, names ...string) []string {
	tb.Helper()
	ids := make([]string, len(names))
	for i, name := range names {
		g := &vault.Group{ID: vault.NewID(), AccountID: accountID, Name: name, Creator: vault.Creator{Kind: vault.PrincipalUser, ID: "u"}, CreatedAt: now, UpdatedAt: now}
		if err := db.CreateGroup(context.Background(), g); err != nil {
			tb.Fatal(err)
		}
		ids[i] = g.ID
	}
	return ids
}

// openEngine is openDB as storetest.Run's open function.
func openEngine(engine string) func(t *testing.T) store.Engine {
	return func(t *testing.T) store.Engine { return openDB(t, engine) }
}

// TestConformance runs the store contract on every engine of this package.
func TestConformance(t *testing.T) {
	t.Run(SQLite, func(t *testing.T) { storetest.Run(t, openEngine(SQLite)) })
	t.Run(Postgres, func(t *testing.T) { storetest.Run(t, openEngine(Postgres)) })
}
