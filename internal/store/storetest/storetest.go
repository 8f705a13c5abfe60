// Package storetest is the contract of a credvault storage engine: Run
// exercises every method of store.Engine (vault.Store and the binary's
// capabilities) against a real database, in the manner of Litestream's
// replica-client tests and OpenBao's physical-backend tests. Each engine's
// own tests call it, one line per engine:
//
//	func TestConformance(t *testing.T) { storetest.Run(t, openSQLite) }
//
// so a new engine is a package plus that line. open must return a fresh,
// empty, migrated database each time it is called and close it when the
// test ends.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

// Run runs the conformance suite; open returns a fresh empty engine.
func Run(t *testing.T, open func(t *testing.T) store.Engine) {
	for _, c := range []struct {
		name string
		fn   func(t *testing.T, s store.Engine)
	}{
		{"Accounts", testAccounts},
		{"AccountChanges", testAccountChanges},
		{"APIKeys", testAPIKeys},
		{"Meta", testMeta},
		{"Credentials", testCredentials},
		{"CredentialsList", testCredentialsList},
		{"CredentialsBulk", testCredentialsBulk},
		{"CredentialsConcurrent", testCredentialsConcurrent},
		{"CredentialsListUnderDeletes", testCredentialsListUnderDeletes},
		{"Audit", testAudit},
		{"Groups", testGroups},
		{"Sobjects", testSobjects},
		{"Capabilities", testCapabilities},
		{"BackupRestore", func(t *testing.T, s store.Engine) { testBackupRestore(t, s, open(t)) }},
		{"Rewrap", testRewrap},
		{"RekeyJobs", testRekeyJobs},
		{"ConsoleSessions", testConsoleSessions},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// at is a fixed time at the precision every engine keeps (microseconds).
var at = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// wantKind checks err's kind (errors.As a *vault.Error). Not-found is
// checked with errors.Is(err, vault.ErrNotFound): stores return that
// sentinel.
func wantKind(t *testing.T, what string, err error, kind vault.Kind) {
	t.Helper()
	if vault.KindOf(err) != kind {
		t.Fatalf("%s: got %v (kind %v), want kind %v", what, err, vault.KindOf(err), kind)
	}
}

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// seed creates an account with an admin principal and returns both ids.
func seed(t *testing.T, s store.Engine, name string) (accountID, principalID string) {
	t.Helper()
	ctx := context.Background()
	a := &vault.Account{ID: vault.NewID(), Name: name, CreatedAt: at}
	must(t, "create account", s.CreateAccount(ctx, a))
	p := &vault.Principal{ID: vault.NewID(), Kind: vault.PrincipalUser, Name: name + "-admin", DefaultAccountID: a.ID, CreatedAt: at}
	must(t, "create principal", s.CreatePrincipal(ctx, p, []vault.Membership{{PrincipalID: p.ID, AccountID: a.ID, Role: vault.RoleAdmin}}))
	return a.ID, p.ID
}

func testAccounts(t *testing.T, s store.Engine) {
	ctx := context.Background()
	empty, err := s.IsEmpty(ctx)
	must(t, "is empty", err)
	if !empty {
		t.Fatal("a new store is not empty")
	}
	if _, err := s.GetAccount(ctx, vault.NewID()); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing account: %v, want ErrNotFound", err)
	}
	acct, pid := seed(t, s, "one")
	if empty, _ := s.IsEmpty(ctx); empty {
		t.Fatal("a store with an account is empty")
	}
	got, err := s.GetAccount(ctx, acct)
	must(t, "get account", err)
	if got.ID != acct || got.Name != "one" || !got.CreatedAt.Equal(at) {
		t.Errorf("account = %+v", got)
	}
	wantKind(t, "duplicate account", s.CreateAccount(ctx, &vault.Account{ID: acct, Name: "again", CreatedAt: at}), vault.KindConflict)
	other, _ := seed(t, s, "two")
	as, err := s.ListAccounts(ctx)
	must(t, "list accounts", err)
	ids := []string{}
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	if len(ids) != 2 || !slices.Contains(ids, acct) || !slices.Contains(ids, other) {
		t.Errorf("accounts = %v", ids)
	}

	p, err := s.GetPrincipal(ctx, pid)
	must(t, "get principal", err)
	if p.Name != "one-admin" || p.Kind != vault.PrincipalUser || p.DefaultAccountID != acct {
		t.Errorf("principal = %+v", p)
	}
	if _, err := s.GetPrincipal(ctx, vault.NewID()); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("missing principal: %v", err)
	}
	ps, err := s.ListPrincipals(ctx)
	must(t, "list principals", err)
	if len(ps) != 2 {
		t.Errorf("principals = %d, want 2", len(ps))
	}
	// PutMembership adds, then replaces.
	must(t, "add membership", s.PutMembership(ctx, vault.Membership{PrincipalID: pid, AccountID: other, Role: vault.RoleReader}))
	must(t, "replace membership", s.PutMembership(ctx, vault.Membership{PrincipalID: pid, AccountID: other, Role: vault.RoleWriter}))
	ms, err := s.ListMemberships(ctx, pid)
	must(t, "list memberships", err)
	roles := map[string]vault.Role{}
	for _, m := range ms {
		roles[m.AccountID] = m.Role
	}
	if len(ms) != 2 || roles[acct] != vault.RoleAdmin || roles[other] != vault.RoleWriter {
		t.Errorf("memberships = %+v", ms)
	}
}

