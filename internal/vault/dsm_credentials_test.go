package vault

import (
	"errors"
	"strings"
	"testing"
)

// TestCredentialVariants: the core is the one place that knows which
// provider/auth variants and rotation methods exist (a dialect decodes
// their shape only); its errors name the field in domain terms, so that a
// dialect can render them in its wire names.
func TestCredentialVariants(t *testing.T) {
	const kid = "00000000-0000-4000-8000-000000000001"
	for name, tc := range map[string]struct {
		err       error
		field     string // "" when err is nil
		msgPrefix string
	}{
		"ok/oci":             {checkDetails(&CredentialDetails{Provider: ProviderOCI, Auth: AuthOCIAPIKey, UserOCID: "u", TenantOCID: "t", SigningKey: kid}), "", ""},
		"ok/azure-secret":    {checkDetails(&CredentialDetails{Provider: ProviderAzure, Auth: AuthAzureClientSecret, TenantID: "t", ClientID: "c", ClientSecret: kid}), "", ""},
		"ok/azure-cert":      {checkDetails(&CredentialDetails{Provider: ProviderAzure, Auth: AuthAzureCertificate, TenantID: "t", ClientID: "c", ClientCert: kid, ClientKey: kid}), "", ""},
		"err/provider":       {checkDetails(&CredentialDetails{Provider: "Gcp", Auth: AuthOCIAPIKey}), "details.provider", "unknown details.provider (supported: Oci, Azure)"},
		"err/provider-empty": {checkDetails(&CredentialDetails{}), "details.provider", "unknown details.provider (supported: Oci, Azure)"},
		"err/auth-oci":       {checkDetails(&CredentialDetails{Provider: ProviderOCI, Auth: AuthAzureClientSecret}), "details.auth", "unknown details.auth for Oci (supported: ApiKey)"},
		"err/auth-azure":     {checkDetails(&CredentialDetails{Provider: ProviderAzure, Auth: AuthOCIAPIKey}), "details.auth", "unknown details.auth for Azure (supported: ClientSecret, Certificate)"},
		"err/missing-field":  {checkDetails(&CredentialDetails{Provider: ProviderOCI, Auth: AuthOCIAPIKey, UserOCID: "u", SigningKey: kid}), "details.tenant_ocid", "details.tenant_ocid is required"},
		"err/ref-not-uuid":   {checkDetails(&CredentialDetails{Provider: ProviderAzure, Auth: AuthAzureClientSecret, TenantID: "t", ClientID: "c", ClientSecret: "x"}), "details.client_secret", "details.client_secret must be a security object id (UUID)"},
		"ok/method":          {checkRotationMethod(RotationGenerate), "", ""},
		"err/method":         {checkRotationMethod("Import"), "method", "unknown method (supported: Generate)"},
		"err/method-case":    {checkRotationMethod("generate"), "method", "unknown method (supported: Generate)"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.field == "" {
				if tc.err != nil {
					t.Fatalf("err = %v, want nil", tc.err)
				}
				return
			}
			var ve *Error
			if !errors.As(tc.err, &ve) || ve.Kind != KindInvalid {
				t.Fatalf("err = %#v, want an Invalid *Error", tc.err)
			}
			if ve.Field != tc.field || !strings.HasPrefix(ve.Msg, tc.msgPrefix) {
				t.Errorf("field %q, message %q; want field %q, message starting %q", ve.Field, ve.Msg, tc.field, tc.msgPrefix)
			}
		})
	}
}

// TestCredentialTable: everything the core says about a variant derives
// from Credentials: each field a variant names is a field of
// CredentialDetails, Refs lists exactly its reference fields (with what
// each needs), and SetField moves a reference.
func TestCredentialTable(t *testing.T) {
	if len(Credentials.Variants) == 0 || len(Credentials.RotationMethods) == 0 {
		t.Fatal("empty credential table")
	}
	const kid = "00000000-0000-4000-8000-000000000001"
	for _, v := range Credentials.Variants {
		t.Run(v.Provider+"/"+v.Auth, func(t *testing.T) {
			if got := Credentials.Variant(v.Provider, v.Auth); got == nil || got.Provider != v.Provider || got.Auth != v.Auth {
				t.Fatalf("Variant(%q, %q) = %v", v.Provider, v.Auth, got)
			}
			d := CredentialDetails{Provider: v.Provider, Auth: v.Auth}
			var wantRefs []string
			for _, f := range v.Fields {
				val := "value of " + f.Name
				if f.Ref != nil {
					val = kid
					wantRefs = append(wantRefs, f.Name)
					if len(f.Ref.Types) == 0 || f.Ref.What == "" {
						t.Errorf("%s: incomplete ObjectRef %+v", f.Name, f.Ref)
					}
				}
				d.SetField(f.Name, val)
				if got := d.Field(f.Name); got != val {
					t.Fatalf("%s is not a field of CredentialDetails (Field = %q after SetField)", f.Name, got)
				}
			}
			if err := checkDetails(&d); err != nil {
				t.Fatalf("checkDetails of a complete %s/%s: %v", v.Provider, v.Auth, err)
			}
			var gotRefs []string
			for _, r := range d.Refs() {
				gotRefs = append(gotRefs, r.Field)
				if r.KID != kid || r.Need == nil {
					t.Errorf("ref %+v", r)
				}
				d.SetField(r.Field, "00000000-0000-4000-8000-000000000002")
			}
			if strings.Join(gotRefs, ",") != strings.Join(wantRefs, ",") {
				t.Errorf("Refs fields %v, want %v", gotRefs, wantRefs)
			}
			for _, r := range d.Refs() {
				if r.KID != "00000000-0000-4000-8000-000000000002" {
					t.Errorf("SetField(%q) did not move the reference: %+v", r.Field, r)
				}
			}
		})
	}
	if d := (&CredentialDetails{Provider: "Gcp", Auth: "Key"}); d.Refs() != nil || d.Field("nope") != "" {
		t.Error("an unknown variant or field must have no references and no value")
	}
}
