package dsm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credvault/credvault/internal/vault"
)

// TestCredentialDetails_CoreTable: the dialect has no list of credential
// variants of its own. Every variant of the core's table, and one added
// to a copy of it, round-trips: its wire form decodes to the core's
// details (references lowercased, unknown members ignored) and renders
// back to the same wire form.
func TestCredentialDetails_CoreTable(t *testing.T) {
	added := vault.Credentials
	added.Variants = append(slices.Clone(added.Variants), vault.CredentialVariant{Provider: "Gcp", Auth: "ServiceAccount",
		Fields: []vault.CredentialField{{Name: "client_id"}, {Name: "signing_key", Ref: &vault.ObjectRef{Types: []string{vault.ObjRSA}, What: "an RSA key"}}}})
	for _, tc := range []struct {
		name     string
		table    *vault.CredentialTable
		variants []vault.CredentialVariant
	}{
		{"core", &vault.Credentials, vault.Credentials.Variants},
		{"added", &added, added.Variants[len(added.Variants)-1:]},
	} {
		for _, v := range tc.variants {
			t.Run(tc.name+"/"+v.Provider+"/"+v.Auth, func(t *testing.T) {
				body := map[string]any{"$type": v.Auth, "not_a_field": 7}
				want := vault.CredentialDetails{Provider: v.Provider, Auth: v.Auth}
				wantBody := map[string]any{"$type": v.Auth}
				for i, f := range v.Fields {
					sent, val := "value of "+f.Name, "value of "+f.Name
					if f.Ref != nil {
						sent = fmt.Sprintf("0000000%d-ABCD-4000-8000-00000000000F", i)
						val = strings.ToLower(sent)
					}
					body[f.Name] = sent
					want.SetField(f.Name, val)
					wantBody[f.Name] = val
				}
				raw, err := json.Marshal(map[string]any{"$type": v.Provider, "body": body})
				if err != nil {
					t.Fatal(err)
				}
				got, err := credentialDetails(tc.table, raw)
				if err != nil {
					t.Fatalf("decode %s: %v", raw, err)
				}
				if diff := cmp.Diff(want, *got); diff != "" {
					t.Errorf("decoded details (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]any{"$type": v.Provider, "body": wantBody}, credentialDetailsWire(tc.table, got)); diff != "" {
					t.Errorf("rendered details (-want +got):\n%s", diff)
				}
			})
		}
	}
	// Against the core's own table the added variant is passed on as
	// tags only (no fields), for the core to refuse.
	got, err := credentialDetails(&vault.Credentials, json.RawMessage(`{"$type": "Gcp", "body": {"$type": "ServiceAccount", "client_id": "c"}}`))
	if err != nil || *got != (vault.CredentialDetails{Provider: "Gcp", Auth: "ServiceAccount"}) {
		t.Errorf("unknown variant: %+v, %v", got, err)
	}
}

// TestCredentialDetails_Shape: what the dialect itself refuses is the
// shape of the union, not its variants.
func TestCredentialDetails_Shape(t *testing.T) {
	for raw, want := range map[string]string{
		`"Oci"`:                                  "credential_details must be an object with $type and body",
		`{"$type": 5, "body": {}}`:               "credential_details must be an object with $type and body",
		`{"body": {"$type": "ApiKey"}}`:          "credential_details.$type is required (Oci or Azure)",
		`{"$type": "Oci"}`:                       "credential_details.body is required",
		`{"$type": "Oci", "body": []}`:           "credential_details.body: the request body must be a JSON object",
		`{"$type": "Oci", "body": {}}`:           "credential_details.body.$type is required",
		`{"$type": "Oci", "body": {"$type": 1}}`: "credential_details.body: invalid type for field $type: expected string",
		`{"$type": "Oci", "body": {"$type": "ApiKey", "user_ocid": 5}}`: "credential_details.body: invalid type for field user_ocid: expected string",
	} {
		_, err := credentialDetails(&vault.Credentials, json.RawMessage(raw))
		if err == nil || vault.KindOf(err) != vault.KindInvalid || vault.Message(err) != want {
			t.Errorf("%s: %v, want Invalid %q", raw, err, want)
		}
	}
	// Tags outside the table are the core's to refuse.
	for _, raw := range []string{`{"$type": "Aws", "body": {"$type": "ApiKey"}}`, `{"$type": "Oci", "body": {"$type": "Password", "user_ocid": 5}}`} {
		if _, err := credentialDetails(&vault.Credentials, json.RawMessage(raw)); err != nil {
			t.Errorf("%s: %v, want the tags passed on", raw, err)
		}
	}
}

// TestWireMessage: the core's domain field paths reach a DSM client in
// DSM's names wherever the message names them, and only as whole paths.
func TestWireMessage(t *testing.T) {
	for _, tc := range []struct {
		field, msg, want string
	}{
		{"details.provider", "unknown details.provider (supported: Oci, Azure)", "unknown credential_details.$type (supported: Oci, Azure)"},
		{"details.auth", "unknown details.auth for Oci (supported: ApiKey)", "unknown credential_details.body.$type for Oci (supported: ApiKey)"},
		{"method", "unknown method (supported: Generate)", "unknown method.$type (supported: Generate)"},
		{"details", "details is required", "credential_details is required"},
		{"details.signing_key", "details.signing_key: the referenced security object was not found", "credential_details.body.signing_key: the referenced security object was not found"},
		{"details.client", "details.client_id and details.client, details.client.x", "details.client_id and credential_details.body.client, details.client.x"},
		{"method", "a methodical method", "a methodical method.$type"},
		{"name", "name is required", "name is required"},
	} {
		if got := wireMessage(vault.FieldError(tc.field, "%s", tc.msg)); got != tc.want {
			t.Errorf("field %q, message %q: got %q, want %q", tc.field, tc.msg, got, tc.want)
		}
	}
	if got := wireMessage(vault.Errorf(vault.KindNotFound, "details not found")); got != "details not found" {
		t.Errorf("a message without a field: %q", got)
	}
}
