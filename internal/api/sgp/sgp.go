// Package sgp is the Scale GenAI Platform v5 credentials dialect: the eight
// /v5/credentials operations as a thin adapter over internal/vault. It owns
// the wire types, FastAPI-shaped validation errors and status mapping.
package sgp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Deps are the dialect's dependencies.
type Deps = httpx.Deps

// Register mounts the SGP routes on mux.
func Register(mux *http.ServeMux, d Deps) {
	h := &handlers{d}
	mux.Handle("POST /v5/credentials", h.auth(h.create))
	mux.Handle("GET /v5/credentials", h.auth(h.list))
	mux.Handle("GET /v5/credentials/{credential_id}", h.auth(h.get))
	mux.Handle("PATCH /v5/credentials/{credential_id}", h.auth(h.update))
	mux.Handle("DELETE /v5/credentials/{credential_id}", h.auth(h.deleted("credential", "credential_id", h.Service.DeleteCredential)))
	mux.Handle("POST /v5/credentials/{credential_id}/secret", h.auth(h.decrypt))
	// A name containing '/' must be percent-encoded (%2F) in these paths;
	// the GET route also takes an unencoded rest of the path.
	mux.Handle("GET /v5/credentials/name/{credential_name...}", h.auth(h.getByName))
	mux.Handle("POST /v5/credentials/name/{credential_name}/secret", h.auth(h.decryptByName))

	// credvault extensions (lifecycle.go).
	// GET /v5/credentials/{id}/versions cannot be a pattern of its own: it
	// would overlap GET /v5/credentials/name/{name...} (see versionsOrNot).
	mux.Handle("GET /v5/credentials/{credential_id}/{rest...}", h.versionsOrNot())
	mux.Handle("POST /v5/credentials/{credential_id}/versions/{version}/secret", h.auth(h.versionSecret))
	mux.Handle("POST /v5/credentials/{credential_id}/rollback", h.auth(h.rollback))
	mux.Handle("GET /v5/trash/credentials", h.auth(h.listTrash))
	mux.Handle("POST /v5/trash/credentials/{credential_id}/restore", h.auth(h.restore))
	mux.Handle("DELETE /v5/trash/credentials/{credential_id}", h.auth(h.deleted("credential", "credential_id", h.Service.PurgeCredential)))
	mux.Handle("GET /v5/credential_settings", h.auth(h.getSettings))
	mux.Handle("PUT /v5/credential_settings", h.auth(h.putSettings))
	mux.Handle("POST /v5/webhooks", h.auth(h.createWebhook))
	mux.Handle("GET /v5/webhooks", h.auth(h.listWebhooks))
	mux.Handle("GET /v5/webhooks/{webhook_id}", h.auth(h.getWebhook))
	mux.Handle("PATCH /v5/webhooks/{webhook_id}", h.auth(h.updateWebhook))
	mux.Handle("DELETE /v5/webhooks/{webhook_id}", h.auth(h.deleted("webhook", "webhook_id", h.Service.DeleteWebhook)))
	mux.Handle("GET /v5/webhooks/{webhook_id}/deliveries", h.auth(h.listDeliveries))
}

// handlers serve the routes with the package's dependencies.
type handlers struct{ Deps }

type handlerFunc = httpx.HandlerFunc

// auth authenticates the x-api-key header in the account selected by
// x-selected-account-id, then runs fn and renders its error, if any.
func (h *handlers) auth(fn handlerFunc) http.Handler {
	return httpx.Authenticated(h.authenticate, func(w http.ResponseWriter, r *http.Request, err error) { h.renderError(w, r, err, locBody) }, fn)
}

func (h *handlers) authenticate(r *http.Request) (*vault.Identity, error) {
	return h.Service.Authenticate(r.Context(), r.Header.Get("x-api-key"), strings.TrimSpace(r.Header.Get("x-selected-account-id")))
}

// Credential is the wire form of a credential. It has no payload field.
type Credential struct {
	ID                    string          `json:"id"`
	Object                string          `json:"object"`
	CreatedByUserID       string          `json:"created_by_user_id"`
	CreatedByIdentityType string          `json:"created_by_identity_type"`
	Type                  string          `json:"type"`
	Name                  string          `json:"name"`
	Description           string          `json:"description"`
	CredentialMetadata    json.RawMessage `json:"credential_metadata"`
	CreatedAt             string          `json:"created_at"`
	UpdatedAt             string          `json:"updated_at"`
	// credvault extensions (lifecycle.go).
	Version   int64   `json:"version"`
	ExpiresAt *string `json:"expires_at,omitempty"`
	Expired   *bool   `json:"expired,omitempty"`
}

const timeFormat = "2006-01-02T15:04:05.000000Z07:00"

func toWire(c *vault.Credential) Credential {
	meta := c.Metadata
	if len(meta) == 0 {
		meta = json.RawMessage("{}")
	}
	return Credential{
		ID:                    c.ID,
		Object:                "credential",
		CreatedByUserID:       c.CreatedBy,
		CreatedByIdentityType: string(c.CreatedByKind),
		Type:                  c.Type,
		Name:                  c.Name,
		Description:           c.Description,
		CredentialMetadata:    meta,
		CreatedAt:             formatTime(c.CreatedAt),
		UpdatedAt:             formatTime(c.UpdatedAt),
	}
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	in, err := readObject(h, r, decodeCreate)
	if err != nil {
		return err
	}
	c, err := h.Service.CreateCredential(r.Context(), id, in)
	return h.writeCredential(w, c, err)
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	c, err := h.Service.GetCredential(r.Context(), id, r.PathValue("credential_id"))
	return h.writeCredential(w, c, err)
}

