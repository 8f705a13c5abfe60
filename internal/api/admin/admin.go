// Package admin is credvault's management API under /admin/v1/: accounts,
// principals (users and service accounts), memberships, API keys, users'
// passwords and login sessions, and "who am I". It is a thin adapter over
// the core (internal/vault), which decides who may do what and audits every
// change. The contract is api/admin-v1.openapi.yaml.
//
// Authentication: an API key (x-api-key, or Authorization: Basic <key>) or a
// login session (Authorization: Bearer <token> from POST /admin/v1/login).
// Errors are JSON {"detail": "<one client-safe sentence>"}.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Deps are the package's dependencies.
type Deps = httpx.Deps

type handlers struct {
	Deps
	as *vault.Identity // if set, every request acts as it (NewLocalHandler)
}

// NewLocalHandler returns the admin API acting as id without
// authentication, for the CLI's break-glass mode on a database it opened
// itself (id is then an operator identity, vault.OperatorIdentity). It
// must never be served on a network.
func NewLocalHandler(d Deps, id *vault.Identity) http.Handler {
	mux := http.NewServeMux()
	register(mux, d, id)
	return mux
}

// Register mounts the admin routes on mux.
func Register(mux *http.ServeMux, d Deps) { register(mux, d, nil) }

func register(mux *http.ServeMux, d Deps, as *vault.Identity) {
	h := &handlers{Deps: d, as: as}
	if h.MaxBody <= 0 || h.MaxBody > 1<<20 {
		h.MaxBody = 1 << 20
	}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	mux.Handle("POST /admin/v1/login", h.public(h.login))
	mux.Handle("POST /admin/v1/logout", h.auth(h.logout))
	mux.Handle("GET /admin/v1/me", h.auth(h.me))
	mux.Handle("POST /admin/v1/me/password", h.auth(h.changePassword))

	mux.Handle("GET /admin/v1/accounts", h.auth(h.listAccounts))
	mux.Handle("POST /admin/v1/accounts", h.auth(h.createAccount))
	mux.Handle("GET /admin/v1/accounts/{account_id}", h.auth(byPath("account_id", h.Service.AdminGetAccount, toAccount)))
	mux.Handle("PATCH /admin/v1/accounts/{account_id}", h.auth(h.renameAccount))
	mux.Handle("DELETE /admin/v1/accounts/{account_id}", h.auth(h.deleteAccount))

	mux.Handle("GET /admin/v1/principals", h.auth(h.listPrincipals))
	mux.Handle("POST /admin/v1/principals", h.auth(h.createPrincipal))
	mux.Handle("GET /admin/v1/principals/{principal_id}", h.auth(byPath("principal_id", h.Service.AdminGetPrincipal, principalOf)))
	mux.Handle("PATCH /admin/v1/principals/{principal_id}", h.auth(h.updatePrincipal))
	mux.Handle("DELETE /admin/v1/principals/{principal_id}", h.auth(h.deletePrincipal))
	mux.Handle("PUT /admin/v1/principals/{principal_id}/memberships/{account_id}", h.auth(h.putMembership))
	mux.Handle("DELETE /admin/v1/principals/{principal_id}/memberships/{account_id}", h.auth(h.revokeMembership))
	mux.Handle("PUT /admin/v1/principals/{principal_id}/password", h.auth(h.setPassword))
	mux.Handle("GET /admin/v1/principals/{principal_id}/api-keys", h.auth(byPath("principal_id", h.Service.AdminListAPIKeys, listOf(toKey))))
	mux.Handle("POST /admin/v1/principals/{principal_id}/api-keys", h.auth(h.createKey))
	mux.Handle("DELETE /admin/v1/api-keys/{key_id}", h.auth(h.revokeKey))
}

type handlerFunc = httpx.HandlerFunc

