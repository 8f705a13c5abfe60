package dsm_test

import (
	"database/sql"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// An app whose secret was issued before credvault kept app secrets cannot
// show it again: the core says so in its own words, and the DSM dialect
// names its own way out (reset_secret on this app's path).
func TestAppCredential_LegacySecretNamesResetPath(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "legacy")
		_, appID := adm.app(t, "legacy-app", "crypto", g)
		adm.ok(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)

		driver := "sqlite"
		if v.Engine == sqlstore.Postgres {
			driver = "pgx"
		}
		raw, err := sql.Open(driver, v.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		// The secret as an older credvault left it: issued, hash only.
		if _, err := raw.Exec(`DELETE FROM dsm_app_secrets`); err != nil {
			t.Fatal(err)
		}
		msg := adm.fail(t, 409, "GET", "/sys/v1/apps/"+appID+"/credential", nil)
		if want := "call POST /sys/v1/apps/" + appID + "/reset_secret"; !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+appID+"/reset_secret", map[string]any{})
		adm.ok(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)
	})
}
