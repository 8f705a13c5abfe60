package dsm_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestRotateEvent: a rotation of an integration credential raises
// integration_credential.rotated to the account's webhooks; a rotation that
// fails (and rolls back) raises nothing.
func TestRotateEvent(t *testing.T) {
	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		var failRotation atomic.Bool // the rotation's transaction fails while set
		v := vaulttest.New(t, engine, func(c *app.Config) {
			c.Lifecycle.Manual = true
			c.Lifecycle.WebhookAllowHosts = []string{"127.0.0.1"}
			c.RekeyHook = func(int) error {
				if failRotation.Load() {
					return errors.New("injected")
				}
				return nil
			}
		})
		var mu sync.Mutex
		var bodies [][]byte
		rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			mu.Lock()
			bodies = append(bodies, b)
			mu.Unlock()
		}))
		defer rcv.Close()
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/webhooks", map[string]any{"url": rcv.URL, "events": []string{"integration_credential.rotated"}})
		if r.Status != 200 {
			t.Fatalf("register webhook: %d %s", r.Status, r.Body)
		}
		adm := admin(v)
		g := adm.group(t, "g")
		k := adm.key(t, map[string]any{"name": "k", "obj_type": "RSA", "key_size": 2048, "group_id": g, "allow_credential_use": true})
		c := adm.ok(t, 200, "POST", "/sys/v1/credentials", map[string]any{"name": "c", "group_id": g, "credential_details": ociDetails(k["kid"])})
		id := c["credential_id"].(string)
		failRotation.Store(true)
		adm.fail(t, 500, "internal error", "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		failRotation.Store(false)
		if n, err := v.App.Webhooks.RunOnce(context.Background()); n != 0 || err != nil {
			t.Fatalf("a failed rotation raised %d deliveries (%v)", n, err)
		}
		adm.ok(t, 200, "POST", "/sys/v1/credentials/"+id+"/rotate", map[string]any{"method": map[string]any{"$type": "Generate"}})
		if n, err := v.App.Webhooks.RunOnce(context.Background()); n != 1 || err != nil {
			t.Fatalf("rotation deliveries: %d (%v)", n, err)
		}
		mu.Lock()
		defer mu.Unlock()
		var ev vault.Event
		if len(bodies) != 1 || json.Unmarshal(bodies[0], &ev) != nil || ev.Type != vault.EventIntegrationRotated ||
			ev.Data.ObjectID != id || ev.Data.Name != "c" || ev.AccountID != v.AccountID {
			t.Fatalf("received %q", bodies)
		}
	})
}
