// Package dsm is the Fortanix DSM dialect of credvault: sessions, groups,
// apps, security objects and integration credentials, as a thin adapter over
// the core in internal/vault. It owns the routes, the wire types (DSM's
// JSON shapes, compact timestamps, the Principal union) and the error
// rendering; every rule lives in the core.
//
// Errors: no DSM source documents an error body. DSM's clients show the body
// verbatim (the Go client as BackendError.Message, the Rust client as the
// error text) and DSM's approval-request results carry the error body as a
// JSON string, i.e. DSM answers errors with a plain-text message. credvault
// does the same: status code by error kind, body = one client-safe sentence
// as text/plain.
package dsm

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Deps are the dialect's dependencies.
type Deps = httpx.Deps

// Register mounts the DSM routes on mux.
func Register(mux *http.ServeMux, d Deps) {
	h := &handlers{svc: d.Service, log: d.Logger, maxBody: d.MaxBody}
	if h.maxBody <= 0 {
		h.maxBody = 1 << 20
	}
	mux.Handle("GET /sys/v1/version", h.public(h.version))
	mux.Handle("GET /sys/v1/health", h.public(h.health))

	mux.Handle("POST /sys/v1/session/auth", h.public(h.sessionAuth))
	mux.Handle("POST /sys/v1/session/refresh", h.auth(h.sessionRefresh))
	mux.Handle("POST /sys/v1/session/reauth", h.auth(h.sessionReauth))
	mux.Handle("POST /sys/v1/session/terminate", h.auth(h.sessionTerminate))
	mux.Handle("POST /sys/v1/session/select_account", h.auth(h.selectAccount))

	groups := resource[vault.GroupInput, *vault.Group]{param: "group_id", input: body(h, (*groupRequest).input),
		render: func(_ *http.Request, g *vault.Group) any { return toGroup(g) }}
	groups.collection(mux, h.auth, "/sys/v1/groups", h.listGroups, h.svc.CreateGroup, h.svc.GetGroup, h.svc.UpdateGroup, h.svc.DeleteGroup)

	apps := resource[vault.AppInput, *vault.App]{param: "app_id", input: body(h, (*appRequest).input),
		render: func(r *http.Request, a *vault.App) any { return toApp(a, h.appView(r)) }}
	apps.collection(mux, h.auth, "/sys/v1/apps", h.listApps, h.svc.CreateApp, h.svc.GetApp, h.svc.UpdateApp, h.svc.DeleteApp)
	mux.Handle("GET /sys/v1/apps/{app_id}/credential", h.auth(h.getAppCredential))
	mux.Handle("POST /sys/v1/apps/{app_id}/reset_secret", h.auth(h.resetAppSecret))

	renderSobject := func(_ *http.Request, o *vault.Sobject) any { return toSobject(o, h.svc.Now(), true) }
	sobjects := resource[vault.SobjectInput, *vault.Sobject]{param: "key_id", input: body(h, (*sobjectRequest).input), render: renderSobject, created: http.StatusCreated}
	rekey := resource[vault.RekeyInput, *vault.Sobject]{input: body(h, (*sobjectRequest).rekeyInput), render: renderSobject}
	mux.Handle("POST /crypto/v1/keys", h.auth(sobjects.create(h.svc.CreateSobject)))
	mux.Handle("PUT /crypto/v1/keys", h.auth(sobjects.create(h.svc.ImportSobject)))
	mux.Handle("GET /crypto/v1/keys", h.auth(h.listSobjects))
	mux.Handle("POST /crypto/v1/keys/info", h.auth(h.getSobject))
	mux.Handle("POST /crypto/v1/keys/export", h.auth(h.exportSobject))
	mux.Handle("POST /crypto/v1/keys/rekey", h.auth(rekey.create(h.svc.RekeySobject)))
	mux.Handle("GET /crypto/v1/keys/{key_id}", h.auth(h.getSobjectByID))
	mux.Handle("PATCH /crypto/v1/keys/{key_id}", h.auth(sobjects.update(h.svc.UpdateSobject)))
	mux.Handle("DELETE /crypto/v1/keys/{key_id}", h.auth(sobjects.delete(h.svc.DeleteSobject)))
	mux.Handle("POST /crypto/v1/sign", h.auth(signing(h, false, h.svc.Sign, "signature")))
	mux.Handle("POST /crypto/v1/verify", h.auth(signing(h, true, h.svc.Verify, "result")))
	mux.Handle("POST /crypto/v1/encrypt", h.auth(h.encrypt))
	mux.Handle("POST /crypto/v1/decrypt", h.auth(h.decrypt))

	credentials := resource[vault.IntegrationCredentialInput, *vault.IntegrationCredential]{param: "cred_id", input: body(h, (*credentialRequest).input),
		render: func(_ *http.Request, c *vault.IntegrationCredential) any { return toCredential(c) }}
	credentials.collection(mux, h.auth, "/sys/v1/credentials", h.listCredentials,
		h.svc.CreateIntegrationCredential, h.svc.GetIntegrationCredential, h.svc.UpdateIntegrationCredential, h.svc.DeleteIntegrationCredential)
	mux.Handle("POST /sys/v1/credentials/{cred_id}/rotate", h.auth(h.rotateCredential))

	mux.Handle("GET /sys/v1/logs", h.auth(h.logs))
	registerUsers(mux, h)
}

