package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/vault"
)

func TestPurgeExpiredWorkloadKeys(t *testing.T) {
	openEach(t, func(t *testing.T, db *DB) {
		ctx := context.Background()
		now := time.Now().UTC().Truncate(time.Microsecond)
		acct := newAccount(t, db, now)
		p := vault.TrustPolicy{ID: vault.NewID(), AccountID: acct.ID, Name: "ci", Issuer: "https://issuer.example", KeySource: vault.KeysDiscovery,
			Audiences: []string{"credvault"}, Claims: []vault.ClaimRule{{Claim: "sub", Pattern: "x"}}, Role: vault.RoleReader, TTL: time.Minute, CreatedAt: now}
		if err := db.CreateTrustPolicy(ctx, &p, vault.Principal{ID: p.ID, Kind: vault.PrincipalServiceAccount, Name: "trust:ci", DefaultAccountID: acct.ID, CreatedAt: now}); err != nil {
			t.Fatal(err)
		}
		user := vault.Principal{ID: vault.NewID(), Kind: vault.PrincipalUser, Name: "u", DefaultAccountID: acct.ID, CreatedAt: now}
		if err := db.CreatePrincipal(ctx, &user, nil); err != nil {
			t.Fatal(err)
		}
		key := func(principal string, exp time.Time) string {
			k := vault.APIKey{ID: vault.NewID(), PrincipalID: principal, Name: "k", Hash: vault.HashAPIKey(vault.NewID()), CreatedAt: now, ExpiresAt: &exp}
			if err := db.CreateAPIKey(ctx, &k); err != nil {
				t.Fatal(err)
			}
			return k.ID
		}
		old := key(p.ID, now.Add(-48*time.Hour))
		fresh := key(p.ID, now.Add(time.Hour))
		userOld := key(user.ID, now.Add(-48*time.Hour))

		n, err := db.PurgeExpiredWorkloadKeys(ctx, now.Add(-24*time.Hour))
		if err != nil || n != 1 {
			t.Fatalf("purged %d (%v), want 1", n, err)
		}
		left := map[string]bool{}
		for _, pr := range []string{p.ID, user.ID} {
			ks, err := db.ListAPIKeys(ctx, pr)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range ks {
				left[k.ID] = true
			}
		}
		if left[old] || !left[fresh] || !left[userOld] {
			t.Errorf("left after purge: old %v, fresh %v, user's expired key %v; want false, true, true", left[old], left[fresh], left[userOld])
		}
	})
}
