package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
)

// fuzzVault builds a real vault (SQLite file) and returns its handler and
// admin key. Requests go straight to the handler: the fuzzer needs speed,
// and the HTTP parsing in front of it is net/http's. The failed-auth
// throttle is off: with it, every input after the first ~30 wrong keys
// would stop at a 429 and never reach authentication or the handlers
// (TestFuzzVault_NotThrottled; the throttle has tests of its own).
func fuzzVault(f testing.TB) (http.Handler, string) {
	f.Helper()
	a, err := app.Open(context.Background(), app.Config{DataDir: f.TempDir(), Logger: slog.New(slog.DiscardHandler), FailedAuthPerMinute: -1})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	boot, err := a.Service.Bootstrap(context.Background(), "")
	if err != nil {
		f.Fatal(err)
	}
	return a.Handler, boot.APIKey
}

func serve(h http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// FuzzSGPBodies sends arbitrary bodies to the SGP create and update
// decoders. No input may panic or produce a 5xx.
func FuzzSGPBodies(f *testing.F) {
	h, key := fuzzVault(f)
	// An existing credential to PATCH.
	req := httptest.NewRequest("POST", "/v5/credentials", strings.NewReader(`{"type":"key","name":"target","payload":"p"}`))
	req.Header.Set("x-api-key", key)
	w := serve(h, req)
	if w.Code != 200 {
		f.Fatalf("seed create: %d %s", w.Code, w.Body)
	}
	id := w.Body.String()[7:43]
	for _, s := range []string{
		`{"type":"key","name":"a","payload":"b"}`,
		`{"type":"json","name":"j","payload":"{\"a\":1}","credential_metadata":{"x":[1,2]}}`,
		`{"type":1}`, `[]`, `null`, `"x"`, `{`, ``, `{"name":"\u0000"}`, `{"payload":{"nested":true}}`,
		`{"type":"json","payload":"[1,"}`, `{"credential_metadata":"x"}`, `{"name":"` + strings.Repeat("n", 2000) + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, r := range []*http.Request{
			httptest.NewRequest("POST", "/v5/credentials", strings.NewReader(body)),
			httptest.NewRequest("PATCH", "/v5/credentials/"+id, strings.NewReader(body)),
		} {
			r.Header.Set("x-api-key", key)
			if w := serve(h, r); w.Code >= 500 {
				t.Fatalf("%s %s: %d %s", r.Method, r.URL, w.Code, w.Body)
			}
		}
	})
}

// FuzzSGPQueryAndPaths sends arbitrary list queries (including cursors) and
// arbitrary ids and names in paths.
func FuzzSGPQueryAndPaths(f *testing.F) {
	h, key := fuzzVault(f)
	for i := 0; i < 5; i++ {
		req := httptest.NewRequest("POST", "/v5/credentials", strings.NewReader(`{"type":"key","name":"c`+string(rune('a'+i))+`","payload":"p"}`))
		req.Header.Set("x-api-key", key)
		serve(h, req)
	}
	for _, s := range []string{
		"limit=2", "limit=0", "limit=-1", "limit=99999999999999999999", "sort_by=name&sort_order=desc",
		"starting_after=00000000-0000-0000-0000-000000000000", "ending_before=x&limit=1", "name=ca",
		"sort_by=%27;DROP TABLE credentials;--", "starting_after=a&ending_before=b", "%zz",
	} {
		f.Add(s, "ca")
	}
	f.Fuzz(func(t *testing.T, query, seg string) {
		r := httptest.NewRequest("GET", "/v5/credentials", nil)
		r.URL.RawQuery = query
		r.Header.Set("x-api-key", key)
		if w := serve(h, r); w.Code >= 500 {
			t.Fatalf("list ?%s: %d %s", query, w.Code, w.Body)
		}
		for _, p := range []struct{ method, path string }{
			{"GET", "/v5/credentials/"}, {"GET", "/v5/credentials/name/"}, {"DELETE", "/v5/credentials/"},
		} {
			r := httptest.NewRequest(p.method, "/", nil)
			r.URL.Path = p.path + seg
			r.Header.Set("x-api-key", key)
			if w := serve(h, r); w.Code >= 500 {
				t.Fatalf("%s %q: %d %s", p.method, r.URL.Path, w.Code, w.Body)
			}
		}
	})
}

