package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
)

// fuzzVault builds a real vault (SQLite file) and returns its handler and
// admin key. Requests go straight to the handler: the fuzzer needs speed,
// and the HTTP parsing in front of it is net/http's.
func fuzzVault(f *testing.F) (http.Handler, string) {
	f.Helper()
	a, err := app.Open(context.Background(), app.Config{DataDir: f.TempDir(), Logger: slog.New(slog.DiscardHandler)})
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
		if w := serve(h, r); w.Code >= 500 {
			t.Fatalf("key %q account %q: %d %s", k, acct, w.Code, w.Body)
		}
	})
}