func testAccountChanges(t *testing.T, s store.Engine) {
	ctx := context.Background()
	a := vault.Account{ID: vault.NewID(), Name: "boot", CreatedAt: at}
	p := vault.Principal{ID: vault.NewID(), Kind: vault.PrincipalUser, Name: "admin", DefaultAccountID: a.ID, CreatedAt: at}
	k := vault.APIKey{ID: vault.NewID(), PrincipalID: p.ID, Name: "boot", Hash: []byte("hash-boot-0123456789abcdef012345"), CreatedAt: at}
	ch := vault.AccountChanges{RequireEmpty: true, Accounts: []vault.Account{a}, Principals: []vault.Principal{p},
		Memberships: []vault.Membership{{PrincipalID: p.ID, AccountID: a.ID, Role: vault.RoleAdmin}}, APIKeys: []vault.APIKey{k},
		Meta: map[string][]byte{"boot-check": []byte("v1")}}
	must(t, "apply", s.ApplyAccountChanges(ctx, ch))
	if rec, err := s.LookupAPIKey(ctx, k.Hash, ""); err != nil || rec.Role != vault.RoleAdmin || rec.AccountID != a.ID {
		t.Fatalf("lookup after apply: %+v %v", rec, err)
	}
	// RequireEmpty refuses a second bootstrap.
	ch2 := vault.AccountChanges{RequireEmpty: true, Accounts: []vault.Account{{ID: vault.NewID(), Name: "second", CreatedAt: at}}}
	wantKind(t, "second bootstrap", s.ApplyAccountChanges(ctx, ch2), vault.KindConflict)
	// All or nothing: a clash in the last item leaves the first unstored.
	fresh := vault.Account{ID: vault.NewID(), Name: "fresh", CreatedAt: at}
	bad := vault.AccountChanges{Accounts: []vault.Account{fresh}, APIKeys: []vault.APIKey{k}}
	wantKind(t, "clashing changes", s.ApplyAccountChanges(ctx, bad), vault.KindConflict)
	if _, err := s.GetAccount(ctx, fresh.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("a refused change left its account behind: %v", err)
	}
	// Meta values are set only if unset.
	must(t, "apply meta", s.ApplyAccountChanges(ctx, vault.AccountChanges{Meta: map[string][]byte{"boot-check": []byte("v2")}}))
	if v, err := s.GetMeta(ctx, "boot-check"); err != nil || string(v) != "v1" {
		t.Fatalf("meta after a second set: %q %v", v, err)
	}
}

func testAPIKeys(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "keys")
	other, _ := seed(t, s, "other")
	exp := at.Add(time.Hour)
	k := &vault.APIKey{ID: vault.NewID(), PrincipalID: pid, Name: "ci", Hash: bytes.Repeat([]byte{7}, 32), CreatedAt: at, ExpiresAt: &exp}
	must(t, "create key", s.CreateAPIKey(ctx, k))
	wantKind(t, "duplicate key id", s.CreateAPIKey(ctx, &vault.APIKey{ID: k.ID, PrincipalID: pid, Name: "dup", Hash: bytes.Repeat([]byte{8}, 32), CreatedAt: at}), vault.KindConflict)
	rec, err := s.LookupAPIKey(ctx, k.Hash, "")
	must(t, "lookup", err)
	if rec.Key.ID != k.ID || rec.Principal.ID != pid || rec.AccountID != acct || rec.Role != vault.RoleAdmin || rec.Key.ExpiresAt == nil || !rec.Key.ExpiresAt.Equal(exp) {
		t.Errorf("auth record = %+v", rec)
	}
	// A selected account the principal is not a member of: no role.
	rec, err = s.LookupAPIKey(ctx, k.Hash, other)
	must(t, "lookup other account", err)
	if rec.AccountID != other || rec.Role != "" {
		t.Errorf("auth record for a foreign account = %+v", rec)
	}
	if _, err := s.LookupAPIKey(ctx, bytes.Repeat([]byte{9}, 32), ""); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("unknown hash: %v, want ErrNotFound", err)
	}
	must(t, "touch", s.TouchAPIKey(ctx, k.ID, at.Add(time.Minute)))
	ks, err := s.ListAPIKeys(ctx, pid)
	must(t, "list keys", err)
	if len(ks) != 1 || ks[0].LastUsedAt == nil || !ks[0].LastUsedAt.Equal(at.Add(time.Minute)) {
		t.Fatalf("keys = %+v", ks)
	}
	// The core caches authentication under the store's generation: a store
	// that vouches for it must move it before a revocation returns, or the
	// revoked key would keep authenticating from the cache.
	before, vouched := s.AuthGeneration()
	must(t, "revoke", s.RevokeAPIKey(ctx, k.ID, at.Add(2*time.Minute)))
	if after, ok := s.AuthGeneration(); vouched && ok && after == before {
		t.Errorf("auth generation %d unchanged by a revocation", after)
	}
	if err := s.RevokeAPIKey(ctx, k.ID, at.Add(3*time.Minute)); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("second revoke: %v, want ErrNotFound", err)
	}
	if err := s.RevokeAPIKey(ctx, vault.NewID(), at); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("revoke unknown: %v, want ErrNotFound", err)
	}
	rec, err = s.LookupAPIKey(ctx, k.Hash, "")
	must(t, "lookup revoked", err)
	if rec.Key.RevokedAt == nil || !rec.Key.RevokedAt.Equal(at.Add(2*time.Minute)) {
		t.Errorf("revoked key = %+v", rec.Key)
	}
}