func (h *handlers) getByName(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	name, err := credentialName(r)
	if err != nil {
		return err
	}
	c, err := h.Service.GetCredentialByName(r.Context(), id, name)
	return h.writeCredential(w, c, err)
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	p, err := readObject(h, r, decodeUpdate)
	if err != nil {
		return err
	}
	c, err := h.Service.UpdateCredential(r.Context(), id, r.PathValue("credential_id"), p)
	return h.writeCredential(w, c, err)
}

// writeCredential writes c, or returns err.
func (h *handlers) writeCredential(w http.ResponseWriter, c *vault.Credential, err error) error {
	if err != nil {
		return err
	}
	writeBody(w, appendCredential(make([]byte, 0, 384), c, h.Service.Now()))
	return nil
}

// credentialName is the {credential_name} path segment; an empty one names
// no credential.
func credentialName(r *http.Request) (string, error) {
	name := r.PathValue("credential_name")
	if name == "" {
		return "", notFound()
	}
	return name, nil
}

type deleteResponse struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted"`
	Object  string `json:"object"`
}

// deleted returns the handler that deletes the object (of the wire type
// object) the path parameter param names with remove, and answers SGP's
// deleteResponse.
func (h *handlers) deleted(object, param string, remove func(context.Context, *vault.Identity, string) error) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		oid := r.PathValue(param)
		if err := remove(r.Context(), id, oid); err != nil {
			return err
		}
		httpx.WriteJSON(w, http.StatusOK, deleteResponse{ID: oid, Deleted: true, Object: object})
		return nil
	}
}

type secretResponse struct {
	Result string `json:"result"`
	Object string `json:"object"`
}

func (h *handlers) decrypt(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return h.writeSecret(w, r, id, r.PathValue("credential_id"), "")
}

func (h *handlers) decryptByName(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	name, err := credentialName(r)
	if err != nil {
		return err
	}
	return h.writeSecret(w, r, id, "", name)
}

func (h *handlers) writeSecret(w http.ResponseWriter, r *http.Request, id *vault.Identity, credID, name string) error {
	_, pt, err := h.Service.DecryptCredential(r.Context(), id, credID, name)
	return writePlaintext(w, pt, err)
}

// writePlaintext answers a secret read: pt, not to be cached, wiped once
// written; or returns err.
func writePlaintext(w http.ResponseWriter, pt []byte, err error) error {
	if err != nil {
		return err
	}
	writeSecretBody(w, pt)
	clear(pt)
	return nil
}

type listResponse struct {
	Object  string       `json:"object"`
	Items   []Credential `json:"items"`
	Total   int          `json:"total"`
	HasMore bool         `json:"has_more"`
	Limit   int          `json:"limit"`
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q, err := decodeListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := h.Service.ListCredentials(r.Context(), id, q)
	if err != nil {
		return inQuery(err)
	}
	writeList(w, page, q.Limit, h.Service.Now())
	return nil
}

func notFound() error { return vault.Errorf(vault.KindNotFound, "credential not found") }

// statusOverrides are SGP's departures from httpx's status table: a
// validation error is 422, as FastAPI answers it.
var statusOverrides = map[vault.Kind]int{vault.KindInvalid: http.StatusUnprocessableEntity}

const (
	locBody  = "body"
	locQuery = "query"
)

// renderError writes err in FastAPI's shapes: 422 {"detail": [ {loc, msg,
// type} ]} for validation errors, {"detail": "<message>"} for the rest.
// Where a retry cannot help, x-should-retry: false stops the official SDKs
// from re-sending the request.
func (h *handlers) renderError(w http.ResponseWriter, r *http.Request, err error, loc string) {
	httpx.LogError(r.Context(), h.Logger, err)
	var verr *validationError
	if errors.As(err, &verr) {
		w.Header().Set("x-should-retry", "false")
		httpx.WriteJSON(w, http.StatusUnprocessableEntity, map[string]any{"detail": verr.items})
		return
	}
	var le *locError
	if errors.As(err, &le) {
		loc, err = le.loc, le.err
	}
	kind := vault.KindOf(err)
	status := httpx.Status(err, statusOverrides)
	switch kind {
	case vault.KindInvalid:
		var ve *vault.Error
		errors.As(err, &ve)
		l := []any{loc}
		if ve.Field != "" {
			l = append(l, wireField(ve.Field))
		}
		w.Header().Set("x-should-retry", "false")
		httpx.WriteJSON(w, status, map[string]any{"detail": []validationItem{{Loc: l, Msg: ve.Msg, Type: "value_error"}}})
		return
	case vault.KindUnavailable:
		w.Header().Set("Retry-After", "1")
	case vault.KindRateLimited:
		w.Header().Set("Retry-After", strconv.Itoa(httpx.RetryAfter(err)))
		w.Header().Set("x-should-retry", "true")
	case vault.KindInternal:
	default:
		w.Header().Set("x-should-retry", "false")
	}
	httpx.WriteJSON(w, status, map[string]string{"detail": vault.Message(err)})
}

// inQuery places err, if it is a core validation error of a listing's
// parameters, in the query rather than the body.
func inQuery(err error) error {
	var ve *vault.Error
	if errors.As(err, &ve) && ve.Kind == vault.KindInvalid {
		return &locError{loc: locQuery, err: ve}
	}
	return err
}

// locError places a core validation error in the query rather than the body.
type locError struct {
	loc string
	err error
}

func (e *locError) Error() string { return e.err.Error() }
func (e *locError) Unwrap() error { return e.err }

// wireField is the SGP name of a core field: the core calls a listing's
// cursors after and before.
func wireField(field string) string {
	switch field {
	case "after":
		return "starting_after"
	case "before":
		return "ending_before"
	}
	return field
}
