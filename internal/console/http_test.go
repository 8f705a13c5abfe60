package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/console"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// browser is a cookie-keeping HTTP client that does not follow redirects.
type browser struct {
	t    *testing.T
	v    *vaulttest.Vault
	c    *http.Client
	csrf string
}

func newBrowser(t *testing.T, v *vaulttest.Vault) *browser {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{t: t, v: v, c: c}
}

type page struct {
	status int
	header http.Header
	body   string
}

var csrfMeta = regexp.MustCompile(`name="csrf-token" content="([^"]+)"`)

func (b *browser) do(method, path string, form url.Values, headers ...string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.v.URL+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if m := csrfMeta.FindStringSubmatch(p.body); m != nil {
		b.csrf = m[1]
	}
	return p
}

func (b *browser) get(path string) page { return b.do(http.MethodGet, path, nil) }

// post sends a form with the session's CSRF token.
func (b *browser) post(path string, form url.Values) page {
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, path, form)
}

func (b *browser) signIn(key string) {
	b.t.Helper()
	p := b.do(http.MethodPost, "/ui/login", url.Values{"api_key": {key}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/credentials" {
		b.t.Fatalf("sign in: status %d location %q body %s", p.status, p.header.Get("Location"), p.body)
	}
	if p := b.get("/ui/credentials"); p.status != http.StatusOK || b.csrf == "" {
		b.t.Fatalf("after sign in: status %d, csrf %q", p.status, b.csrf)
	}
}

func expectStatus(t *testing.T, p page, want int) {
	t.Helper()
	if p.status != want {
		t.Fatalf("status %d, want %d; body: %.400s", p.status, want, p.body)
	}
}

func TestConsole_SecurityHeaders(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		b := newBrowser(t, v)
		for _, path := range []string{"/ui/login", "/ui/static/console.js"} {
			p := b.get(path)
			expectStatus(t, p, http.StatusOK)
			for h, want := range map[string]string{
				"Content-Security-Policy": console.CSP,
				"X-Frame-Options":         "DENY",
				"Cache-Control":           "no-store",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "same-origin",
			} {
				if got := p.header.Get(h); got != want {
					t.Errorf("%s: %s = %q, want %q", path, h, got, want)
				}
			}
		}
		if strings.Contains(console.CSP, "unsafe-inline") || strings.Contains(console.CSP, "unsafe-eval") {
			t.Errorf("CSP allows unsafe sources: %s", console.CSP)
		}
		// Not signed in: pages send to the sign-in page, POSTs are refused.
		if p := b.get("/ui/credentials"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/login" {
			t.Errorf("unsigned GET: %d %q", p.status, p.header.Get("Location"))
		}
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", url.Values{"name": {"x"}}), http.StatusUnauthorized)
		// The sign-in form has the fields the issue names, and says that
		// password sign-in is not configured.
		p := b.get("/ui/login")
		for _, s := range []string{`name="email"`, `name="password"`, `name="api_key"`, `id="pw-off"`} {
			if !strings.Contains(p.body, s) {
				t.Errorf("login page lacks %s", s)
			}
		}
		expectStatus(t, b.do(http.MethodPost, "/ui/login", url.Values{"email": {"a@example.com"}, "password": {"pw"}}), http.StatusBadRequest)
		expectStatus(t, b.do(http.MethodPost, "/ui/login", url.Values{"api_key": {"wrong-key-wrong-key-wrong-key-wrong"}}), http.StatusUnauthorized)
	})
}

func TestConsole_CSRF(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		b := newBrowser(t, v)
		b.signIn(v.AdminKey)
		form := func() url.Values {
			return url.Values{"name": {"csrf-test"}, "type": {"secret"}, "payload": {"s3cret"}}
		}
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", form()), http.StatusForbidden)
		bad := form()
		bad.Set("csrf", "not-the-token")
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", bad), http.StatusForbidden)
		good := form()
		good.Set("csrf", b.csrf)
		// A valid token from a cross-site page is refused too.
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", good, "Origin", "https://evil.example"), http.StatusForbidden)
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", good, "Sec-Fetch-Site", "cross-site"), http.StatusForbidden)
		expectStatus(t, b.do(http.MethodPost, "/ui/logout", url.Values{}), http.StatusForbidden)
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/csrf-test", nil); r.Status != http.StatusNotFound {
			t.Fatalf("a refused POST created the credential: %d", r.Status)
		}
		// The same request with the token works.
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", good), http.StatusSeeOther)
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/csrf-test", nil); r.Status != http.StatusOK {
			t.Fatalf("credential not created: %d", r.Status)
		}
		// The token is tied to the session: another session's token fails.
		other := newBrowser(t, v)
		other.signIn(v.AdminKey)
		stolen := form()
		stolen.Set("name", "csrf-test-2")
		stolen.Set("csrf", other.csrf)
		expectStatus(t, b.do(http.MethodPost, "/ui/credentials", stolen), http.StatusForbidden)
	})
}