func testMeta(t *testing.T, s store.Engine) {
	ctx := context.Background()
	if _, err := s.GetMeta(ctx, "k"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("unset meta: %v, want ErrNotFound", err)
	}
	if set, err := s.PutMeta(ctx, "k", []byte{0, 1, 2}); err != nil || !set {
		t.Fatalf("first put: %v %v", set, err)
	}
	if set, err := s.PutMeta(ctx, "k", []byte("other")); err != nil || set {
		t.Fatalf("second put: %v %v", set, err)
	}
	if v, err := s.GetMeta(ctx, "k"); err != nil || !bytes.Equal(v, []byte{0, 1, 2}) {
		t.Fatalf("meta = %v %v", v, err)
	}
}

func newCredential(acct, pid, name string, i int) *vault.Credential {
	t := at.Add(time.Duration(i) * time.Second)
	return &vault.Credential{ID: vault.NewID(), AccountID: acct, Name: name, Type: "key", Description: "d",
		Metadata: json.RawMessage(`{"i":` + fmt.Sprint(i) + `}`), CreatedBy: pid, CreatedByKind: vault.PrincipalUser,
		CreatedAt: t, UpdatedAt: t, Version: 1, Ciphertext: []byte("sealed-" + name)}
}

func testCredentials(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "creds")
	other, _ := seed(t, s, "other")
	c := newCredential(acct, pid, "alpha", 0)
	must(t, "create", s.CreateCredential(ctx, c))
	wantKind(t, "duplicate name", s.CreateCredential(ctx, newCredential(acct, pid, "alpha", 1)), vault.KindConflict)
	// Names are unique per account only.
	must(t, "same name in another account", s.CreateCredential(ctx, newCredential(other, pid, "alpha", 1)))
	got, err := s.GetCredential(ctx, acct, c.ID)
	must(t, "get", err)
	if got.Name != "alpha" || string(got.Ciphertext) != "sealed-alpha" || got.Version != 1 || string(got.Metadata) != `{"i":0}` || !got.CreatedAt.Equal(c.CreatedAt) {
		t.Errorf("credential = %+v", got)
	}
	if _, err := s.GetCredential(ctx, other, c.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("another account's credential: %v, want ErrNotFound", err)
	}
	if g, err := s.GetCredentialByName(ctx, acct, "alpha"); err != nil || g.ID != c.ID {
		t.Fatalf("by name: %+v %v", g, err)
	}
	if _, err := s.GetCredentialByName(ctx, acct, "nope"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("unknown name: %v", err)
	}

	// Update: fn's result is written; fn's error rolls everything back.
	up, err := s.UpdateCredential(ctx, acct, c.ID, func(c *vault.Credential) error {
		c.Description, c.Version, c.Ciphertext, c.UpdatedAt = "new", 2, []byte("sealed-v2"), at.Add(time.Hour)
		return nil
	})
	must(t, "update", err)
	if up.Description != "new" || up.Version != 2 {
		t.Errorf("updated = %+v", up)
	}
	boom := errors.New("boom")
	_, err = s.UpdateCredential(ctx, acct, c.ID, func(c *vault.Credential) error {
		c.Description = "lost"
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("update whose fn fails: %v, want fn's error", err)
	}
	if g, _ := s.GetCredential(ctx, acct, c.ID); g.Description != "new" || string(g.Ciphertext) != "sealed-v2" {
		t.Fatalf("a failed update changed the credential: %+v", g)
	}
	b := newCredential(acct, pid, "beta", 2)
	must(t, "create beta", s.CreateCredential(ctx, b))
	_, err = s.UpdateCredential(ctx, acct, b.ID, func(c *vault.Credential) error { c.Name = "alpha"; return nil })
	wantKind(t, "rename onto a taken name", err, vault.KindConflict)
	if _, err := s.UpdateCredential(ctx, acct, vault.NewID(), func(*vault.Credential) error { return nil }); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("update unknown: %v, want ErrNotFound", err)
	}

	must(t, "delete", s.DeleteCredential(ctx, acct, c.ID))
	if _, err := s.GetCredential(ctx, acct, c.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	if err := s.DeleteCredential(ctx, acct, c.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
	// The name is free again.
	must(t, "reuse a deleted name", s.CreateCredential(ctx, newCredential(acct, pid, "alpha", 3)))
}

func ids(cs []vault.Credential) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Name
	}
	return out
}

