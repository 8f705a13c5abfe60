package conformance_test

import (
	"encoding/json"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// caller is one principal speaking both dialects: SGP with x-api-key and
// DSM with an Authorization header (Basic <api key> or Bearer <token>).
type caller struct {
	name string
	v    *vaulttest.Vault
	key  string // the API key (SGP x-api-key; DSM Basic)
	auth string // DSM Authorization value; "Basic "+key unless a session
}

func newCaller(v *vaulttest.Vault, name, key string) *caller {
	return &caller{name: name, v: v, key: key, auth: "Basic " + key}
}

func (c *caller) sgp(t testing.TB, method, path string, body any) *vaulttest.Response {
	t.Helper()
	return c.v.Do(t, method, path, body, "x-api-key", c.key)
}

func (c *caller) dsm(t testing.TB, method, path string, body any) *vaulttest.Response {
	t.Helper()
	return c.v.Do(t, method, path, body, "Authorization", c.auth)
}

// must sends a request (SGP for /v5 paths, DSM otherwise) that must answer
// want, and decodes an object body (nil otherwise).
func (c *caller) must(t testing.TB, want int, method, path string, body any) map[string]any {
	t.Helper()
	var r *vaulttest.Response
	if len(path) > 4 && path[:4] == "/v5/" {
		r = c.sgp(t, method, path, body)
	} else {
		r = c.dsm(t, method, path, body)
	}
	if r.Status != want {
		t.Fatalf("%s: %s %s: status %d, want %d: %s", c.name, method, path, r.Status, want, r.Body)
	}
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

// app creates a DSM app of role in groups (as c) and returns a caller
// with its API key.
func (c *caller) app(t testing.TB, name, role string, groups ...string) (*caller, string) {
	t.Helper()
	key, id := c.v.NewDSMApp(t, c.auth, name, role, groups...)
	return newCaller(c.v, name, key), id
}

var (
	b64        = vaulttest.B64
	unb64      = vaulttest.UnB64
	ociDetails = vaulttest.OCIDetails
)
