package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestMetricsToken: with a metrics token, GET /metrics requires it as a
// bearer token.
func TestMetricsToken(t *testing.T) {
	const token = "metrics-token-4b1f0c2e9a7d"
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.MetricsToken = token })
	for _, h := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + token}, {"x-api-key", v.AdminKey}} {
		r := v.Do(t, "GET", "/metrics", nil, h...)
		if r.Status != http.StatusUnauthorized || strings.Contains(string(r.Body), "credvault_") {
			t.Errorf("metrics with %v: want 401, got %d", h, r.Status)
		}
	}
	r := v.Do(t, "GET", "/metrics", nil, "Authorization", "Bearer "+token)
	if r.Status != 200 || !strings.Contains(string(r.Body), "credvault_http_requests_total") {
		t.Errorf("metrics with the token: %d", r.Status)
	}
}

// TestMetricsElsewhere: when metrics have their own listener, the API
// listener does not serve them.
func TestMetricsElsewhere(t *testing.T) {
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.MetricsElsewhere = true })
	if r := v.Do(t, "GET", "/metrics", nil); r.Status != 404 {
		t.Errorf("/metrics on the API listener: want 404, got %d", r.Status)
	}
	rec := &recorder{header: http.Header{}}
	req, _ := http.NewRequest("GET", "/metrics", nil)
	v.App.Handler.MetricsHandler().ServeHTTP(rec, req)
	if rec.status != 0 && rec.status != 200 || !strings.Contains(rec.body.String(), "credvault_http_requests_total") {
		t.Errorf("MetricsHandler: %d", rec.status)
	}
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(s int)           { r.status = s }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
