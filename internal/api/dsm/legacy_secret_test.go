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

		// The secret as an older credvault left it: issued, hash only.
		if _, err := rawDB(t, v).Exec(`DELETE FROM dsm_app_secrets`); err != nil {
			t.Fatal(err)
		}
		msg := adm.fail(t, 409, "reset_secret", "GET", "/sys/v1/apps/"+appID+"/credential", nil)
		if want := "call POST /sys/v1/apps/" + appID + "/reset_secret"; !strings.Contains(msg, want) {
			t.Errorf("message %q does not contain %q", msg, want)
		}
		adm.ok(t, 200, "POST", "/sys/v1/apps/"+appID+"/reset_secret", map[string]any{})
		adm.ok(t, 200, "GET", "/sys/v1/apps/"+appID+"/credential", nil)
	})
}

// rawDB opens the vault's database directly, beside the running server,
// for a test that changes rows as only an outside hand (or an older
// credvault) would.
func rawDB(t *testing.T, v *vaulttest.Vault) *sql.DB {
	t.Helper()
	driver, dsn := "sqlite", "file:"+v.DatabaseURL+"?_pragma=busy_timeout(10000)"
	if v.Engine == sqlstore.Postgres {
		driver, dsn = "pgx", v.DatabaseURL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
