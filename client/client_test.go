package client_test

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/client"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// TestCredentials runs every operation against a real server on both
// engines, including a name that needs escaping.
func TestCredentials(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		ctx := context.Background()
		c, err := client.New(v.URL, v.AdminKey)
		if err != nil {
			t.Fatal(err)
		}
		name := "team/openai prod?#%"
		cred, err := c.Credentials.Create(ctx, client.CreateParams{Type: client.TypeKey, Name: name, Payload: "sk-1", Description: "d", Metadata: map[string]any{"k": "v"}})
		if err != nil {
			t.Fatal(err)
		}
		if cred.ID == "" || cred.Name != name || cred.Description != "d" || cred.Metadata["k"] != "v" || cred.CreatedAt.IsZero() {
			t.Fatalf("created %+v", cred)
		}
		if _, err := c.Credentials.Create(ctx, client.CreateParams{Type: client.TypeKey, Name: name, Payload: "sk-2"}); !errors.Is(err, client.ErrConflict) {
			t.Fatalf("duplicate create: %v; want ErrConflict", err)
		}
		got, err := c.Credentials.GetByName(ctx, name)
		if err != nil || got.ID != cred.ID {
			t.Fatalf("GetByName = %+v, %v", got, err)
		}
		if got, err = c.Credentials.Get(ctx, cred.ID); err != nil || got.Name != name {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		if s, err := c.Credentials.DecryptByName(ctx, name); err != nil || string(s) != "sk-1" {
			t.Fatalf("DecryptByName = %q, %v", string(s), err)
		}
		p := client.Secret("sk-new")
		if _, err := c.Credentials.Update(ctx, cred.ID, client.UpdateParams{Payload: &p}); err != nil {
			t.Fatal(err)
		}
		if s, err := c.Credentials.Decrypt(ctx, cred.ID); err != nil || string(s) != "sk-new" {
			t.Fatalf("Decrypt = %q, %v", string(s), err)
		}
		for i := range 5 {
			if _, err := c.Credentials.Create(ctx, client.CreateParams{Type: client.TypeJSON, Name: fmt.Sprintf("j%d", i), Payload: `{}`}); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		for cr, err := range c.Credentials.All(ctx, client.ListParams{Limit: 2}) {
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, cr.Name)
		}
		if len(names) != 6 {
			t.Fatalf("All = %v; want 6 credentials", names)
		}
		page, err := c.Credentials.List(ctx, client.ListParams{Name: "j3"})
		if err != nil || len(page.Items) != 1 || page.Items[0].Name != "j3" {
			t.Fatalf("List name=j3 = %+v, %v", page, err)
		}
		if _, err := c.Credentials.List(ctx, client.ListParams{Limit: 100000}); !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("List limit=100000: %v; want a validation error naming limit", err)
		}
		if err := c.Credentials.Delete(ctx, cred.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Credentials.Get(ctx, cred.ID); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("Get after delete: %v", err)
		}

		// Another account, selected with WithAccount; and a reader may not decrypt.
		other := v.NewTenant(t, "other", vault.RoleSecretReader)
		oc, _ := client.New(v.URL, other.Key, client.WithAccount(other.AccountID))
		if _, err := oc.Credentials.DecryptByName(ctx, "j1"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("other account sees j1: %v", err)
		}
		rd := v.NewMember(t, v.AccountID, "rd", vault.RoleReader)
		rc, _ := client.New(v.URL, rd.Key)
		if _, err := rc.Credentials.DecryptByName(ctx, "j1"); !errors.Is(err, client.ErrPermissionDenied) {
			t.Fatalf("reader decrypts: %v", err)
		}
		bad, _ := client.New(v.URL, "nope")
		_, err = bad.Credentials.List(ctx, client.ListParams{})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.RequestID == "" || apiErr.Attempts != 1 {
			t.Fatalf("wrong key: %#v", err)
		}
		if strings.Contains(v.Logs(), "sk-new") || strings.Contains(v.Logs(), "sk-1") {
			t.Error("a payload reached the server log")
		}
	})
}

// recorder is a test HTTP server standing in for credvault: it answers
// requests from a script and records what it got.
type recorder struct {
	mu    sync.Mutex
	reqs  []*http.Request
	times []time.Time
	srv   *httptest.Server
}