// Authenticate resolves the request's credentials: an API key (x-api-key
// or Authorization: Basic) or a login session (Authorization: Bearer).
func Authenticate(svc *vault.Service, r *http.Request) (*vault.Identity, error) {
	acct := strings.TrimSpace(r.Header.Get("x-selected-account-id"))
	authz := r.Header.Get("Authorization")
	if tok, ok := strings.CutPrefix(authz, "Bearer "); ok {
		return svc.AuthenticateUserSession(r.Context(), strings.TrimSpace(tok), acct)
	}
	return svc.Authenticate(r.Context(), httpx.APIKey(r), acct)
}

func (h *handlers) auth(fn handlerFunc) http.Handler {
	return httpx.Authenticated(h.authenticate, h.renderError, fn)
}

// authenticate is Authenticate, or the identity every request acts as
// (NewLocalHandler).
func (h *handlers) authenticate(r *http.Request) (*vault.Identity, error) {
	if h.as != nil {
		return h.as, nil
	}
	return Authenticate(h.Service, r)
}

func (h *handlers) public(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return httpx.Public(h.renderError, fn)
}

type errorBody struct {
	Detail string `json:"detail"`
	Field  string `json:"field,omitempty"`
}

func (h *handlers) renderError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r.Context(), h.Logger, err)
	var rl interface{ RetryAfter() time.Duration }
	if errors.As(err, &rl) {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(rl.RetryAfter().Seconds()+0.999))))
	}
	body := errorBody{Detail: vault.Message(err)}
	var ve *vault.Error
	if errors.As(err, &ve) {
		body.Field = ve.Field
	}
	httpx.WriteJSON(w, httpx.Status(err, nil), body) // the one kind→status table
}

// decode reads a JSON object body into v, refusing unknown fields.
func (h *handlers) decode(r *http.Request, v any) error {
	b, err := httpx.ReadBody(r, h.MaxBody)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// The decoder's message names the field or offset, never a value.
		return vault.Errorf(vault.KindInvalid, "the request body must be a JSON object of the documented form (%s)", jsonProblem(err))
	}
	if dec.More() {
		return vault.Errorf(vault.KindInvalid, "the request body must be one JSON object")
	}
	return nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "field " + te.Field + " has the wrong type"
	}
	if m := err.Error(); strings.HasPrefix(m, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(m, "json: unknown field ")
	}
	return "malformed JSON"
}

// Wire types.

type account struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

func toAccount(a *vault.Account) account {
	return account{ID: a.ID, Name: a.Name, CreatedAt: a.CreatedAt.UTC().Format(time.RFC3339Nano)}
}

type membership struct {
	AccountID   string `json:"account_id"`
	AccountName string `json:"account_name,omitempty"`
	Role        string `json:"role"`
}

type principal struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"`
	Name        string       `json:"name"`
	AccountID   string       `json:"account_id"`
	Email       *string      `json:"email"`
	HasPassword bool         `json:"has_password"`
	Disabled    bool         `json:"disabled"`
	DisabledAt  *string      `json:"disabled_at"`
	CreatedAt   string       `json:"created_at"`
	Memberships []membership `json:"memberships"`
}

func timePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := t.UTC().Format(time.RFC3339Nano)
	return &s
}

func toPrincipal(p *vault.PrincipalDetail, names map[string]string) principal {
	out := principal{ID: p.ID, Kind: string(p.Kind), Name: p.Name, AccountID: p.DefaultAccountID, HasPassword: p.HasPassword,
		Disabled: p.DisabledAt != nil, DisabledAt: timePtr(p.DisabledAt), CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339Nano), Memberships: []membership{}}
	if p.Email != "" {
		out.Email = &p.Email
	}
	for _, m := range p.Memberships {
		out.Memberships = append(out.Memberships, membership{AccountID: m.AccountID, AccountName: names[m.AccountID], Role: string(m.Role)})
	}
	return out
}

// principalOf is p on the wire, its memberships without account names.
func principalOf(p *vault.PrincipalDetail) principal { return toPrincipal(p, nil) }

