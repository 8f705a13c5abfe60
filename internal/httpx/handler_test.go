package httpx

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/credvault/credvault/internal/vault"
)

// TestAuthenticated: the identity reaches the handler and the access log;
// an authentication error or the handler's error is rendered, once.
func TestAuthenticated(t *testing.T) {
	errAuth, errFn := errors.New("auth"), errors.New("fn")
	id := &vault.Identity{AccountID: "a1", Principal: vault.Principal{ID: "p1"}}
	for _, tc := range []struct {
		name            string
		authErr, fnErr  error
		wantRan         bool
		wantRendered    error
		wantPrincipalID string
	}{
		{name: "ok", wantRan: true, wantPrincipalID: "p1"},
		{name: "err/auth", authErr: errAuth, wantRendered: errAuth},
		{name: "err/handler", fnErr: errFn, wantRan: true, wantRendered: errFn, wantPrincipalID: "p1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran, renders := false, 0
			var rendered error
			h := Authenticated(
				func(*http.Request) (*vault.Identity, error) {
					if tc.authErr != nil {
						return nil, tc.authErr
					}
					return id, nil
				},
				func(_ http.ResponseWriter, _ *http.Request, err error) { renders++; rendered = err },
				func(_ http.ResponseWriter, _ *http.Request, got *vault.Identity) error {
					ran = true
					if got != id {
						t.Errorf("handler got identity %v", got)
					}
					return tc.fnErr
				})
			ctx, info := WithInfo(t.Context())
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, "GET", "/", nil))
			if ran != tc.wantRan || rendered != tc.wantRendered || (rendered != nil && renders != 1) {
				t.Errorf("ran %t, rendered %v (%d times); want ran %t, rendered %v", ran, rendered, renders, tc.wantRan, tc.wantRendered)
			}
			if info.PrincipalID != tc.wantPrincipalID {
				t.Errorf("access log principal %q, want %q", info.PrincipalID, tc.wantPrincipalID)
			}
		})
	}
}

func TestAPIKey(t *testing.T) {
	for _, tc := range []struct{ header, value, want string }{
		{"x-api-key", "k1", "k1"},
		{"Authorization", "Basic  k2 ", "k2"},
		{"Authorization", "Bearer t", ""},
		{"", "", ""},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set(tc.header, tc.value)
		}
		if got := APIKey(r); got != tc.want {
			t.Errorf("%s: %q → %q, want %q", tc.header, tc.value, got, tc.want)
		}
	}
}

// TestReply: an error is returned and nothing is written; a result is
// written in its wire form with the status; a secret one is not cached.
func TestReply(t *testing.T) {
	double := func(n int) int { return 2 * n }
	boom := errors.New("boom")
	rec := httptest.NewRecorder()
	if err := Reply(rec, http.StatusCreated, double, 0, boom); err != boom || rec.Body.Len() != 0 {
		t.Fatalf("err %v, body %q", err, rec.Body)
	}
	rec = httptest.NewRecorder()
	if err := Reply(rec, http.StatusCreated, double, 21, nil); err != nil || rec.Code != http.StatusCreated || rec.Body.String() != "42" {
		t.Fatalf("err %v, %d %q", err, rec.Code, rec.Body)
	}
	rec = httptest.NewRecorder()
	if err := NoContent(rec, nil); err != nil || rec.Code != http.StatusNoContent {
		t.Fatalf("err %v, %d", err, rec.Code)
	}
	rec = httptest.NewRecorder()
	WriteSecretJSON(rec, http.StatusOK, map[string]string{"secret": "s"})
	if got := rec.Header().Get("Cache-Control"); got != "no-store" {
		t.Fatalf("Cache-Control %q", got)
	}
	if got := Wire([]int{1, 2}, func(n *int) int { return double(*n) }); len(got) != 2 || got[1] != 4 {
		t.Fatalf("Wire = %v", got)
	}
	if got := Wire([]int(nil), func(n *int) int { return *n }); got == nil {
		t.Fatal("Wire of no items is nil (renders as null, not [])")
	}
}