func TestConsole_Sessions(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		b := newBrowser(t, v)
		p := b.do(http.MethodPost, "/ui/login", url.Values{"api_key": {v.AdminKey}})
		var ck *http.Cookie
		for _, c := range (&http.Response{Header: p.header}).Cookies() {
			if c.Name == console.CookieName {
				ck = c
			}
		}
		if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/ui/" || ck.Secure {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path=/ui/, not Secure over plain HTTP", ck)
		}
		// Behind a TLS-terminating proxy the cookie is Secure.
		pp := newBrowser(t, v).do(http.MethodPost, "/ui/login", url.Values{"api_key": {v.AdminKey}}, "X-Forwarded-Proto", "https")
		if !strings.Contains(pp.header.Get("Set-Cookie"), "Secure") {
			t.Fatalf("cookie behind a TLS proxy: %q", pp.header.Get("Set-Cookie"))
		}
		db := v.RawDB(t)
		// Stored hashed: the token itself is nowhere in the table.
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil || n != 2 {
			t.Fatalf("sessions stored: %d, %v", n, err)
		}
		rows, err := db.Query(`SELECT token_hash, principal_id, account_id, key_id FROM console_sessions`)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var h, a, b2, c string
			if err := rows.Scan(&h, &a, &b2, &c); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(h+a+b2+c, ck.Value) || len(h) != 64 {
				t.Fatalf("the session token is stored in the clear")
			}
		}
		rows.Close()

		// Idle timeout: a session last seen 31 minutes ago is over.
		b.signIn(v.AdminKey)
		expectStatus(t, b.get("/ui/credentials"), http.StatusOK)
		if _, err := db.Exec(`UPDATE console_sessions SET last_seen_at = last_seen_at - 1860000000`); err != nil {
			t.Fatal(err)
		}
		if p := b.get("/ui/credentials"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/ui/login" {
			t.Fatalf("idle session still works: %d", p.status)
		}
		// Absolute timeout: a session past expires_at is over, however active.
		b.signIn(v.AdminKey)
		if _, err := db.Exec(`UPDATE console_sessions SET expires_at = created_at`); err != nil {
			t.Fatal(err)
		}
		if p := b.get("/ui/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("expired session still works: %d", p.status)
		}
		// Sign out ends the session for the cookie too (replayed).
		b.signIn(v.AdminKey)
		old := b.c.Jar.Cookies(mustURL(t, v.URL+"/ui/"))
		expectStatus(t, b.post("/ui/logout", nil), http.StatusSeeOther)
		replay := newBrowser(t, v)
		replay.c.Jar.SetCookies(mustURL(t, v.URL+"/ui/"), old)
		if p := replay.get("/ui/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("signed-out session still works: %d", p.status)
		}
		// Revoking the key that opened a session ends the session.
		m := v.NewMember(t, v.AccountID, "revokee", vault.RoleWriter)
		rb := newBrowser(t, v)
		rb.signIn(m.Key)
		keyID, _ := vault.APIKeyID(m.Key)
		if err := v.App.Service.RevokeAPIKey(context.Background(), keyID); err != nil {
			t.Fatal(err)
		}
		if p := rb.get("/ui/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("session of a revoked key still works: %d", p.status)
		}
	})
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestConsole_Roles(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		admin := newBrowser(t, v)
		admin.signIn(v.AdminKey)
		p := admin.post("/ui/credentials", url.Values{"name": {"db/password"}, "type": {"secret"}, "payload": {"canary-PAYLOAD-7731"}, "metadata": {`{"team":"data"}`}})
		expectStatus(t, p, http.StatusSeeOther)
		detail := p.header.Get("Location")
		credPath := strings.SplitN(detail, "?", 2)[0]
		page := admin.get(detail)
		expectStatus(t, page, http.StatusOK)
		if strings.Contains(page.body, "canary-PAYLOAD-7731") {
			t.Fatal("the detail page contains the payload before any reveal")
		}
		if !strings.Contains(page.body, `id="reveal"`) {
			t.Fatal("an admin has no reveal button")
		}
		rev := admin.do(http.MethodPost, credPath+"/reveal", nil, "X-CSRF-Token", admin.csrf)
		expectStatus(t, rev, http.StatusOK)
		if !strings.Contains(rev.body, "canary-PAYLOAD-7731") || rev.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("reveal: %s (Cache-Control %q)", rev.body, rev.header.Get("Cache-Control"))
		}

		reader := v.NewMember(t, v.AccountID, "looker", vault.RoleReader)
		rb := newBrowser(t, v)
		rb.signIn(reader.Key)
		page = rb.get(credPath)
		expectStatus(t, page, http.StatusOK)
		if strings.Contains(page.body, `id="reveal"`) || strings.Contains(page.body, `id="replace"`) || strings.Contains(page.body, `id="delete"`) {
			t.Fatal("a reader sees reveal, replace or delete controls")
		}
		if !strings.Contains(page.body, "db/password") {
			t.Fatal("a reader does not see the credential's name")
		}
		// The server refuses anyway.
		p = rb.do(http.MethodPost, credPath+"/reveal", nil, "X-CSRF-Token", rb.csrf)
		expectStatus(t, p, http.StatusForbidden)
		if strings.Contains(p.body, "canary-PAYLOAD-7731") {
			t.Fatal("refused reveal leaks the payload")
		}
		expectStatus(t, rb.post(credPath+"/payload", url.Values{"payload": {"overwritten"}}), http.StatusForbidden)
		expectStatus(t, rb.get("/ui/audit"), http.StatusForbidden)
		expectStatus(t, rb.get("/ui/access"), http.StatusForbidden)
		// The refused decrypt is in the audit trail, as an SGP decrypt's.
		recs, err := v.App.Service.AuditLogs(context.Background(), &vault.Identity{Principal: vault.Principal{ID: v.PrincipalID, Kind: vault.PrincipalUser}, AccountID: v.AccountID, Role: vault.RoleAdmin}, vault.AuditQuery{PrincipalID: reader.PrincipalID})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range recs {
			found = found || (r.Action == "credential.decrypt" && r.Outcome == "permission_denied")
		}
		if !found {
			t.Fatal("the reader's refused reveal is not audited as credential.decrypt")
		}
	})
}

