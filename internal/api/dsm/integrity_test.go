package dsm_test

import (
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestTamperedKeyMaterialIsAnIntegrityError: key material whose ciphertext
// was changed in the database is refused with 409 and a message naming the
// integrity failure — never a bare 500 — on export and on sign (9.6).
func TestTamperedKeyMaterialIsAnIntegrityError(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		adm := admin(v)
		g := adm.group(t, "g")
		exp := adm.key(t, map[string]any{"name": "exp", "obj_type": "AES", "key_size": 256, "group_id": g, "key_ops": []string{"ENCRYPT", "EXPORT"}})
		sig := adm.key(t, map[string]any{"name": "sig", "obj_type": "EC", "elliptic_curve": "NistP256", "group_id": g})

		db := rawDB(t, v)
		sel, upd := `SELECT ciphertext FROM dsm_sobjects WHERE kid = ?`, `UPDATE dsm_sobjects SET ciphertext = ? WHERE kid = ?`
		if v.Engine == sqlstore.Postgres {
			sel, upd = `SELECT ciphertext FROM dsm_sobjects WHERE kid = $1`, `UPDATE dsm_sobjects SET ciphertext = $1 WHERE kid = $2`
		}
		for _, kid := range []any{exp["kid"], sig["kid"]} {
			var ct []byte
			if err := db.QueryRow(sel, kid).Scan(&ct); err != nil {
				t.Fatal(err)
			}
			ct[len(ct)-1] ^= 1
			if _, err := db.Exec(upd, ct, kid); err != nil {
				t.Fatal(err)
			}
		}
		for _, c := range []struct {
			path string
			body map[string]any
		}{
			{"/crypto/v1/keys/export", map[string]any{"kid": exp["kid"]}},
			{"/crypto/v1/sign", map[string]any{"key": map[string]any{"kid": sig["kid"]}, "hash_alg": "SHA256", "data": b64([]byte("hello"))}},
		} {
			body := adm.fail(t, 409, "POST", c.path, c.body)
			if !strings.Contains(body, "integrity check") {
				t.Errorf("%s: body %q does not name the integrity failure", c.path, body)
			}
		}
	})
}