func testCredentialsList(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "list")
	other, _ := seed(t, s, "other")
	var names []string
	for i := 0; i < 7; i++ {
		name := fmt.Sprintf("c%d", i)
		names = append(names, name)
		must(t, "create", s.CreateCredential(ctx, newCredential(acct, pid, name, i)))
	}
	must(t, "create elsewhere", s.CreateCredential(ctx, newCredential(other, pid, "elsewhere", 0)))

	all, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 100, SortBy: vault.SortCreatedAt})
	must(t, "list", err)
	if got := ids(all.Items); !slices.Equal(got, names) || all.Total != 7 || all.HasMore {
		t.Fatalf("list = %v total %d more %v", got, all.Total, all.HasMore)
	}
	for _, c := range all.Items {
		if c.Ciphertext != nil {
			t.Fatal("a listing carries ciphertext")
		}
	}
	// Forward pages of 3 with the last id as cursor.
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 3, After: cursor, SortBy: vault.SortCreatedAt})
		must(t, "page", err)
		got = append(got, ids(p.Items)...)
		if !p.HasMore {
			break
		}
		cursor = p.Items[len(p.Items)-1].ID
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if !slices.Equal(got, names) {
		t.Fatalf("paged forward = %v", got)
	}
	// Backwards from the end: the page before c6 is c3..c5, in list order.
	p, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 3, Before: all.Items[6].ID, SortBy: vault.SortCreatedAt})
	must(t, "page back", err)
	if g := ids(p.Items); !slices.Equal(g, []string{"c3", "c4", "c5"}) || !p.HasMore {
		t.Fatalf("page before c6 = %v more %v", g, p.HasMore)
	}
	// Descending by name.
	p, err = s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 2, SortBy: vault.SortName, Desc: true})
	must(t, "desc", err)
	if g := ids(p.Items); !slices.Equal(g, []string{"c6", "c5"}) {
		t.Fatalf("desc by name = %v", g)
	}
	// Exact-name filter.
	name := "c4"
	p, err = s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 10, Name: &name, SortBy: vault.SortCreatedAt})
	must(t, "filter", err)
	if g := ids(p.Items); !slices.Equal(g, []string{"c4"}) || p.Total != 1 {
		t.Fatalf("name filter = %v total %d", g, p.Total)
	}
	// A deleted credential's id keeps working as a cursor (tombstone).
	must(t, "delete cursor", s.DeleteCredential(ctx, acct, all.Items[2].ID))
	p, err = s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 2, After: all.Items[2].ID, SortBy: vault.SortCreatedAt})
	must(t, "after a deleted cursor", err)
	if g := ids(p.Items); !slices.Equal(g, []string{"c3", "c4"}) {
		t.Fatalf("after deleted c2 = %v", g)
	}
	// An unknown cursor, or another account's id, is invalid input.
	_, err = s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 2, After: vault.NewID(), SortBy: vault.SortCreatedAt})
	wantKind(t, "unknown cursor", err, vault.KindInvalid)
	foreign, _ := s.GetCredentialByName(ctx, other, "elsewhere")
	_, err = s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 2, Before: foreign.ID, SortBy: vault.SortCreatedAt})
	wantKind(t, "another account's cursor", err, vault.KindInvalid)
}

func testCredentialsBulk(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "bulk")
	var cs []*vault.Credential
	for i := 0; i < 50; i++ {
		cs = append(cs, newCredential(acct, pid, fmt.Sprint("b", i), i))
	}
	must(t, "bulk create", s.CreateCredentials(ctx, cs))
	// A clash anywhere stores none of the batch.
	clash := []*vault.Credential{newCredential(acct, pid, "fresh", 0), newCredential(acct, pid, "b7", 1)}
	wantKind(t, "bulk clash", s.CreateCredentials(ctx, clash), vault.KindConflict)
	if _, err := s.GetCredentialByName(ctx, acct, "fresh"); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("a refused batch left a credential behind: %v", err)
	}
	p, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 1, SortBy: vault.SortID})
	must(t, "list", err)
	if p.Total != 50 {
		t.Fatalf("total = %d, want 50", p.Total)
	}
}

// testCredentialsConcurrent: concurrent creates all land, and concurrent
// read-modify-write updates lose none.
func testCredentialsConcurrent(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "conc")
	c := newCredential(acct, pid, "counter", 0)
	must(t, "create", s.CreateCredential(ctx, c))
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if err := s.CreateCredential(ctx, newCredential(acct, pid, fmt.Sprintf("w%d-%d", w, i), i)); err != nil {
					errs <- err
				}
				if _, err := s.UpdateCredential(ctx, acct, c.ID, func(c *vault.Credential) error { c.Version++; return nil }); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: %v", err)
	}
	got, err := s.GetCredential(ctx, acct, c.ID)
	must(t, "get", err)
	if got.Version != 1+workers*each {
		t.Errorf("version = %d after %d concurrent increments, want %d", got.Version, workers*each, 1+workers*each)
	}
	p, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: 1, SortBy: vault.SortID})
	must(t, "list", err)
	if p.Total != 1+workers*each {
		t.Errorf("total = %d, want %d", p.Total, 1+workers*each)
	}
}