// TestFuzzVault_NotThrottled: the fuzzers' vault answers every wrong key
// with 401, however many came before, so that fuzzed inputs reach the
// authenticator and the handlers rather than the throttle.
func TestFuzzVault_NotThrottled(t *testing.T) {
	h, _ := fuzzVault(t)
	for i := range 100 {
		r := httptest.NewRequest("GET", "/v5/credentials", nil)
		r.Header.Set("x-api-key", fmt.Sprintf("wrong-key-%d", i))
		if w := serve(h, r); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong key %d: %d %s, want 401", i, w.Code, w.Body)
		}
	}
}

// FuzzAuthHeaders sends arbitrary API keys and account headers.
func FuzzAuthHeaders(f *testing.F) {
	h, key := fuzzVault(f)
	f.Add(key, "")
	f.Add("", "x")
	f.Add("Zm9vOmJhcg==", "00000000-0000-0000-0000-000000000000")
	f.Fuzz(func(t *testing.T, k, acct string) {
		r := httptest.NewRequest("GET", "/v5/credentials", nil)
		r.Header["X-Api-Key"] = []string{k}
		r.Header["X-Selected-Account-Id"] = []string{acct}
		if w := serve(h, r); w.Code >= 500 || w.Code == http.StatusTooManyRequests {
			t.Fatalf("key %q account %q: %d %s", k, acct, w.Code, w.Body)
		}
	})
}

// dsmFixture creates a group, an RSA key, an exportable AES key and an OCI
// credential for the DSM fuzzers to aim at.
func dsmFixture(f *testing.F, h http.Handler, key string) map[string]string {
	f.Helper()
	do := func(method, path, body string) map[string]any {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r.Header.Set("Authorization", "Basic "+key)
		w := serve(h, r)
		if w.Code >= 300 {
			f.Fatalf("fixture %s %s: %d %s", method, path, w.Code, w.Body)
		}
		var m map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &m)
		return m
	}
	ids := map[string]string{}
	ids["group"] = do("POST", "/sys/v1/groups", `{"name":"fuzz"}`)["group_id"].(string)
	ids["rsa"] = do("POST", "/crypto/v1/keys", `{"name":"fuzz-rsa","obj_type":"RSA","key_size":2048,"group_id":"`+ids["group"]+`","allow_credential_use":true}`)["kid"].(string)
	ids["aes"] = do("POST", "/crypto/v1/keys", `{"name":"fuzz-aes","obj_type":"AES","key_size":256,"group_id":"`+ids["group"]+`","key_ops":["ENCRYPT","DECRYPT","EXPORT"]}`)["kid"].(string)
	ids["cred"] = do("POST", "/sys/v1/credentials", `{"name":"fuzz-cred","group_id":"`+ids["group"]+`","credential_details":{"$type":"Oci","body":{"$type":"ApiKey","user_ocid":"u","tenant_ocid":"t","signing_key":"`+ids["rsa"]+`"}}}`)["credential_id"].(string)
	return ids
}