func newRecorder(t *testing.T, answer func(n int, w http.ResponseWriter)) *recorder {
	r := &recorder{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		r.mu.Lock()
		r.reqs = append(r.reqs, req)
		r.times = append(r.times, time.Now())
		n := len(r.reqs)
		r.mu.Unlock()
		answer(n, w)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func okCredential(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"id":"0190","name":"n","type":"key","credential_metadata":{},"created_at":"2026-01-01T00:00:00.000000Z","updated_at":"2026-01-01T00:00:00.000000Z"}`)
}

func unavailable(w http.ResponseWriter, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `{"detail":"database unavailable"}`)
}

// unavailableOnce answers the first request 503 with Retry-After
// retryAfter, and every later one with a credential.
func unavailableOnce(retryAfter string) func(n int, w http.ResponseWriter) {
	return func(n int, w http.ResponseWriter) {
		if n == 1 {
			unavailable(w, "Retry-After", retryAfter)
			return
		}
		okCredential(w)
	}
}

// TestRetries: 503 with Retry-After is retried after the wait the server
// asked for, with the same request id; x-should-retry: false is not
// retried; Create is retried only where it cannot have been applied.
func TestRetries(t *testing.T) {
	ctx := context.Background()
	fast := client.WithRetries(3, time.Millisecond, 5*time.Millisecond)

	t.Run("503-retry-after", func(t *testing.T) {
		r := newRecorder(t, unavailableOnce("1"))
		c, _ := client.New(r.srv.URL, "k", fast)
		if _, err := c.Credentials.Get(ctx, "0190"); err != nil {
			t.Fatal(err)
		}
		if r.count() != 2 {
			t.Fatalf("%d requests; want 2", r.count())
		}
		if gap := r.times[1].Sub(r.times[0]); gap < time.Second {
			t.Errorf("retried after %v; the server asked for 1s", gap)
		}
		if a, b := r.reqs[0].Header.Get("X-Request-Id"), r.reqs[1].Header.Get("X-Request-Id"); a == "" || a != b {
			t.Errorf("request ids %q, %q; want one id for both attempts", a, b)
		}
		if ua := r.reqs[0].Header.Get("User-Agent"); !strings.HasPrefix(ua, "credvault-go/") {
			t.Errorf("User-Agent = %q", ua)
		}
	})
	t.Run("create-on-503", func(t *testing.T) {
		r := newRecorder(t, unavailableOnce("0"))
		c, _ := client.New(r.srv.URL, "k", fast)
		if _, err := c.Credentials.Create(ctx, client.CreateParams{Type: "key", Name: "n", Payload: "p"}); err != nil || r.count() != 2 {
			t.Fatalf("err %v after %d requests; want success after 2", err, r.count())
		}
	})
	t.Run("should-retry-false", func(t *testing.T) {
		r := newRecorder(t, func(n int, w http.ResponseWriter) { unavailable(w, "Retry-After", "0", "x-should-retry", "false") })
		c, _ := client.New(r.srv.URL, "k", fast)
		_, err := c.Credentials.Get(ctx, "0190")
		if !errors.Is(err, client.ErrUnavailable) || r.count() != 1 {
			t.Fatalf("err %v after %d requests; want ErrUnavailable after 1", err, r.count())
		}
	})
	t.Run("exhausted", func(t *testing.T) {
		r := newRecorder(t, func(n int, w http.ResponseWriter) { unavailable(w) })
		c, _ := client.New(r.srv.URL, "k", fast)
		_, err := c.Credentials.List(ctx, client.ListParams{})
		var apiErr *client.Error
		if !errors.As(err, &apiErr) || apiErr.Attempts != 4 || r.count() != 4 || apiErr.Detail != "database unavailable" {
			t.Fatalf("err %#v after %d requests; want the 503 after 4", err, r.count())
		}
	})
	t.Run("create-not-retried-on-500", func(t *testing.T) {
		r := newRecorder(t, func(n int, w http.ResponseWriter) { w.WriteHeader(500) })
		c, _ := client.New(r.srv.URL, "k", fast)
		if _, err := c.Credentials.Create(ctx, client.CreateParams{Type: "key", Name: "n", Payload: "p"}); !errors.Is(err, client.ErrServer) || r.count() != 1 {
			t.Fatalf("err %v after %d requests; want one attempt", err, r.count())
		}
		if _, err := c.Credentials.Get(ctx, "x"); !errors.Is(err, client.ErrServer) || r.count() != 5 {
			t.Fatalf("Get: err %v after %d requests in all; want 4 more attempts", err, r.count())
		}
	})
	t.Run("create-not-retried-after-connection-broke", func(t *testing.T) {
		// The server reads the request, then drops the connection: the
		// create may have happened, so it is not repeated.
		var n int
		var mu sync.Mutex
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			n++
			mu.Unlock()
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		}))
		defer srv.Close()
		c, _ := client.New(srv.URL, "k", fast)
		_, err := c.Credentials.Create(ctx, client.CreateParams{Type: "key", Name: "n", Payload: "p"})
		var ce *client.ConnectionError
		if !errors.As(err, &ce) || n != 1 {
			t.Fatalf("err %v after %d requests; want a ConnectionError after 1", err, n)
		}
		n = 0
		_, err = c.Credentials.Get(ctx, "x")
		if !errors.As(err, &ce) || n != 4 {
			t.Fatalf("Get: err %v after %d requests; want 4 attempts", err, n)
		}
	})
	t.Run("connection-refused", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		c, _ := client.New("http://"+addr, "k", fast)
		_, err := c.Credentials.Create(ctx, client.CreateParams{Type: "key", Name: "n", Payload: "p"})
		var ce *client.ConnectionError
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), "cannot reach") {
			t.Fatalf("err = %v; want a ConnectionError", err)
		}
	})
	t.Run("retry-after-too-long", func(t *testing.T) {
		r := newRecorder(t, func(n int, w http.ResponseWriter) { unavailable(w, "Retry-After", "120") })
		c, _ := client.New(r.srv.URL, "k", fast)
		start := time.Now()
		if _, err := c.Credentials.Get(ctx, "x"); !errors.Is(err, client.ErrUnavailable) || r.count() != 1 || time.Since(start) > 10*time.Second {
			t.Fatalf("err %v after %d requests; want the 503 at once", err, r.count())
		}
	})
	t.Run("context", func(t *testing.T) {
		r := newRecorder(t, func(n int, w http.ResponseWriter) { unavailable(w, "Retry-After", "30") })
		c, _ := client.New(r.srv.URL, "k", fast)
		cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := c.Credentials.Get(cctx, "x"); err == nil || time.Since(start) > 10*time.Second {
			t.Fatalf("err %v after %v; want the call to end with its context", err, time.Since(start))
		}
	})
}

// TestTLS: a server with a private certificate is trusted through
// WithCAFile and refused without it.
func TestTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { okCredential(w) }))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	ctx := context.Background()
	c, _ := client.New(srv.URL, "k", client.WithRetries(0, 0, 0))
	var uerr x509.UnknownAuthorityError
	if _, err := c.Credentials.Get(ctx, "x"); !errors.As(err, &uerr) {
		t.Fatalf("untrusted certificate: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	c, err := client.New(srv.URL, "k", client.WithCAFile(ca))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Credentials.Get(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.New(srv.URL, "k", client.WithCAFile(filepath.Join(t.TempDir(), "none"))); err == nil {
		t.Error("a missing CA file was accepted")
	}
}

// TestSecretRedacts: a Secret does not show its value through fmt, slog or
// JSON.
func TestSecretRedacts(t *testing.T) {
	s := client.Secret("canary-0f3a")
	p := client.CreateParams{Name: "n", Payload: s}
	var b strings.Builder
	slog.New(slog.NewJSONHandler(&b, nil)).Info("x", "secret", s, "params", p)
	for _, out := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q", p, p, p, s, s), b.String()} {
		if strings.Contains(out, "canary") {
			t.Errorf("secret shown: %s", out)
		}
	}
}

// TestSDKImportsNoInternalPackage: the SDK is importable by other modules,
// so it must not depend on the module's internal packages.
func TestSDKImportsNoInternalPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if strings.Contains(p, "/internal/") && strings.HasPrefix(p, "github.com/credvault/") {
			t.Errorf("the SDK depends on %s", p)
		}
	}
}
