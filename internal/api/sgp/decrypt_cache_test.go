package sgp_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestDecryptFromCachedRow: a decrypt may open the cached row (ciphertext
// only), so a row changed in the database behind the server's back is seen
// within sqlstore.RevocationBound, not at once — but never wrongly: until
// then the decrypt returns the payload that was genuinely stored (the cached
// copy still opens under its own id and version), and from then on the
// tampered row is refused as an integrity failure. The other direction —
// a cached row that no longer opens while the database's does — is read
// again at once (TestCiphertextBinding "older-version-restored").
func TestDecryptFromCachedRow(t *testing.T) {
	t.Parallel()
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a := admin(v)
		raw := openRaw(t, v)
		px, py := canary(t), canary(t)
		x := a.createNamed(t, "cached-x", px)
		y := a.createNamed(t, "cached-y", py)
		for range 2 { // the first read fills the cache, the second uses it
			if s := a.decrypt(t, x.ID); s != px {
				t.Fatalf("decrypt = %q, want %q", s, px)
			}
		}
		raw.setCiphertext(t, x.ID, raw.ciphertext(t, y.ID))

		deadline := time.Now().Add(sqlstore.RevocationBound + 2*time.Second)
		for {
			r := a.do(t, "POST", "/v5/credentials/"+x.ID+"/secret", nil)
			if r.Status == 409 {
				if d := wantDetail(t, r, 409); !strings.Contains(d, "integrity check") {
					t.Fatalf("detail %q does not name the integrity failure", d)
				}
				notContains(t, "409 body", r.Body, py)
				break
			}
			var got struct{ Result string }
			if r.Status != 200 || json.Unmarshal(r.Body, &got) != nil || got.Result != px {
				t.Fatalf("decrypt of a row tampered behind the cache: %d %s, want the stored payload or 409", r.Status, r.Body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("tampered row still served from the cache %v after the change", sqlstore.RevocationBound+2*time.Second)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}