func TestConsole_AccessScope(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		// An admin of another account cannot mint keys for, or revoke
		// keys of, a principal of this one.
		other := v.NewTenant(t, "other", vault.RoleAdmin)
		ob := newBrowser(t, v)
		ob.signIn(other.Key)
		expectStatus(t, ob.post("/ui/access/keys", url.Values{"principal": {v.PrincipalID}, "name": {"x"}, "ttl_days": {"1"}}), http.StatusForbidden)
		keyID, _ := vault.APIKeyID(v.AdminKey)
		expectStatus(t, ob.post("/ui/access/keys/"+keyID+"/revoke", url.Values{"principal": {v.PrincipalID}, "confirm": {"yes"}}), http.StatusForbidden)
		if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
			t.Fatalf("the admin key stopped working: %d", r.Status)
		}
		// The account's own admin creates a key, shown once, that works.
		m := v.NewMember(t, v.AccountID, "worker", vault.RoleWriter)
		ab := newBrowser(t, v)
		ab.signIn(v.AdminKey)
		p := ab.post("/ui/access/keys", url.Values{"principal": {m.PrincipalID}, "name": {"ci"}, "ttl_days": {"1"}})
		expectStatus(t, p, http.StatusOK)
		key := regexp.MustCompile(`<pre id="new-key">([^<]+)</pre>`).FindStringSubmatch(p.body)
		if key == nil {
			t.Fatal("new key not shown")
		}
		if r := v.SGP(t, key[1], "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
			t.Fatalf("new key does not work: %d", r.Status)
		}
		if strings.Contains(ab.get("/ui/access").body, key[1]) {
			t.Fatal("the key is shown again")
		}
		newID, _ := vault.APIKeyID(key[1])
		expectStatus(t, ab.post("/ui/access/keys/"+newID+"/revoke", url.Values{"principal": {m.PrincipalID}}), http.StatusBadRequest)
		if r := v.SGP(t, key[1], "", "GET", "/v5/credentials", nil); r.Status != http.StatusOK {
			t.Fatalf("an unconfirmed revoke revoked the key: %d", r.Status)
		}
		expectStatus(t, ab.post("/ui/access/keys/"+newID+"/revoke", url.Values{"principal": {m.PrincipalID}, "confirm": {"yes"}}), http.StatusSeeOther)
		if r := v.SGP(t, key[1], "", "GET", "/v5/credentials", nil); r.Status != http.StatusUnauthorized {
			t.Fatalf("revoked key still works: %d", r.Status)
		}
	})
}

// TestConsole_SessionsAcrossReplicas: a session opened on one replica works
// on another process over the same database, and signing out on the second
// ends it on the first (sessions live in the database, not in memory).
func TestConsole_SessionsAcrossReplicas(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		a2, err := app.Open(context.Background(), v.Config)
		if err != nil {
			t.Fatal(err)
		}
		srv2 := httptest.NewServer(a2.Handler)
		t.Cleanup(func() { srv2.Close(); a2.Close() })
		b := newBrowser(t, v)
		b.signIn(v.AdminKey)
		v2 := *v
		v2.URL = srv2.URL
		b2 := newBrowser(t, &v2)
		b2.c.Jar.SetCookies(mustURL(t, srv2.URL+"/ui/"), b.c.Jar.Cookies(mustURL(t, v.URL+"/ui/")))
		p := b2.get("/ui/credentials")
		expectStatus(t, p, http.StatusOK)
		expectStatus(t, b2.post("/ui/logout", nil), http.StatusSeeOther)
		if p := b.get("/ui/credentials"); p.status != http.StatusSeeOther {
			t.Fatalf("signed out on replica 2, still signed in on replica 1: %d", p.status)
		}
	})
}