// testCredentialsListUnderDeletes lists pages while another goroutine
// deletes the rows: every page is in order, has no duplicates and no row
// that was never created, and is never short while it says there is more
// (a store that reads a page in two steps must not lose a row deleted
// between them).
func testCredentialsListUnderDeletes(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "deletes")
	const n, limit = 300, 40
	var all []*vault.Credential
	names := map[string]bool{}
	for i := range n {
		c := newCredential(acct, pid, fmt.Sprintf("d%03d", i), i)
		all = append(all, c)
		names[c.Name] = true
	}
	must(t, "bulk create", s.CreateCredentials(ctx, all))
	for _, c := range all[:n/2] { // half the rows are read (and may be cached) before the deletes
		_, err := s.GetCredential(ctx, acct, c.ID)
		must(t, "get", err)
	}
	done := make(chan error, 1)
	go func() {
		for i := n - 1; i >= 0; i -= 3 {
			if err := s.DeleteCredential(ctx, acct, all[(i*7)%n].ID); err != nil && !errors.Is(err, vault.ErrNotFound) {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for pages := 0; ; pages++ {
		p, err := s.ListCredentials(ctx, acct, vault.CredentialQuery{Limit: limit, SortBy: vault.SortName})
		must(t, "list", err)
		if p.HasMore && len(p.Items) != limit {
			t.Fatalf("page %d: %d items with has_more, want %d", pages, len(p.Items), limit)
		}
		for i, c := range p.Items {
			if !names[c.Name] || len(c.Ciphertext) != 0 {
				t.Fatalf("page %d: item %+v was never created, or carries ciphertext", pages, c)
			}
			if i > 0 && p.Items[i-1].Name >= c.Name {
				t.Fatalf("page %d: %q before %q", pages, p.Items[i-1].Name, c.Name)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("delete: %v", err)
			}
			return
		default:
		}
	}
}

// appendEvents appends evs as a chain (the hash is a stand-in: the store
// keeps what it is given; internal/audit computes real ones).
func appendEvents(ctx context.Context, s store.Engine, evs ...vault.AuditEvent) error {
	return s.AppendAudit(ctx, func(head vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
		var recs []vault.AuditRecord
		prev := append([]byte{}, head.Hash...)
		for i, ev := range evs {
			seq := head.Seq + int64(i) + 1
			h := []byte(fmt.Sprintf("hash-%d", seq))
			recs = append(recs, vault.AuditRecord{AuditEvent: ev, Seq: seq, ID: vault.AuditRecordID(seq), PrevHash: prev, Hash: h})
			prev = h
		}
		return recs, vault.AuditHead{Seq: head.Seq + int64(len(evs)), Hash: prev}, nil
	})
}

func testAudit(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "audit")
	head, err := s.AuditHead(ctx)
	must(t, "head of an empty trail", err)
	if head.Seq != 0 || len(head.Hash) != 0 {
		t.Fatalf("empty head = %+v", head)
	}
	ev := func(i int, obj string) vault.AuditEvent {
		return vault.AuditEvent{Time: at.Add(time.Duration(i) * time.Second), AccountID: acct, PrincipalID: pid, PrincipalKind: vault.PrincipalUser,
			Action: "credential.create", ObjectType: "credential", ObjectID: obj, Outcome: "success", RequestID: fmt.Sprint("r", i)}
	}
	must(t, "append", appendEvents(ctx, s, ev(1, "a"), ev(2, "b")))
	must(t, "append more", appendEvents(ctx, s, ev(3, "a")))
	// A failing build appends nothing.
	boom := errors.New("boom")
	err = s.AppendAudit(ctx, func(vault.AuditHead) ([]vault.AuditRecord, vault.AuditHead, error) {
		return nil, vault.AuditHead{}, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("failing build: %v", err)
	}
	head, err = s.AuditHead(ctx)
	must(t, "head", err)
	if head.Seq != 3 || string(head.Hash) != "hash-3" {
		t.Fatalf("head = %+v", head)
	}
	recs, err := s.ListAudit(ctx, vault.AuditQuery{AccountID: acct, Limit: 10})
	must(t, "list", err)
	if len(recs) != 3 || recs[0].Seq != 3 || recs[2].Seq != 1 || recs[0].RequestID != "r3" || !recs[0].Time.Equal(at.Add(3*time.Second)) {
		t.Fatalf("newest first: %+v", recs)
	}
	recs, err = s.ListAudit(ctx, vault.AuditQuery{AccountID: acct, ObjectID: "a", Limit: 10})
	must(t, "list by object", err)
	if len(recs) != 2 {
		t.Fatalf("records about a: %d", len(recs))
	}
	recs, err = s.ListAudit(ctx, vault.AuditQuery{AccountID: acct, BeforeSeq: 3, Limit: 1})
	must(t, "list before", err)
	if len(recs) != 1 || recs[0].Seq != 2 {
		t.Fatalf("before seq 3, limit 1: %+v", recs)
	}
	var seqs []int64
	must(t, "scan", s.ScanAudit(ctx, func(r vault.AuditRecord) error {
		if r.Seq > 1 && string(r.PrevHash) != fmt.Sprintf("hash-%d", r.Seq-1) {
			t.Errorf("record %d: prev hash %q", r.Seq, r.PrevHash)
		}
		seqs = append(seqs, r.Seq)
		return nil
	}))
	if !slices.Equal(seqs, []int64{1, 2, 3}) {
		t.Fatalf("scan order = %v", seqs)
	}
	if err := s.ScanAudit(ctx, func(vault.AuditRecord) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("scan stops on fn's error: %v", err)
	}
}

func testGroups(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "groups")
	other, _ := seed(t, s, "other")
	g := &vault.Group{ID: vault.NewID(), AccountID: acct, Name: "g1", Description: "d", CustomMetadata: map[string]string{"k": "v"},
		Creator: vault.Creator{Kind: vault.PrincipalUser, ID: pid}, CreatedAt: at, UpdatedAt: at}
	must(t, "create", s.CreateGroup(ctx, g))
	wantKind(t, "duplicate group name", s.CreateGroup(ctx, &vault.Group{ID: vault.NewID(), AccountID: acct, Name: "g1", Creator: g.Creator, CreatedAt: at, UpdatedAt: at}), vault.KindConflict)
	got, err := s.GetGroup(ctx, acct, g.ID)
	must(t, "get", err)
	if got.Name != "g1" || got.CustomMetadata["k"] != "v" || got.Creator.ID != pid {
		t.Errorf("group = %+v", got)
	}
	if _, err := s.GetGroup(ctx, other, g.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("another account's group: %v, want ErrNotFound", err)
	}
	up, err := s.UpdateGroup(ctx, acct, g.ID, func(g *vault.Group) error { g.Description = "new"; return nil })
	must(t, "update", err)
	if up.Description != "new" {
		t.Errorf("updated = %+v", up)
	}
	if _, err := s.UpdateGroup(ctx, acct, g.ID, func(g *vault.Group) error { g.Description = "lost"; return errors.New("no") }); err == nil {
		t.Fatal("failing update succeeded")
	}
	if got, _ := s.GetGroup(ctx, acct, g.ID); got.Description != "new" {
		t.Fatalf("a failed update changed the group: %+v", got)
	}
	gs, err := s.ListGroups(ctx, acct)
	must(t, "list", err)
	if len(gs) != 1 || gs[0].ID != g.ID {
		t.Fatalf("groups = %+v", gs)
	}
	must(t, "delete", s.DeleteGroup(ctx, acct, g.ID))
	if err := s.DeleteGroup(ctx, acct, g.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("delete twice: %v, want ErrNotFound", err)
	}
}

func testSobjects(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "sobjects")
	creator := vault.Creator{Kind: vault.PrincipalUser, ID: pid}
	g := &vault.Group{ID: vault.NewID(), AccountID: acct, Name: "g", Creator: creator, CreatedAt: at, UpdatedAt: at}
	must(t, "group", s.CreateGroup(ctx, g))
	o := &vault.Sobject{KID: vault.NewID(), AccountID: acct, GroupID: g.ID, Name: "o1", ObjType: "SECRET", KeySize: 256,
		KeyOps: []string{"EXPORT"}, CustomMetadata: map[string]string{}, Enabled: true, State: "Active", Origin: "External",
		Creator: creator, CreatedAt: at, UpdatedAt: at, ActivationDate: at, Ciphertext: []byte("sealed-o1")}
	must(t, "create", s.CreateSobject(ctx, o))
	dup := *o
	dup.KID = vault.NewID()
	wantKind(t, "duplicate name", s.CreateSobject(ctx, &dup), vault.KindConflict)
	got, err := s.GetSobject(ctx, acct, o.KID)
	must(t, "get", err)
	if got.Name != "o1" || string(got.Ciphertext) != "sealed-o1" || got.GroupID != g.ID || !slices.Equal(got.KeyOps, []string{"EXPORT"}) {
		t.Errorf("sobject = %+v", got)
	}
	if g2, err := s.GetSobjectByName(ctx, acct, "o1"); err != nil || g2.KID != o.KID {
		t.Fatalf("by name: %v", err)
	}
	// A group holding objects cannot be deleted.
	wantKind(t, "delete a group that holds an object", s.DeleteGroup(ctx, acct, g.ID), vault.KindConflict)
	up, err := s.UpdateSobject(ctx, acct, o.KID, func(o *vault.Sobject) error { o.Description = "new"; return nil })
	must(t, "update", err)
	if up.Description != "new" {
		t.Errorf("updated = %+v", up)
	}
	must(t, "delete", s.DeleteSobject(ctx, acct, o.KID))
	if _, err := s.GetSobject(ctx, acct, o.KID); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("get deleted: %v", err)
	}
	must(t, "delete the emptied group", s.DeleteGroup(ctx, acct, g.ID))
}

