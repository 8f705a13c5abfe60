// Package console is credvault's web console: server-rendered html/template
// pages under /ui/, with a little plain JavaScript in static files, all
// embedded in the binary. It calls the core (vault.Service) in process,
// with the same Identity the API dialects build, so a console user can do
// exactly what their role allows through the API and nothing more.
//
// Security choices, each with its reason:
//   - Sessions are random 256-bit tokens in an HttpOnly, SameSite=Strict
//     cookie (Secure when the request came over TLS). Only the token's
//     SHA-256 hash is stored, in the database, so every replica sees every
//     session and a database reader cannot sign in. Sessions end after an
//     idle timeout and an absolute timeout, and with the API key that
//     opened them (revoked or expired).
//   - Every POST carries a synchronizer CSRF token: an HMAC of the session
//     token, so it is tied to the session and needs no storage. The sign-in
//     form, which has no session yet, is checked by Origin/Sec-Fetch-Site.
//   - A strict Content-Security-Policy with no inline script or style,
//     X-Frame-Options DENY, Referrer-Policy same-origin (no URL leaves
//     the site; no-referrer would make browsers send Origin: null) and
//     Cache-Control: no-store on every response.
//   - Secrets never appear in a URL: a payload is revealed by a POST made
//     by fetch and shown in the page only; it is never rendered into HTML.
package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/vault"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Timeouts of a console session.
const (
	IdleTimeout     = 30 * time.Minute
	AbsoluteTimeout = 12 * time.Hour
	// touchEvery bounds how often a request writes last_seen_at.
	touchEvery = time.Minute
)

// CookieName is the session cookie's name.
const CookieName = "credvault_console"

// CSP is the Content-Security-Policy of every console response.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"

// SessionStore keeps console sessions in the database, so that every
// replica sees every session (store.ConsoleSessionStore; the storage
// engine implements it). Get returns an error of kind NotFound for an
// unknown hash; Touch too for a session that is gone.
type SessionStore interface {
	CreateConsoleSession(ctx context.Context, s *store.ConsoleSession) error
	GetConsoleSession(ctx context.Context, hash []byte) (*store.ConsoleSession, error)
	TouchConsoleSession(ctx context.Context, hash []byte, accountID string, at time.Time) error
	DeleteConsoleSession(ctx context.Context, hash []byte) error
	DeleteConsoleSessionsBefore(ctx context.Context, t, idleBefore time.Time) error
}

// Directory is what the console reads about accounts, principals,
// memberships and API keys: to rebuild a session's identity on every
// request (so that a revoked key or a removed membership takes effect at
// once) and to show the access page. vault.AccountStore and
// vault.APIKeyStore together implement it.
type Directory interface {
	GetAccount(ctx context.Context, id string) (*vault.Account, error)
	GetPrincipal(ctx context.Context, id string) (*vault.Principal, error)
	ListPrincipals(ctx context.Context) ([]vault.Principal, error)
	ListMemberships(ctx context.Context, principalID string) ([]vault.Membership, error)
	ListAPIKeys(ctx context.Context, principalID string) ([]vault.APIKey, error)
}

// Store is everything the console needs from the storage engine
// (store.Engine implements it): sessions, the directory, and the audit
// trail that the audit page verifies.
type Store interface {
	SessionStore
	Directory
	vault.AuditStore
}

// PasswordLogin signs a user in with email and password. It returns the
// identity in the user's default account; a wrong email or password is
// Unauthenticated.
type PasswordLogin interface {
	LoginPassword(ctx context.Context, email, password string) (*vault.Identity, error)
}

// Deps are the console's dependencies.
type Deps struct {
	Service *vault.Service
	Logger  *slog.Logger
	// Sessions stores sessions, Directory is read for identities and the
	// access page, Audit is the trail verified on the audit page: all the
	// vault's database (see Store). Without all three the console answers
	// 503.
	Sessions  SessionStore
	Directory Directory
	Audit     vault.AuditStore
	// Passwords, if set, enables sign-in with email and password.
	Passwords PasswordLogin
	// Now is the clock (nil: the service's).
	Now func() time.Time
}

type console struct {
	svc       *vault.Service
	dir       Directory
	trail     vault.AuditStore
	log       *slog.Logger
	sessions  SessionStore
	passwords PasswordLogin
	now       func() time.Time
	pages     map[string]*template.Template
}