type handlers struct {
	svc     *vault.Service
	log     *slog.Logger
	maxBody int64
}

type handlerFunc = httpx.HandlerFunc

// auth authenticates the Authorization header (Basic API key or Bearer
// session token), then runs fn and renders its error, if any.
func (h *handlers) auth(fn handlerFunc) http.Handler {
	return httpx.Authenticated(h.authenticate, h.renderError, fn)
}

// public runs fn without authentication (it authenticates itself if needed).
func (h *handlers) public(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return httpx.Public(h.renderError, fn)
}

// renderError logs err once and writes it as DSM does: the status code
// and a plain-text, client-safe message. Messages never carry secrets.
func (h *handlers) renderError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r.Context(), h.log, err)
	kind := vault.KindOf(err)
	switch kind {
	case vault.KindUnavailable:
		w.Header().Set("Retry-After", "1")
	case vault.KindRateLimited:
		w.Header().Set("Retry-After", strconv.Itoa(httpx.RetryAfter(err)))
	case vault.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Basic realm="credvault", Bearer realm="credvault"`)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpx.Status(err, nil))
	_, _ = w.Write([]byte(wireMessage(err)))
}

// wireMessage is err's client-safe message with the core's field path
// (see vault.Error.Field), wherever the message names it, renamed to
// DSM's (wireField). A missing or already named security object is said
// in DSM's words.
func wireMessage(err error) string {
	var ve *vault.Error
	if errors.As(err, &ve) && ve.Subject == "security object" {
		// DSM's own words, which clients compare whole: MinIO KES maps
		// them to "key does not exist" and "key already exists".
		switch ve.Kind {
		case vault.KindNotFound:
			return "sobject does not exist"
		case vault.KindConflict:
			return "sobject already exists"
		}
	}
	msg := vault.Message(err)
	if !errors.As(err, &ve) || ve.Kind != vault.KindInvalid || ve.Field == "" {
		return msg
	}
	wire := wireField(ve.Field)
	if wire == ve.Field {
		return msg
	}
	var b strings.Builder
	for rest := msg; ; {
		i := strings.Index(rest, ve.Field)
		if i < 0 {
			b.WriteString(rest)
			return b.String()
		}
		end := i + len(ve.Field)
		// Only the whole path: not part of a word or of a longer path.
		whole := (i == 0 || rest[i-1] == ' ') && (end == len(rest) || strings.ContainsRune(" :,)", rune(rest[end])))
		b.WriteString(rest[:i])
		if whole {
			b.WriteString(wire)
		} else {
			b.WriteString(ve.Field)
		}
		rest = rest[end:]
	}
}

// wireField is DSM's name of a field the core names by its domain path:
// the core calls an integration credential's details "details", their
// provider and auth variant details.provider and details.auth, a
// rotation's method "method"; DSM has credential_details with the $type
// tag of the provider and a body with the variant's $type and its fields,
// and a $type-tagged method. Other fields keep their name.
func wireField(field string) string {
	switch field {
	case "details":
		return "credential_details"
	case "details.provider":
		return "credential_details.$type"
	case "details.auth":
		return "credential_details.body.$type"
	case "method":
		return "method.$type"
	}
	if f, ok := strings.CutPrefix(field, "details."); ok {
		return "credential_details.body." + f
	}
	return field
}

// authenticate resolves the Authorization header: "Basic <api key>" (an
// API key is base64 of id:secret, sent as is) or "Bearer <session token>".
func (h *handlers) authenticate(r *http.Request) (*vault.Identity, error) {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	var key, token string
	switch cred = strings.TrimSpace(cred); {
	case strings.EqualFold(scheme, "Basic"):
		key = cred
	case strings.EqualFold(scheme, "Bearer"):
		token = cred
	}
	id, err := h.svc.AuthenticateKeyOrSession(r.Context(), key, token)
	if errors.Is(err, vault.ErrNoCredential) {
		return nil, vault.Errorf(vault.KindUnauthenticated, "missing or malformed Authorization header; use Basic <api key> or Bearer <session token>")
	}
	return id, err
}

// writeJSON writes a 200 JSON body. It sets no cache header: a response
// that carries secret material is written with httpx.WriteSecretJSON.
func writeJSON(w http.ResponseWriter, v any) {
	httpx.WriteJSON(w, http.StatusOK, v)
}
