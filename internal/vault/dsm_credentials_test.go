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