// Register mounts the console under /ui/ on mux. Without its stores
// (Deps.Sessions, Directory and Audit) the console answers 503 with a
// short explanation.
func Register(mux *http.ServeMux, d Deps) {
	c := &console{svc: d.Service, dir: d.Directory, trail: d.Audit, log: d.Logger, sessions: d.Sessions, passwords: d.Passwords, now: d.Now}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = d.Service.Now
	}
	if c.sessions == nil || c.dir == nil || c.trail == nil {
		c.sessions = nil // one test for "not available" below
	}
	c.pages = parseTemplates()
	static, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/ui/static/", http.FileServer(http.FS(static)))
	mux.Handle("GET /ui/static/", c.headers(files))
	mux.Handle("GET /ui/{$}", c.headers(http.HandlerFunc(c.root)))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusFound))
	mux.Handle("GET /ui/login", c.headers(http.HandlerFunc(c.loginPage)))
	mux.Handle("POST /ui/login", c.headers(http.HandlerFunc(c.login)))
	mux.Handle("POST /ui/logout", c.auth(c.logout))
	mux.Handle("POST /ui/account", c.auth(c.switchAccount))

	mux.Handle("GET /ui/credentials", c.auth(c.credentialList))
	mux.Handle("GET /ui/credentials/new", c.auth(c.credentialNew))
	mux.Handle("POST /ui/credentials", c.auth(c.credentialCreate))
	mux.Handle("GET /ui/credentials/{id}", c.auth(c.credentialDetail))
	mux.Handle("POST /ui/credentials/{id}/edit", c.auth(c.credentialEdit))
	mux.Handle("POST /ui/credentials/{id}/payload", c.auth(c.credentialPayload))
	mux.Handle("POST /ui/credentials/{id}/reveal", c.auth(c.credentialReveal))
	mux.Handle("GET /ui/credentials/{id}/delete", c.auth(c.credentialDeleteConfirm))
	mux.Handle("POST /ui/credentials/{id}/delete", c.auth(c.credentialDelete))

	mux.Handle("GET /ui/audit", c.auth(c.auditPage))

	mux.Handle("GET /ui/access", c.auth(c.accessPage))
	mux.Handle("POST /ui/access/principals", c.auth(c.accessCreatePrincipal))
	mux.Handle("POST /ui/access/memberships", c.auth(c.accessSetRole))
	mux.Handle("POST /ui/access/keys", c.auth(c.accessCreateKey))
	mux.Handle("POST /ui/access/keys/{id}/revoke", c.auth(c.accessRevokeKey))

	mux.Handle("GET /ui/dsm", c.auth(c.dsmPage))
	mux.Handle("POST /ui/dsm/credentials/{id}/rotate", c.auth(c.dsmRotate))
}