// FuzzDSMBodies sends arbitrary bodies to every DSM endpoint that decodes
// one. No input may panic or produce a 5xx.
func FuzzDSMBodies(f *testing.F) {
	h, key := fuzzVault(f)
	ids := dsmFixture(f, h, key)
	targets := []struct{ method, path string }{
		{"POST", "/sys/v1/groups"}, {"PATCH", "/sys/v1/groups/" + ids["group"]},
		{"POST", "/sys/v1/apps"},
		{"POST", "/crypto/v1/keys"}, {"PUT", "/crypto/v1/keys"}, {"PATCH", "/crypto/v1/keys/" + ids["aes"]},
		{"POST", "/crypto/v1/keys/info"}, {"POST", "/crypto/v1/keys/export"}, {"POST", "/crypto/v1/keys/rekey"},
		{"POST", "/crypto/v1/sign"}, {"POST", "/crypto/v1/verify"},
		{"POST", "/sys/v1/credentials"}, {"PATCH", "/sys/v1/credentials/" + ids["cred"]},
		{"POST", "/sys/v1/credentials/" + ids["cred"] + "/rotate"}, {"POST", "/sys/v1/session/auth"},
		{"POST", "/crypto/v1/encrypt"}, {"POST", "/crypto/v1/decrypt"}, {"POST", "/sys/v1/session/select_account"},
	}
	for _, s := range []string{
		`{"name":"k","obj_type":"EC","elliptic_curve":"NistP256","group_id":"` + ids["group"] + `"}`,
		`{"name":"s","obj_type":"SECRET","value":"c2VjcmV0","group_id":"` + ids["group"] + `"}`,
		`{"key":{"kid":"` + ids["rsa"] + `"},"hash_alg":"SHA256","data":"aGVsbG8="}`,
		`{"key":{"kid":"` + ids["rsa"] + `"},"hash_alg":"SHA256","hash":"AAAA","signature":"AAAA"}`,
		`{"kid":"` + ids["aes"] + `"}`, `{"name":"fuzz-rsa"}`, `{"method":{"$type":"Generate"}}`,
		`{"credential_details":{"$type":"Azure","body":{"$type":"Certificate"}}}`, `{"$type":"x"}`,
		`{"key":{"kid":"` + ids["aes"] + `"},"alg":"AES","mode":"GCM","tag_len":128,"plain":"aGVsbG8=","ad":"AA=="}`,
		`{"key":{"kid":"` + ids["aes"] + `"},"mode":"CBC","iv":"AAAAAAAAAAAAAAAAAAAAAA==","cipher":"AAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"key":{"kid":"` + ids["rsa"] + `"},"alg":"RSA","mode":{"OAEP":{"mgf":{"mgf1":{"hash":"SHA1"}}}},"plain":"aGVsbG8="}`,
		`{"key":{"name":"fuzz-rsa"},"mode":{"PKCS1_V15":{}},"cipher":"AAAA"}`, `{"acct_id":"00000000-0000-0000-0000-000000000000"}`,
		`{"key_ops":["SIGN"],"enabled":false}`, `{"obj_type":"RSA","key_size":99999}`, `[]`, `null`, `{`, ``,
	} {
		f.Add(uint8(0), s)
	}
	f.Fuzz(func(t *testing.T, which uint8, body string) {
		tg := targets[int(which)%len(targets)]
		r := httptest.NewRequest(tg.method, tg.path, strings.NewReader(body))
		r.Header.Set("Authorization", "Basic "+key)
		if w := serve(h, r); w.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, w.Code, w.Body)
		}
	})
}

// FuzzDSMQueryAndPaths sends arbitrary list queries, path ids and
// Authorization headers to the DSM dialect.
func FuzzDSMQueryAndPaths(f *testing.F) {
	h, key := fuzzVault(f)
	dsmFixture(f, h, key)
	for _, s := range []string{
		"limit=1&offset=1", "sort_by=credential_name:desc", "filter=%7B%22name%22:%22x%22%7D", "limit=-1",
		"sort=name:asc&start=a", "with_metadata=true&obj_type=RSA", "continuation_token=", "size=5&from=2&range_from=0",
	} {
		f.Add(s, "00000000-0000-0000-0000-000000000000", "Basic "+key)
	}
	f.Add("", "not-a-uuid", "Bearer xyz")
	f.Add("", "", "Basic Zm9vOmJhcg==")
	f.Fuzz(func(t *testing.T, query, seg, auth string) {
		for _, p := range []struct{ method, path string }{
			{"GET", "/sys/v1/credentials"}, {"GET", "/crypto/v1/keys"}, {"GET", "/sys/v1/groups"}, {"GET", "/sys/v1/apps"}, {"GET", "/sys/v1/logs"},
		} {
			r := httptest.NewRequest(p.method, p.path, nil)
			r.URL.RawQuery = query
			r.Header.Set("Authorization", "Basic "+key)
			if w := serve(h, r); w.Code >= 500 {
				t.Fatalf("%s %s?%s: %d %s", p.method, p.path, query, w.Code, w.Body)
			}
		}
		// Each path id once with the admin's key (to reach the handler) and
		// once with the fuzzed Authorization header (to reach the
		// authenticator).
		for _, p := range []struct{ method, path, suffix string }{
			{"GET", "/sys/v1/credentials/", ""}, {"GET", "/sys/v1/groups/", ""}, {"GET", "/sys/v1/apps/", ""}, {"DELETE", "/crypto/v1/keys/", ""},
			{"GET", "/sys/v1/apps/", "/credential"},
		} {
			for _, a := range []string{"Basic " + key, auth} {
				r := httptest.NewRequest(p.method, "/", nil)
				r.URL.Path = p.path + seg + p.suffix
				r.Header["Authorization"] = []string{a}
				if w := serve(h, r); w.Code >= 500 || w.Code == http.StatusTooManyRequests {
					t.Fatalf("%s %q (auth %q): %d %s", p.method, r.URL.Path, a, w.Code, w.Body)
				}
			}
		}
	})
}
