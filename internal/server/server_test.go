package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// TestPrincipalRateLimit_BelowOnePerSecond: a rate below one request a
// second with no burst set still lets one request through, then asks the
// client to wait about one interval (it refused everything, with a
// Retry-After of 292 years, when the burst was taken from the rate alone).
func TestPrincipalRateLimit_BelowOnePerSecond(t *testing.T) {
	v := vaulttest.New(t, "sqlite", func(c *app.Config) { c.PrincipalRPS = 0.5 })
	if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != 200 {
		t.Fatalf("first request: %d %s", r.Status, r.Body)
	}
	r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil)
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("second request at once: want 429, got %d", r.Status)
	}
	if after, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || after < 1 || after > 2 {
		t.Errorf("Retry-After %q, want 1 or 2 seconds", r.Header.Get("Retry-After"))
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

// TestBodiesAreExactText: a body that encoding/json would silently change
// (invalid UTF-8, unpaired surrogate escapes) is refused in both dialects,
// and nothing is stored; a valid surrogate pair is kept byte for byte.
func TestBodiesAreExactText(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		bad := map[string]string{
			"invalid-utf8-payload": `{"type":"key","name":"n1","payload":"ab` + "\xff\xfe" + `cd"}`,
			"lone-low-surrogate":   `{"type":"key","name":"n1","payload":"x\udc00y"}`,
			"lone-high-surrogate":  `{"type":"key","name":"n1","payload":"x\ud800"}`,
			"high-then-non-low":    `{"type":"key","name":"n1","payload":"x\ud800\u0041"}`,
			"invalid-utf8-name":    `{"type":"key","name":"n1` + "\xc3" + `","payload":"p"}`,
			"surrogate-in-name":    `{"type":"key","name":"n1\uDC00","payload":"p"}`,
			"surrogate-in-meta":    `{"type":"key","name":"n1","payload":"p","credential_metadata":{"k":"\udfff"}}`,
		}
		for name, body := range bad {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", body)
			if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), `"loc":["body"]`) {
				t.Errorf("SGP %s: want 422 with loc body, got %d %s", name, r.Status, r.Body)
			}
		}
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); len(r.Object(t)["items"].([]any)) != 0 {
			t.Fatalf("a refused body stored something: %s", r.Body)
		}
		// A well-formed pair is an ordinary character and is kept exactly.
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", `{"type":"key","name":"smile","payload":"a\ud83d\ude00b"}`)
		if r.Status != 200 {
			t.Fatalf("valid surrogate pair: %d %s", r.Status, r.Body)
		}
		id := r.Object(t)["id"].(string)
		// An update with a bad payload leaves the stored one alone.
		if r := v.SGP(t, v.AdminKey, "", "PATCH", "/v5/credentials/"+id, `{"payload":"z`+"\xff"+`"}`); r.Status != 422 {
			t.Errorf("PATCH invalid UTF-8: want 422, got %d %s", r.Status, r.Body)
		}
		if got := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials/"+id+"/secret", nil).Object(t)["result"]; got != "a😀b" {
			t.Errorf("secret = %q, want %q", got, "a😀b")
		}

		// DSM answers invalid bodies with 400 and a plain-text message.
		v.NoValidate = true
		for name, body := range map[string]string{
			"invalid-utf8": `{"name":"g` + "\xff" + `"}`,
			"surrogate":    `{"name":"g\udc00"}`,
		} {
			r := v.Do(t, "POST", "/sys/v1/groups", body, "Authorization", "Basic "+v.AdminKey)
			if r.Status != http.StatusBadRequest || r.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("DSM %s: want 400 text/plain, got %d %q %s", name, r.Status, r.Header.Get("Content-Type"), r.Body)
			}
		}
		v.NoValidate = false
		if r := v.Do(t, "GET", "/sys/v1/groups", nil, "Authorization", "Basic "+v.AdminKey); len(r.JSON(t).([]any)) != 0 {
			t.Errorf("a refused DSM body stored a group: %s", r.Body)
		}
	})
}

