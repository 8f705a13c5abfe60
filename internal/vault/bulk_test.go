package vault_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/vault"
)

// TestBulkCreateCredentials loads credentials into a real SQLite file through
// the core's bulk path and reads them back through the ordinary paths.
func TestBulkCreateCredentials(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := app.Open(ctx, app.Config{DataDir: dir, DatabaseURL: filepath.Join(dir, "credvault.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Service.Bootstrap(ctx, ""); err != nil {
		t.Fatal(err)
	}
	id, err := a.Service.WriterIdentity(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if id.Role != vault.RoleAdmin {
		t.Fatalf("writer identity role = %s, want admin", id.Role)
	}

	const n = 50
	ins := make([]vault.CredentialInput, n)
	for i := range ins {
		ins[i] = vault.CredentialInput{Name: fmt.Sprintf("load-%09d", i), Type: "key", Payload: fmt.Appendf(nil, "secret-%d", i)}
	}
	cs, err := a.Service.BulkCreateCredentials(ctx, id, ins)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != n {
		t.Fatalf("created %d, want %d", len(cs), n)
	}
	for _, i := range []int{0, 17, n - 1} {
		c, pt, err := a.Service.DecryptCredential(ctx, id, cs[i].ID, "")
		if err != nil {
			t.Fatalf("decrypt %d: %v", i, err)
		}
		if want := fmt.Sprintf("secret-%d", i); string(pt) != want || c.Name != ins[i].Name || c.Version != 1 || string(c.Metadata) != "{}" {
			t.Fatalf("credential %d: name %q version %d metadata %s payload %q", i, c.Name, c.Version, c.Metadata, pt)
		}
		if _, pt, err := a.Service.DecryptCredential(ctx, id, "", ins[i].Name); err != nil || string(pt) != fmt.Sprintf("secret-%d", i) {
			t.Fatalf("decrypt by name %d: %q %v", i, pt, err)
		}
	}
	page, err := a.Service.ListCredentials(ctx, id, vault.CredentialQuery{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != n || len(page.Items) != 10 || !page.HasMore {
		t.Fatalf("list: total %d items %d has_more %v", page.Total, len(page.Items), page.HasMore)
	}

	// A duplicate name anywhere in a batch rejects the whole batch.
	_, err = a.Service.BulkCreateCredentials(ctx, id, []vault.CredentialInput{
		{Name: "fresh-name", Type: "key", Payload: []byte("x")},
		{Name: ins[3].Name, Type: "key", Payload: []byte("x")},
	})
	if vault.KindOf(err) != vault.KindConflict {
		t.Fatalf("duplicate in batch: err = %v, want conflict", err)
	}
	if _, err := a.Service.GetCredentialByName(ctx, id, "fresh-name"); vault.KindOf(err) != vault.KindNotFound {
		t.Fatalf("half-applied batch: fresh-name lookup err = %v", err)
	}
	// Invalid input is rejected before anything is stored.
	_, err = a.Service.BulkCreateCredentials(ctx, id, []vault.CredentialInput{{Name: "x", Type: "json", Payload: []byte("not json")}})
	if vault.KindOf(err) != vault.KindInvalid {
		t.Fatalf("invalid json payload: err = %v", err)
	}
	page, err = a.Service.ListCredentials(ctx, id, vault.CredentialQuery{Limit: 1})
	if err != nil || page.Total != n {
		t.Fatalf("after rejected batches: total %d err %v", page.Total, err)
	}
}