// APIKey is an API key on the wire (APIKey in api/admin-v1.openapi.yaml);
// the CLI's apikey commands decode the server's answers into it.
type APIKey struct {
	KeyID       string  `json:"key_id"`
	PrincipalID string  `json:"principal_id"`
	Name        string  `json:"name"`
	CreatedAt   string  `json:"created_at"`
	ExpiresAt   *string `json:"expires_at"`
	RevokedAt   *string `json:"revoked_at"`
	LastUsedAt  *string `json:"last_used_at"`
	APIKey      string  `json:"api_key,omitempty"`
}

func toKey(k *vault.APIKey) APIKey {
	return APIKey{KeyID: k.ID, PrincipalID: k.PrincipalID, Name: k.Name, CreatedAt: k.CreatedAt.UTC().Format(time.RFC3339Nano),
		ExpiresAt: timePtr(k.ExpiresAt), RevokedAt: timePtr(k.RevokedAt), LastUsedAt: timePtr(k.LastUsedAt)}
}

// list is the wire form of a whole list.
type list[W any] struct {
	Items []W `json:"items"`
}

// listOf returns the wire form of a whole list, each item in the form
// wire gives it.
func listOf[T, W any](wire func(*T) W) func([]T) list[W] {
	return func(items []T) list[W] { return list[W]{Items: httpx.Wire(items, wire)} }
}

// Handlers.

// byPath serves a GET of what get returns for the path parameter param,
// in the wire form wire gives it.
func byPath[T, W any](param string, get func(context.Context, *vault.Identity, string) (T, error), wire func(T) W) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		v, err := get(r.Context(), id, r.PathValue(param))
		return httpx.Reply(w, http.StatusOK, wire, v, err)
	}
}

func (h *handlers) login(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	token, sess, p, err := h.Service.Login(r.Context(), req.Email, req.Password)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"token": token, "session_id": sess.ID, "principal_id": p.ID,
		"expires_at":           sess.ExpiresAt.UTC().Format(time.RFC3339Nano),
		"idle_timeout_seconds": int(vault.SessionIdleTimeout.Seconds()),
	})
	return nil
}

func (h *handlers) logout(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.Service.Logout(r.Context(), id))
}

func (h *handlers) me(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	who, err := h.Service.Whoami(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"principal": toPrincipal(&who.Principal, who.AccountName), "operator": who.Operator,
		"auth_method": who.AuthMethod, "account_id": who.AccountID, "role": string(id.Role),
	})
	return nil
}

func (h *handlers) changePassword(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		OldPassword string `json:"old_password"`
		NewPassword string `json:"new_password"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	return httpx.NoContent(w, h.Service.ChangePassword(r.Context(), id, req.OldPassword, req.NewPassword))
}

func (h *handlers) listAccounts(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	as, err := h.Service.AdminListAccounts(r.Context(), id)
	return httpx.Reply(w, http.StatusOK, listOf(toAccount), as, err)
}

func (h *handlers) createAccount(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	a, err := h.Service.AdminCreateAccount(r.Context(), id, req.Name)
	return httpx.Reply(w, http.StatusCreated, toAccount, a, err)
}

func (h *handlers) renameAccount(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	a, err := h.Service.AdminRenameAccount(r.Context(), id, r.PathValue("account_id"), req.Name)
	return httpx.Reply(w, http.StatusOK, toAccount, a, err)
}

func boolParam(r *http.Request, name string) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, vault.FieldError(name, "%s must be true or false", name)
	}
	return b, nil
}

func (h *handlers) deleteAccount(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	force, err := boolParam(r, "force")
	if err != nil {
		return err
	}
	return httpx.NoContent(w, h.Service.AdminDeleteAccount(r.Context(), id, r.PathValue("account_id"), force))
}

func (h *handlers) listPrincipals(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	qv := r.URL.Query()
	q := vault.PrincipalQuery{AccountID: qv.Get("account_id"), Kind: vault.PrincipalKind(qv.Get("kind")), Name: qv.Get("name"), After: qv.Get("after")}
	if l := qv.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 1000 {
			return vault.FieldError("limit", "limit must be an integer from 1 to 1000")
		}
		q.Limit = n
	}
	ps, more, err := h.Service.AdminListPrincipals(r.Context(), id, q)
	if err != nil {
		return err
	}
	items := httpx.Wire(ps, principalOf)
	var next *string
	if more && len(ps) > 0 {
		next = &ps[len(ps)-1].ID
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"items": items, "next_cursor": next})
	return nil
}

func (h *handlers) createPrincipal(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Name      string `json:"name"`
		Kind      string `json:"kind"`
		AccountID string `json:"account_id"`
		Role      string `json:"role"`
		Email     string `json:"email"`
		Password  string `json:"password"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	if req.Kind == "" {
		req.Kind = string(vault.PrincipalUser)
	}
	p, err := h.Service.AdminCreatePrincipal(r.Context(), id, vault.NewPrincipal{Kind: vault.PrincipalKind(req.Kind), Name: req.Name,
		AccountID: req.AccountID, Role: vault.Role(req.Role), Email: req.Email, Password: req.Password})
	return httpx.Reply(w, http.StatusCreated, principalOf, p, err)
}