func nested(depth int) string {
	return `{"type":"key","name":"deep","payload":"p","credential_metadata":` + strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + "}"
}

// TestCredentialMetadataLimits: credential_metadata nests at most 32 levels
// and holds at most 64 KiB; the 422 says which limit was hit.
func TestCredentialMetadataLimits(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", nested(32)); r.Status != 200 {
			t.Fatalf("32 levels: want 200, got %d %s", r.Status, r.Body)
		}
		for _, depth := range []int{33, 300, 9999} {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", strings.Replace(nested(depth), "deep", fmt.Sprint("deep", depth), 1))
			if r.Status != 422 || !strings.Contains(string(r.Body), "must not nest deeper than 32 levels") || !strings.Contains(string(r.Body), "credential_metadata") {
				t.Errorf("%d levels: want 422 naming the depth limit, got %d %.300s", depth, r.Status, r.Body)
			}
		}
		// Arrays count as levels too; brackets inside strings do not.
		arr := `{"type":"key","name":"arr","payload":"p","credential_metadata":{"a":` + strings.Repeat("[", 33) + strings.Repeat("]", 33) + `}}`
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", arr); r.Status != 422 {
			t.Errorf("33 levels of arrays: want 422, got %d", r.Status)
		}
		str := `{"type":"key","name":"str","payload":"p","credential_metadata":{"a":"` + strings.Repeat(`{[\"`, 100) + `"}}`
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", str); r.Status != 200 {
			t.Errorf("brackets inside a string: want 200, got %d %s", r.Status, r.Body)
		}
		big, _ := json.Marshal(map[string]any{"type": "key", "name": "big", "payload": "p", "credential_metadata": map[string]string{"a": strings.Repeat("m", 70<<10)}})
		r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", big)
		if r.Status != 422 || !strings.Contains(string(r.Body), "must be at most 65536 bytes") {
			t.Errorf("70 KiB metadata: want 422 naming the size limit, got %d %.300s", r.Status, r.Body)
		}
		id := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/deep", nil).Object(t)["id"].(string)
		patch := `{"credential_metadata":` + strings.Repeat(`{"a":`, 40) + "1" + strings.Repeat("}", 40) + "}"
		if r := v.SGP(t, v.AdminKey, "", "PATCH", "/v5/credentials/"+id, patch); r.Status != 422 {
			t.Errorf("PATCH 40 levels: want 422, got %d", r.Status)
		}
	})
}

// TestNamesRefuseControlCharacters: names with control, line-separator or
// bidi formatting characters are refused in both dialects; SGP names that
// a URL path cannot carry unchanged are refused; other Unicode is stored
// as sent.
func TestNamesRefuseControlCharacters(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		bad := []string{"esc\x1b[31m", "cr\rx", "lf\nx", "bel\a", "tab\tx", "del\x7f", "c1\u0085", "ls\u2028x", "ps\u2029x", "rlo\u202ex", "lri\u2066x"}
		for _, n := range bad {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": n, "payload": "p"})
			if r.Status != 422 || !strings.Contains(string(r.Body), `"loc":["body","name"]`) {
				t.Errorf("SGP name %q: want 422 on body.name, got %d %s", n, r.Status, r.Body)
			}
		}
		for _, n := range []string{".", "..", "a/../b", "a/./b", "/x", "a//b", "../x"} {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": n, "payload": "p"})
			if r.Status != 422 {
				t.Errorf("SGP name %q: want 422, got %d %s", n, r.Status, r.Body)
			}
		}
		// Names that are fine, including ones a path carries with %2F, and
		// Unicode stored without normalisation (two spellings of "é").
		for _, n := range []string{"a/b", "dir/", "x.y", "..x", "café", "cafe\u0301", "emoji👨\u200d👩"} {
			r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": n, "payload": "p"})
			if r.Status != 200 {
				t.Errorf("SGP name %q: want 200, got %d %s", n, r.Status, r.Body)
				continue
			}
			if got := r.Object(t)["name"]; got != n {
				t.Errorf("name stored as %q, sent %q", got, n)
			}
		}
		// DSM names (groups here; apps, objects and credentials share the rule).
		v.NoValidate = true
		for _, n := range bad {
			r := v.Do(t, "POST", "/sys/v1/groups", map[string]any{"name": n}, "Authorization", "Basic "+v.AdminKey)
			if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "control") {
				t.Errorf("DSM name %q: want 400, got %d %s", n, r.Status, r.Body)
			}
		}
	})
}