func testCapabilities(t *testing.T, s store.Engine) {
	ctx := context.Background()
	must(t, "ping", s.Ping(ctx))
	must(t, "analyze", s.Analyze(ctx))
	if n := s.QueuedWrites(); n != 0 {
		t.Errorf("%d writes queued with none in flight", n)
	}
	if s.Engine() == "" {
		t.Error("engine has no name")
	}
	n, err := s.PurgeTombstones(ctx)
	must(t, "purge", err)
	if n != 0 {
		t.Errorf("purged %d fresh tombstones", n)
	}
	// Exclusive runs fn and returns its error; holders take turns.
	boom := errors.New("boom")
	if err := s.Exclusive(ctx, func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("exclusive: %v, want fn's error", err)
	}
	var mu sync.Mutex
	inside, maxInside := 0, 0
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.Exclusive(ctx, func() error {
				mu.Lock()
				inside++
				maxInside = max(maxInside, inside)
				mu.Unlock()
				_, err := s.IsEmpty(ctx)
				mu.Lock()
				inside--
				mu.Unlock()
				return err
			})
			if err != nil {
				t.Errorf("exclusive: %v", err)
			}
		}()
	}
	wg.Wait()
	if maxInside > 1 && s.Engine() != "sqlite" { // SQLite: one process per file, the lock is a no-op
		t.Errorf("%d holders of the start-up lock at once", maxInside)
	}
}