func (h *handlers) updatePrincipal(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Name     *string `json:"name"`
		Email    *string `json:"email"`
		Disabled *bool   `json:"disabled"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	p, err := h.Service.AdminUpdatePrincipal(r.Context(), id, r.PathValue("principal_id"), vault.PrincipalUpdate{Name: req.Name, Email: req.Email, Disabled: req.Disabled})
	return httpx.Reply(w, http.StatusOK, principalOf, p, err)
}

func (h *handlers) deletePrincipal(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.Service.AdminDeletePrincipal(r.Context(), id, r.PathValue("principal_id")))
}

func (h *handlers) putMembership(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Role string `json:"role"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	pid := r.PathValue("principal_id")
	if err := h.Service.AdminPutMembership(r.Context(), id, pid, r.PathValue("account_id"), vault.Role(req.Role)); err != nil {
		return err
	}
	p, err := h.Service.AdminGetPrincipal(r.Context(), id, pid)
	if err != nil {
		// The caller administers the account but may not see the principal
		// elsewhere: answer with the membership alone.
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"id": pid, "memberships": []membership{{AccountID: r.PathValue("account_id"), Role: req.Role}}})
		return nil
	}
	httpx.WriteJSON(w, http.StatusOK, toPrincipal(p, nil))
	return nil
}

func (h *handlers) revokeMembership(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.Service.AdminRevokeMembership(r.Context(), id, r.PathValue("principal_id"), r.PathValue("account_id")))
}

func (h *handlers) setPassword(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Password string `json:"password"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	return httpx.NoContent(w, h.Service.AdminSetPassword(r.Context(), id, r.PathValue("principal_id"), req.Password))
}

func (h *handlers) createKey(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var req struct {
		Name       string `json:"name"`
		TTLSeconds int64  `json:"ttl_seconds"`
	}
	if err := h.decode(r, &req); err != nil {
		return err
	}
	if req.TTLSeconds < 0 || req.TTLSeconds > 100*365*24*3600 {
		return vault.FieldError("ttl_seconds", "ttl_seconds must be from 0 (no expiry) to 100 years")
	}
	k, secret, err := h.Service.AdminCreateAPIKey(r.Context(), id, r.PathValue("principal_id"), req.Name, time.Duration(req.TTLSeconds)*time.Second)
	if err != nil {
		return err
	}
	out := toKey(k)
	out.APIKey = secret
	httpx.WriteSecretJSON(w, http.StatusCreated, out)
	return nil
}

func (h *handlers) revokeKey(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.Service.AdminRevokeAPIKey(r.Context(), id, r.PathValue("key_id")))
}