// TestClientErrorsAreNotLoggedAsErrors: a client's mistakes are not
// logged at ERROR level nor as internal errors.
func TestClientErrorsAreNotLoggedAsErrors(t *testing.T) {
	v := vaulttest.New(t, "sqlite")
	v.NoValidate = true
	v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", `{"type":"key"}`)
	v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", `not json`)
	v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials?limit=0", nil)
	v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"type": "key", "name": "x\x1b", "payload": "p"})
	v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/missing", nil)
	v.SGP(t, "wrong-"+strings.Repeat("k", 40), "", "GET", "/v5/credentials", nil)
	v.Do(t, "POST", "/sys/v1/groups", `{"name":`, "Authorization", "Basic "+v.AdminKey)
	v.Do(t, "PUT", "/sys/v1/groups", nil)
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(v.Logs()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if m["msg"] == "request failed" {
			n++
		}
		if m["level"] == "ERROR" || m["kind"] == "internal" {
			t.Errorf("client error logged as ours: %s", line)
		}
	}
	if n < 6 {
		t.Errorf("expected the failed requests to be logged (at debug level), saw %d", n)
	}
}

// TestMethodNotAllowed: a known path with another method answers 405 with
// Allow, in each dialect's error shape; an unknown path is still 404.
func TestMethodNotAllowed(t *testing.T) {
	v := vaulttest.New(t, "sqlite")
	v.NoValidate = true
	for _, tc := range []struct {
		method, path, allow string
		dsm                 bool
	}{
		{"PUT", "/v5/credentials", "GET, HEAD, POST", false},
		{"DELETE", "/v5/credentials/name/x", "GET, HEAD", false},
		{"GET", "/v5/credentials/abc/secret", "POST", false},
		{"POST", "/healthz", "GET, HEAD", false},
		{"PUT", "/sys/v1/groups", "GET, HEAD, POST", true},
		{"GET", "/sys/v1/session/auth", "POST", true},
		{"GET", "/crypto/v1/sign", "POST", true},
	} {
		r := v.Do(t, tc.method, tc.path, nil, "x-api-key", v.AdminKey)
		if r.Status != http.StatusMethodNotAllowed || r.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: want 405 Allow %q, got %d Allow %q", tc.method, tc.path, tc.allow, r.Status, r.Header.Get("Allow"))
			continue
		}
		if tc.dsm {
			if r.Header.Get("Content-Type") != "text/plain; charset=utf-8" || !strings.HasPrefix(string(r.Body), "method not allowed") {
				t.Errorf("%s %s: DSM 405 body %q %s", tc.method, tc.path, r.Header.Get("Content-Type"), r.Body)
			}
		} else if string(r.Body) != `{"detail":"Method Not Allowed"}` {
			t.Errorf("%s %s: SGP 405 body %s", tc.method, tc.path, r.Body)
		}
	}
	if r := v.Do(t, "PUT", "/v5/nothing-here", nil); r.Status != 404 || string(r.Body) != `{"detail":"Not Found"}` {
		t.Errorf("unknown path: %d %s", r.Status, r.Body)
	}
	if r := v.Do(t, "GET", "/sys/v1/nothing-here", nil); r.Status != 404 || r.Header.Get("Allow") != "" {
		t.Errorf("unknown DSM path: %d %v", r.Status, r.Header)
	}
}
