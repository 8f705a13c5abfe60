package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestHealth(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		for _, p := range []string{"/healthz", "/readyz"} {
			if r := v.Do(t, "GET", p, nil); r.Status != 200 {
				t.Errorf("%s: %d %s", p, r.Status, r.Body)
			}
		}
		r := v.Do(t, "GET", "/openapi/sgp-v5-credentials.openapi.yaml", nil)
		if r.Status != 200 || !strings.Contains(string(r.Body), "openapi: 3.1.0") {
			t.Errorf("contract document not served: %d", r.Status)
		}
		r = v.Do(t, "GET", "/no/such/path", nil)
		if r.Status != 404 || string(r.Body) != `{"detail":"Not Found"}` {
			t.Errorf("unknown path: %d %s", r.Status, r.Body)
		}
		v.NoValidate = true // outside the contracts on purpose
		r = v.Do(t, "GET", "/sys/v1/no-such-thing", nil)
		if r.Status != 404 || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("unknown DSM path: %d %q %s", r.Status, r.Header.Get("Content-Type"), r.Body)
		}
		v.NoValidate = false
	})
}

func TestFailedAuthIsRateLimited(t *testing.T) {
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.FailedAuthPerMinute, c.FailedAuthBurst = 6, 5 })
	bad := "not-a-key-" + strings.Repeat("x", 40)
	for i := 0; i < 5; i++ {
		if r := v.SGP(t, bad, "", "GET", "/v5/credentials", nil); r.Status != 401 {
			t.Fatalf("attempt %d: want 401, got %d %s", i, r.Status, r.Body)
		}
	}
	r := v.SGP(t, bad, "", "GET", "/v5/credentials", nil)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("after the burst: want 429, got %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	// The address is throttled for wrong keys only: a correct key is
	// verified first and still answers (see
	// TestFailedAuthNeverRefusesCorrectCredentials).
	if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
		t.Errorf("valid key from a throttled address: want 200, got %d", r.Status)
	}
}

func TestPrincipalRateLimit(t *testing.T) {
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.PrincipalRPS, c.PrincipalBurst = 0.01, 3 })
	other := v.NewTenant(t, "other", "writer")
	for i := 0; i < 3; i++ {
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != 200 {
			t.Fatalf("request %d: %d %s", i, r.Status, r.Body)
		}
	}
	r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: want 429 with Retry-After, got %d %v", r.Status, r.Header)
	}
	// Other principals are not affected.
	if r := v.SGP(t, other.Key, "", "GET", "/v5/credentials", nil); r.Status != 200 {
		t.Errorf("another principal: %d", r.Status)
	}
}

func TestMetricsCarryNoUserValues(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		name, payload := "metrics-canary-name-7f3a", "metrics-canary-payload-91bd"
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": payload})
		if r.Status != 200 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		id := r.Object(t)["id"].(string)
		v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil)
		v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/"+name, nil)
		v.SGP(t, "wrong-key-"+strings.Repeat("y", 30), "", "GET", "/v5/credentials", nil)
		m := v.Do(t, "GET", "/metrics", nil)
		body := string(m.Body)
		for _, s := range []string{name, payload, id, v.AdminKey} {
			if strings.Contains(body, s) {
				t.Errorf("metrics contain a user-supplied or secret value %q", s)
			}
		}
		for _, want := range []string{
			`credvault_http_requests_total{method="POST",route="POST /v5/credentials",status="200"} 1`,
			`credvault_secret_accesses_total{op="credential.decrypt"} 1`,
			`credvault_auth_failures_total 1`,
			`credvault_audit_write_failures_total 0`,
			`go_sql_open_connections`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
	})
}

func TestRequestLimits(t *testing.T) {
	v := vaulttest.New(t, "sqlite")
	// A header block over the limit is refused by the server itself.
	req, _ := http.NewRequest("GET", v.URL+"/v5/credentials", nil)
	req.Header.Set("x-api-key", v.AdminKey)
	req.Header.Set("x-padding", strings.Repeat("a", 2<<20))
	resp, err := v.Client().Do(req)
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("2 MiB of headers: got %d", resp.StatusCode)
		}
	}
	// A body over the limit is 413 and stores nothing.
	big := fmt.Sprintf(`{"type":"key","name":"big","payload":"%s"}`, strings.Repeat("z", 1<<20))
	if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", big); r.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB body: got %d %s", r.Status, r.Body)
	}
	if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/big", nil); r.Status != 404 {
		t.Errorf("oversize create left something behind: %d", r.Status)
	}
}