func testBackupRestore(t *testing.T, s, empty store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "backup")
	c := newCredential(acct, pid, "kept", 0)
	must(t, "create", s.CreateCredential(ctx, c))
	var buf bytes.Buffer
	opts := store.BackupOptions{MACKey: bytes.Repeat([]byte{1}, 32), MACKeyID: 7}
	st, err := s.Backup(ctx, &buf, opts)
	must(t, "backup", err)
	if st.Rows == 0 || st.Tables == 0 {
		t.Fatalf("backup stats %+v", st)
	}
	if bytes.Contains(buf.Bytes(), []byte("sealed-kept")) {
		t.Log("backup is compressed: the raw bytes do not show the row") // informational only
	}
	// The wrong MAC key restores nothing.
	wrong := func(store.BackupHeader) ([]byte, error) { return bytes.Repeat([]byte{2}, 32), nil }
	if _, err := empty.Restore(ctx, bytes.NewReader(buf.Bytes()), wrong); err == nil {
		t.Fatal("restore under the wrong MAC key succeeded")
	}
	if e, _ := empty.IsEmpty(ctx); !e {
		t.Fatal("a refused restore wrote data")
	}
	var hdr store.BackupHeader
	rst, err := empty.Restore(ctx, bytes.NewReader(buf.Bytes()), func(h store.BackupHeader) ([]byte, error) { hdr = h; return opts.MACKey, nil })
	must(t, "restore", err)
	if rst.Rows != st.Rows || hdr.MACKeyID != 7 || hdr.Engine != s.Engine() {
		t.Errorf("restore stats %+v (backup %+v), header %+v", rst, st, hdr)
	}
	got, err := empty.GetCredential(ctx, acct, c.ID)
	must(t, "get restored", err)
	if string(got.Ciphertext) != "sealed-kept" {
		t.Errorf("restored credential = %+v", got)
	}
	// Restoring into a database that holds data is refused.
	if _, err := s.Restore(ctx, bytes.NewReader(buf.Bytes()), func(store.BackupHeader) ([]byte, error) { return opts.MACKey, nil }); err == nil {
		t.Fatal("restore into a non-empty database succeeded")
	}
}

func testRewrap(t *testing.T, s store.Engine) {
	ctx := context.Background()
	acct, pid := seed(t, s, "rewrap")
	for i := 0; i < 5; i++ {
		c := newCredential(acct, pid, fmt.Sprint("r", i), i)
		c.Ciphertext = []byte{1, byte(i)} // "wrapped by key 1"
		must(t, "create", s.CreateCredential(ctx, c))
	}
	keyID := func(ct []byte) (uint32, error) {
		if len(ct) == 0 {
			return 0, errors.New("empty")
		}
		return uint32(ct[0]), nil
	}
	st, err := s.RewrapAll(ctx, func(ct []byte) bool { return len(ct) > 0 && ct[0] == 1 }, func(ct []byte) ([]byte, error) {
		return append([]byte{2}, ct[1:]...), nil
	})
	must(t, "rewrap", err)
	// Every sealed copy is rewrapped: the credentials' rows and, as the
	// store keeps payload versions (issue 15), their version rows.
	if st.Rewrapped < 5 || st.Scanned < st.Rewrapped {
		t.Fatalf("rewrap stats %+v", st)
	}
	inUse, err := s.WrappingKeysInUse(ctx, keyID)
	must(t, "in use", err)
	if inUse[1] != 0 || inUse[2] != st.Rewrapped {
		t.Fatalf("keys in use = %v", inUse)
	}
	// Running it again finds nothing to do.
	st, err = s.RewrapAll(ctx, func(ct []byte) bool { return len(ct) > 0 && ct[0] == 1 }, func(ct []byte) ([]byte, error) { return ct, nil })
	if err != nil || st.Rewrapped != 0 {
		t.Fatalf("second rewrap: %+v %v", st, err)
	}
	c, err := s.GetCredentialByName(ctx, acct, "r3")
	must(t, "get", err)
	if !bytes.Equal(c.Ciphertext, []byte{2, 3}) {
		t.Fatalf("rewrapped ciphertext = %v", c.Ciphertext)
	}
}