// headers sets the security headers every console response carries.
func (c *console) headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Frame-Options", "DENY")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if c.sessions == nil && !strings.HasPrefix(r.URL.Path, "/ui/static/") {
			http.Error(w, "the web console needs the vault's database for its sessions; it is not available in this server", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// session is a signed-in request's state.
type session struct {
	hash     []byte
	token    string
	id       *vault.Identity
	csrf     string
	accounts []accountChoice
}

type accountChoice struct {
	ID, Name string
	Role     vault.Role
	Current  bool
}

type pageFunc func(w http.ResponseWriter, r *http.Request, s *session) error

func hashToken(tok string) []byte {
	h := sha256.Sum256([]byte(tok))
	return h[:]
}

// csrfToken is the session's synchronizer token: an HMAC keyed by the
// session token, so only a holder of the cookie can compute it.
func csrfToken(tok string) string {
	m := hmac.New(sha256.New, []byte(tok))
	m.Write([]byte("credvault/console/csrf/v1"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

var errNoSession = errors.New("no session")

// auth resolves the session cookie to an identity (redirecting to the
// sign-in page without one), checks the CSRF token of every POST, runs fn
// and renders its error.
func (c *console) auth(fn pageFunc) http.Handler {
	return c.headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.resolve(r)
		if err != nil {
			if errors.Is(err, errNoSession) {
				clearCookie(w, r)
				if r.Method == http.MethodGet {
					http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
					return
				}
				http.Error(w, "not signed in (the session ended): sign in again", http.StatusUnauthorized)
				return
			}
			c.renderError(w, r, nil, err)
			return
		}
		httpx.SetIdentity(r.Context(), s.id)
		if r.Method == http.MethodPost {
			got := r.Header.Get("X-CSRF-Token")
			if got == "" {
				got = r.PostFormValue("csrf")
			}
			if !hmac.Equal([]byte(got), []byte(s.csrf)) || !sameOrigin(r) {
				http.Error(w, "this form expired or did not come from the console (CSRF check failed): reload the page and try again", http.StatusForbidden)
				return
			}
		}
		if err := fn(w, r, s); err != nil {
			c.renderError(w, r, s, err)
		}
	}))
}

// sameOrigin rejects requests a browser marks as cross-site. Browsers send
// Sec-Fetch-Site or Origin on POSTs; a client that sends neither is not a
// browser a cross-site page could drive.
func sameOrigin(r *http.Request) bool {
	if sfs := r.Header.Get("Sec-Fetch-Site"); sfs != "" {
		return sfs == "same-origin" || sfs == "none"
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	} else if o == "null" {
		return false
	}
	return true
}

func (c *console) resolve(r *http.Request) (*session, error) {
	ck, err := r.Cookie(CookieName)
	if err != nil || ck.Value == "" || len(ck.Value) > 128 {
		return nil, errNoSession
	}
	ctx := r.Context()
	hash := hashToken(ck.Value)
	rec, err := c.sessions.GetConsoleSession(ctx, hash)
	if err != nil {
		if vault.KindOf(err) == vault.KindNotFound {
			return nil, errNoSession
		}
		return nil, err
	}
	now := c.now()
	if !now.Before(rec.ExpiresAt) || now.Sub(rec.LastSeenAt) >= IdleTimeout {
		_ = c.sessions.DeleteConsoleSession(ctx, hash)
		return nil, errNoSession
	}
	id, accounts, err := c.identity(ctx, rec.PrincipalID, rec.AccountID, rec.KeyID)
	if err != nil {
		if vault.KindOf(err) == vault.KindUnauthenticated || vault.KindOf(err) == vault.KindNotFound {
			_ = c.sessions.DeleteConsoleSession(ctx, hash)
			return nil, errNoSession
		}
		return nil, err
	}
	if now.Sub(rec.LastSeenAt) >= touchEvery {
		if err := c.sessions.TouchConsoleSession(ctx, hash, rec.AccountID, now); err != nil {
			return nil, err
		}
	}
	return &session{hash: hash, token: ck.Value, id: id, csrf: csrfToken(ck.Value), accounts: accounts}, nil
}

// identity rebuilds the identity of a session on every request, so that a
// revoked key, a removed membership or a changed role takes effect at once.
func (c *console) identity(ctx context.Context, principalID, accountID, keyID string) (*vault.Identity, []accountChoice, error) {
	p, err := c.dir.GetPrincipal(ctx, principalID)
	if err != nil {
		return nil, nil, err
	}
	id := &vault.Identity{Principal: *p, AccountID: accountID, KeyID: keyID}
	if keyID != "" {
		keys, err := c.dir.ListAPIKeys(ctx, principalID)
		if err != nil {
			return nil, nil, err
		}
		var key *vault.APIKey
		for i := range keys {
			if keys[i].ID == keyID {
				key = &keys[i]
			}
		}
		if key == nil || key.RevokedAt != nil || (key.ExpiresAt != nil && !c.now().Before(*key.ExpiresAt)) {
			return nil, nil, vault.Errorf(vault.KindUnauthenticated, "the API key of this session was revoked or expired")
		}
		id.KeyExpiresAt = key.ExpiresAt
	}
	ms, err := c.dir.ListMemberships(ctx, principalID)
	if err != nil {
		return nil, nil, err
	}
	var accounts []accountChoice
	for _, m := range ms {
		name := m.AccountID
		if a, err := c.dir.GetAccount(ctx, m.AccountID); err == nil {
			name = a.Name
		}
		accounts = append(accounts, accountChoice{ID: m.AccountID, Name: name, Role: m.Role, Current: m.AccountID == accountID})
		if m.AccountID == accountID {
			id.Role = m.Role
		}
	}
	if id.Role == "" {
		return nil, nil, vault.Errorf(vault.KindUnauthenticated, "no longer a member of this account")
	}
	return id, accounts, nil
}

func (c *console) root(w http.ResponseWriter, r *http.Request) {
	if _, err := c.resolve(r); err == nil {
		http.Redirect(w, r, "/ui/credentials", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "login", nil, map[string]any{"Passwords": c.passwords != nil})
}

// login opens a session with an API key (field api_key) or, when
// configured, email and password.
func (c *console) login(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, msg string) {
		c.render(w, r, status, "login", nil, map[string]any{"Passwords": c.passwords != nil, "Error": msg, "Email": r.PostFormValue("email")})
	}
	if !sameOrigin(r) {
		fail(http.StatusForbidden, "This sign-in did not come from the console page.")
		return
	}
	ctx := r.Context()
	var (
		id  *vault.Identity
		err error
	)
	switch {
	case r.PostFormValue("api_key") != "":
		id, err = c.svc.Authenticate(ctx, strings.TrimSpace(r.PostFormValue("api_key")), "")
	case r.PostFormValue("email") != "" || r.PostFormValue("password") != "":
		if c.passwords == nil {
			fail(http.StatusBadRequest, "Sign-in with email and password is not configured on this vault; sign in with an API key.")
			return
		}
		id, err = c.passwords.LoginPassword(ctx, strings.TrimSpace(r.PostFormValue("email")), r.PostFormValue("password"))
	default:
		fail(http.StatusBadRequest, "Enter an API key, or an email and password.")
		return
	}
	if err != nil {
		switch vault.KindOf(err) {
		case vault.KindUnauthenticated:
			fail(http.StatusUnauthorized, "Sign-in failed: the credentials are wrong, revoked or expired.")
		case vault.KindPermissionDenied:
			fail(http.StatusForbidden, "Sign-in failed: this identity may not use its account.")
		case vault.KindRateLimited:
			fail(http.StatusTooManyRequests, "Too many failed sign-ins; wait a minute and try again.")
		default:
			httpx.LogError(ctx, c.log, err)
			fail(http.StatusServiceUnavailable, "Sign-in is unavailable right now; try again later.")
		}
		return
	}
	if id.Principal.Kind == vault.PrincipalApp {
		fail(http.StatusForbidden, "DSM app keys cannot sign in to the console; use a user or service-account key.")
		return
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	tok := base64.RawURLEncoding.EncodeToString(raw[:])
	now := c.now()
	exp := now.Add(AbsoluteTimeout)
	if id.KeyExpiresAt != nil && id.KeyExpiresAt.Before(exp) {
		exp = *id.KeyExpiresAt
	}
	_ = c.sessions.DeleteConsoleSessionsBefore(ctx, now, now.Add(-IdleTimeout))
	rec := &store.ConsoleSession{TokenHash: hashToken(tok), PrincipalID: id.Principal.ID, AccountID: id.AccountID, KeyID: id.KeyID, CreatedAt: now, LastSeenAt: now, ExpiresAt: exp}
	if err := c.sessions.CreateConsoleSession(ctx, rec); err != nil {
		httpx.LogError(ctx, c.log, err)
		fail(http.StatusServiceUnavailable, "Sign-in is unavailable right now; try again later.")
		return
	}
	_ = c.svc.Audit(ctx, id, "console.sign_in", "principal", id.Principal.ID, nil)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: tok, Path: "/ui/", HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode, Expires: exp})
	http.Redirect(w, r, "/ui/credentials", http.StatusSeeOther)
}

// secure reports whether the cookie gets the Secure attribute: over TLS,
// or behind a proxy that says it terminated TLS. Believing that header from
// anyone is safe: it can only make the cookie stricter.
func secure(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

func clearCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode, MaxAge: -1})
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := c.sessions.DeleteConsoleSession(r.Context(), s.hash); err != nil {
		return err
	}
	_ = c.svc.Audit(r.Context(), s.id, "console.sign_out", "principal", s.id.Principal.ID, nil)
	clearCookie(w, r)
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
	return nil
}

func (c *console) switchAccount(w http.ResponseWriter, r *http.Request, s *session) error {
	want := r.PostFormValue("account")
	for _, a := range s.accounts {
		if a.ID == want {
			if err := c.sessions.TouchConsoleSession(r.Context(), s.hash, want, c.now()); err != nil {
				return err
			}
			http.Redirect(w, r, "/ui/credentials", http.StatusSeeOther)
			return nil
		}
	}
	return vault.Errorf(vault.KindPermissionDenied, "you are not a member of that account")
}
