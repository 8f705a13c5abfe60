package client_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/credvault/credvault/client"
)

// TestAdmin runs every admin operation once against the server TestMain
// started, with its bootstrap (operator) key.
func TestAdmin(t *testing.T) {
	ctx := context.Background()
	url := os.Getenv("CREDVAULT_URL")
	c, err := client.New(url, os.Getenv("CREDVAULT_API_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	sfx := fmt.Sprint(time.Now().UnixNano())

	me, err := c.Admin.Me(ctx)
	if err != nil || !me.Operator || me.AuthMethod != "api_key" || me.Principal.ID == "" || me.Role != client.RoleAdmin {
		t.Fatalf("Me = %+v, %v", me, err)
	}

	acct, err := c.Admin.CreateAccount(ctx, "sdk-admin-"+sfx)
	if err != nil || acct.ID == "" || acct.CreatedAt.IsZero() {
		t.Fatalf("CreateAccount = %+v, %v", acct, err)
	}
	other, err := c.Admin.CreateAccount(ctx, "sdk-other-"+sfx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin.CreateAccount(ctx, acct.Name); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("duplicate CreateAccount: %v; want ErrConflict", err)
	}
	accts, err := c.Admin.ListAccounts(ctx)
	if err != nil || !slices.ContainsFunc(accts, func(a client.Account) bool { return a.ID == acct.ID }) {
		t.Fatalf("ListAccounts = %+v, %v", accts, err)
	}
	if got, err := c.Admin.GetAccount(ctx, acct.ID); err != nil || got.Name != acct.Name {
		t.Fatalf("GetAccount = %+v, %v", got, err)
	}

	email := "sdk-" + sfx + "@example.com"
	p, err := c.Admin.CreatePrincipal(ctx, client.CreatePrincipalParams{
		Name: "alice", Kind: client.KindUser, AccountID: acct.ID, Role: client.RoleReader,
		Email: email, Password: "correct horse battery",
	})
	if err != nil || p.ID == "" || p.Kind != client.KindUser || p.Email == nil || *p.Email != email || !p.HasPassword || p.AccountID != acct.ID {
		t.Fatalf("CreatePrincipal = %+v, %v", p, err)
	}
	sa, err := c.Admin.CreatePrincipal(ctx, client.CreatePrincipalParams{Name: "ci", Kind: client.KindServiceAccount, AccountID: acct.ID, Role: client.RoleWriter})
	if err != nil || sa.Kind != client.KindServiceAccount {
		t.Fatalf("CreatePrincipal(service account) = %+v, %v", sa, err)
	}
	page, err := c.Admin.ListPrincipals(ctx, client.PrincipalListParams{AccountID: acct.ID, Limit: 1})
	if err != nil || len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("ListPrincipals page 1 = %+v, %v", page, err)
	}
	page2, err := c.Admin.ListPrincipals(ctx, client.PrincipalListParams{AccountID: acct.ID, Limit: 1, After: page.NextCursor})
	if err != nil || len(page2.Items) != 1 || page2.Items[0].ID == page.Items[0].ID {
		t.Fatalf("ListPrincipals page 2 = %+v, %v", page2, err)
	}
	users, err := c.Admin.ListPrincipals(ctx, client.PrincipalListParams{AccountID: acct.ID, Kind: client.KindUser, Name: "alice"})
	if err != nil || len(users.Items) != 1 || users.Items[0].ID != p.ID || users.NextCursor != "" {
		t.Fatalf("ListPrincipals(kind, name) = %+v, %v", users, err)
	}
	if got, err := c.Admin.GetPrincipal(ctx, p.ID); err != nil || got.Name != "alice" {
		t.Fatalf("GetPrincipal = %+v, %v", got, err)
	}
	newName := "alice2"
	if got, err := c.Admin.UpdatePrincipal(ctx, p.ID, client.UpdatePrincipalParams{Name: &newName}); err != nil || got.Name != newName {
		t.Fatalf("UpdatePrincipal = %+v, %v", got, err)
	}
	if got, err := c.Admin.DisablePrincipal(ctx, p.ID); err != nil || !got.Disabled || got.DisabledAt == nil {
		t.Fatalf("DisablePrincipal = %+v, %v", got, err)
	}
	if got, err := c.Admin.EnablePrincipal(ctx, p.ID); err != nil || got.Disabled {
		t.Fatalf("EnablePrincipal = %+v, %v", got, err)
	}

	// Memberships: grant, change, revoke.
	if got, err := c.Admin.SetMembership(ctx, p.ID, other.ID, client.RoleWriter); err != nil || !hasRole(got, other.ID, client.RoleWriter) {
		t.Fatalf("SetMembership(grant) = %+v, %v", got, err)
	}
	if got, err := c.Admin.SetMembership(ctx, p.ID, other.ID, client.RoleSecretReader); err != nil || !hasRole(got, other.ID, client.RoleSecretReader) {
		t.Fatalf("SetMembership(change) = %+v, %v", got, err)
	}
	if err := c.Admin.RevokeMembership(ctx, p.ID, other.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Admin.GetPrincipal(ctx, p.ID); err != nil || hasRole(got, other.ID, client.RoleSecretReader) {
		t.Fatalf("after RevokeMembership: %+v, %v", got, err)
	}

	// API keys: the key works, is listed (without the key), and stops
	// working once revoked.
	k, err := c.Admin.CreateAPIKey(ctx, p.ID, client.CreateAPIKeyParams{Name: "laptop", TTL: time.Hour})
	if err != nil || k.ID == "" || string(k.Key) == "" || k.ExpiresAt == nil || k.PrincipalID != p.ID {
		t.Fatalf("CreateAPIKey = %+v, %v", k, err)
	}
	uc, err := client.New(url, string(k.Key), client.WithRetries(0, 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if um, err := uc.Admin.Me(ctx); err != nil || um.Principal.ID != p.ID || um.Operator || um.Role != client.RoleReader {
		t.Fatalf("Me as the user = %+v, %v", um, err)
	}
	keys, err := c.Admin.ListAPIKeys(ctx, p.ID)
	if err != nil || len(keys) != 1 || keys[0].ID != k.ID || keys[0].Name != "laptop" || keys[0].RevokedAt != nil {
		t.Fatalf("ListAPIKeys = %+v, %v", keys, err)
	}

	// Passwords: the admin sets one, the user changes its own.
	if err := c.Admin.SetPassword(ctx, p.ID, "another long password"); err != nil {
		t.Fatal(err)
	}
	if err := uc.Admin.ChangeOwnPassword(ctx, "another long password", "yet another password"); err != nil {
		t.Fatal(err)
	}
	if err := uc.Admin.ChangeOwnPassword(ctx, "wrong old password", "yet another password 2"); err == nil {
		t.Fatal("ChangeOwnPassword with a wrong old password succeeded")
	}

	// Error case: a reader may not create accounts; an unknown id is 404.
	_, err = uc.Admin.CreateAccount(ctx, "sdk-denied-"+sfx)
	var apiErr *client.Error
	if !errors.As(err, &apiErr) || (apiErr.StatusCode != http.StatusForbidden && apiErr.StatusCode != http.StatusNotFound) {
		t.Fatalf("CreateAccount as a reader: %v; want a 403 or 404 *client.Error", err)
	}
	_, err = c.Admin.GetPrincipal(ctx, "00000000-0000-0000-0000-000000000000")
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetPrincipal(unknown): %v; want a 404 *client.Error", err)
	}

	if err := c.Admin.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := uc.Admin.Me(ctx); !errors.Is(err, client.ErrUnauthenticated) {
		t.Fatalf("Me with a revoked key: %v; want ErrUnauthenticated", err)
	}
	if keys, err := c.Admin.ListAPIKeys(ctx, p.ID); err != nil || len(keys) != 1 || keys[0].RevokedAt == nil {
		t.Fatalf("ListAPIKeys after revoke = %+v, %v", keys, err)
	}

	// Rename and delete.
	if got, err := c.Admin.RenameAccount(ctx, acct.ID, "sdk-renamed-"+sfx); err != nil || got.Name != "sdk-renamed-"+sfx {
		t.Fatalf("RenameAccount = %+v, %v", got, err)
	}
	if err := c.Admin.DeletePrincipal(ctx, sa.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin.GetPrincipal(ctx, sa.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetPrincipal after delete: %v; want ErrNotFound", err)
	}
	if err := c.Admin.DeleteAccount(ctx, acct.ID, false); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("DeleteAccount with a principal, unforced: %v; want ErrConflict", err)
	}
	if err := c.Admin.DeleteAccount(ctx, acct.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := c.Admin.DeleteAccount(ctx, other.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Admin.GetAccount(ctx, acct.ID); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("GetAccount after delete: %v; want ErrNotFound", err)
	}
}

func hasRole(p *client.Principal, accountID, role string) bool {
	return slices.ContainsFunc(p.Memberships, func(m client.Membership) bool { return m.AccountID == accountID && m.Role == role })
}