func testRekeyJobs(t *testing.T, s store.Engine) {
	ctx := context.Background()
	if _, err := s.LatestRekeyJob(ctx); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("no job yet: %v, want ErrNotFound", err)
	}
	j := &store.RekeyJob{ID: vault.NewID(), StartedAt: at, UpdatedAt: at}
	must(t, "start", s.StartRekeyJob(ctx, j, at.Add(-time.Minute)))
	second := &store.RekeyJob{ID: vault.NewID(), StartedAt: at.Add(time.Second), UpdatedAt: at.Add(time.Second)}
	wantKind(t, "second running job", s.StartRekeyJob(ctx, second, at.Add(-time.Minute)), vault.KindConflict)
	j.NewPrimary, j.UpdatedAt = 42, at.Add(10*time.Second)
	must(t, "heartbeat", s.UpdateRekeyJob(ctx, j))
	got, err := s.LatestRekeyJob(ctx)
	must(t, "latest", err)
	if got.ID != j.ID || got.State != store.RekeyRunning || got.NewPrimary != 42 || !got.UpdatedAt.Equal(j.UpdatedAt) || !got.FinishedAt.IsZero() {
		t.Fatalf("latest = %+v", got)
	}
	// A running job without a heartbeat since staleBefore is taken over.
	third := &store.RekeyJob{ID: vault.NewID(), Resume: true, NewPrimary: 42, StartedAt: at.Add(time.Hour), UpdatedAt: at.Add(time.Hour)}
	must(t, "take over a stale job", s.StartRekeyJob(ctx, third, at.Add(time.Minute)))
	got, err = s.LatestRekeyJob(ctx)
	must(t, "latest", err)
	if got.ID != third.ID || !got.Resume || got.NewPrimary != 42 {
		t.Fatalf("latest after takeover = %+v", got)
	}
	third.State, third.FinishedAt, third.Report = store.RekeyDone, at.Add(2*time.Hour), []byte(`{"rewrapped":3}`)
	must(t, "finish", s.UpdateRekeyJob(ctx, third))
	got, err = s.LatestRekeyJob(ctx)
	must(t, "latest", err)
	if got.State != store.RekeyDone || string(got.Report) != `{"rewrapped":3}` || !got.FinishedAt.Equal(third.FinishedAt) {
		t.Fatalf("finished = %+v", got)
	}
	// With none running, a new job starts.
	must(t, "start after done", s.StartRekeyJob(ctx, second, at.Add(-time.Minute)))
	if err := s.UpdateRekeyJob(ctx, &store.RekeyJob{ID: vault.NewID(), State: store.RekeyDone, UpdatedAt: at}); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("update unknown job: %v, want ErrNotFound", err)
	}
}

func testConsoleSessions(t *testing.T, s store.Engine) {
	ctx := context.Background()
	hash := func(b byte) []byte { h := make([]byte, 32); h[0], h[31] = b, b; return h }
	if _, err := s.GetConsoleSession(ctx, hash(1)); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("unknown session: %v, want ErrNotFound", err)
	}
	if err := s.TouchConsoleSession(ctx, hash(1), "acct", at); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("touch unknown session: %v, want ErrNotFound", err)
	}
	a := &store.ConsoleSession{TokenHash: hash(1), PrincipalID: "p1", AccountID: "acct-a", KeyID: "key-1", CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(12 * time.Hour)}
	b := &store.ConsoleSession{TokenHash: hash(2), PrincipalID: "p2", AccountID: "acct-a", CreatedAt: at, LastSeenAt: at, ExpiresAt: at.Add(time.Hour)}
	must(t, "create a", s.CreateConsoleSession(ctx, a))
	must(t, "create b", s.CreateConsoleSession(ctx, b))
	got, err := s.GetConsoleSession(ctx, hash(1))
	must(t, "get", err)
	if got.PrincipalID != "p1" || got.AccountID != "acct-a" || got.KeyID != "key-1" || !got.CreatedAt.Equal(at) || !got.LastSeenAt.Equal(at) || !got.ExpiresAt.Equal(a.ExpiresAt) {
		t.Fatalf("get = %+v", got)
	}
	must(t, "touch", s.TouchConsoleSession(ctx, hash(1), "acct-b", at.Add(10*time.Minute)))
	got, err = s.GetConsoleSession(ctx, hash(1))
	must(t, "get after touch", err)
	if got.AccountID != "acct-b" || !got.LastSeenAt.Equal(at.Add(10*time.Minute)) {
		t.Fatalf("after touch = %+v", got)
	}
	// b expires at +1h and was last seen at +0; a was seen at +10m.
	must(t, "delete idle", s.DeleteConsoleSessionsBefore(ctx, at.Add(30*time.Minute), at.Add(5*time.Minute)))
	if _, err := s.GetConsoleSession(ctx, hash(2)); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("idle session kept: %v", err)
	}
	must(t, "a survives", func() error { _, err := s.GetConsoleSession(ctx, hash(1)); return err }())
	must(t, "delete expired", s.DeleteConsoleSessionsBefore(ctx, at.Add(13*time.Hour), at))
	if _, err := s.GetConsoleSession(ctx, hash(1)); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("expired session kept: %v", err)
	}
	must(t, "create again", s.CreateConsoleSession(ctx, a))
	must(t, "sign out", s.DeleteConsoleSession(ctx, hash(1)))
	must(t, "sign out twice", s.DeleteConsoleSession(ctx, hash(1)))
	if _, err := s.GetConsoleSession(ctx, hash(1)); !errors.Is(err, vault.ErrNotFound) {
		t.Fatalf("signed-out session kept: %v", err)
	}
}
