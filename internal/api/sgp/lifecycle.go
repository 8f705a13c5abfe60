package sgp

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// credvault extensions of the SGP dialect (issue 15): credential versions
// and rollback, the trash of deleted credentials, per-account settings and
// webhooks. They are documented in the contract document with x-credvault
// markers; the eight SGP operations keep their shapes (the Credential gains
// optional extension fields only).

// versionsOrNot serves GET /v5/credentials/{id}/versions, and answers any
// other GET below a credential as the server would without this route:
// 405 for the POST-only paths, 404 otherwise.
func (h *handlers) versionsOrNot() http.Handler {
	versions := h.auth(h.listVersions)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rest := r.PathValue("rest")
		switch {
		case rest == "versions":
			versions.ServeHTTP(w, r)
		case rest == "secret" || rest == "rollback",
			strings.HasPrefix(rest, "versions/") && strings.HasSuffix(rest, "/secret") && strings.Count(rest, "/") == 2:
			w.Header().Set("Allow", "POST")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = w.Write([]byte(`{"detail":"Method Not Allowed"}`))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
		}
	})
}

// toWire is the wire form of c with the extension fields.
func (h *handlers) toWire(c *vault.Credential) Credential { return toWireAt(c, h.Service.Now()) }

// toWireAt is the wire form of c at now (whether it has expired).
func toWireAt(c *vault.Credential, now time.Time) Credential {
	out := toWire(c)
	out.Version = c.Version
	if c.ExpiresAt != nil {
		s := formatTime(*c.ExpiresAt)
		out.ExpiresAt = &s
		expired := c.Expired(now)
		out.Expired = &expired
	}
	return out
}

// expiresAt decodes the optional expires_at extension field: an RFC 3339
// time, or null (never). set reports whether the field was present.
func expiresAt(m map[string]json.RawMessage, verr *validationError) (t *time.Time, set bool) {
	raw, ok := m["expires_at"]
	if !ok {
		return nil, false
	}
	if string(raw) == "null" {
		return nil, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		verr.add("Input should be a valid datetime", "datetime_type", "body", "expires_at")
		return nil, false
	}
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || v.Year() < 1970 || v.Year() > 9999 {
		verr.add("Input should be a valid datetime (RFC 3339)", "datetime_parsing", "body", "expires_at")
		return nil, false
	}
	v = v.UTC().Truncate(time.Microsecond)
	return &v, true
}

type versionItem struct {
	Version         int64  `json:"version"`
	CreatedAt       string `json:"created_at"`
	CreatedByUserID string `json:"created_by_user_id"`
	Current         bool   `json:"current"`
}

func versionToWire(v *vault.VersionInfo) versionItem {
	return versionItem{Version: v.Version, CreatedAt: v.CreatedAt.UTC().Format(timeFormat), CreatedByUserID: v.CreatedBy, Current: v.Current}
}

// list is the wire form of a whole list. A page of credentials
// (listResponse) or of the trash (trashPage) says more.
type list[W any] struct {
	Items  []W    `json:"items"`
	Object string `json:"object"` // "list"
}

// listOf returns the wire form of a whole list, each item in the form
// wire gives it.
func listOf[T, W any](wire func(*T) W) func([]T) list[W] {
	return func(items []T) list[W] { return list[W]{Items: httpx.Wire(items, wire), Object: "list"} }
}

func (h *handlers) listVersions(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	vs, err := h.Service.ListCredentialVersions(r.Context(), id, r.PathValue("credential_id"))
	return httpx.Reply(w, http.StatusOK, listOf(versionToWire), vs, err)
}

func pathVersion(r *http.Request) (int64, error) {
	n, err := strconv.ParseInt(r.PathValue("version"), 10, 64)
	if err != nil || n < 1 {
		verr := &validationError{}
		verr.add("Input should be a positive integer", "int_parsing", "path", "version")
		return 0, verr
	}
	return n, nil
}

func (h *handlers) versionSecret(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	n, err := pathVersion(r)
	if err != nil {
		return err
	}
	pt, err := h.Service.DecryptCredentialVersion(r.Context(), id, r.PathValue("credential_id"), n)
	return writePlaintext(w, pt, err)
}

func (h *handlers) rollback(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	n, err := readObject(h, r, decodeRollback)
	if err != nil {
		return err
	}
	c, err := h.Service.RollbackCredential(r.Context(), id, r.PathValue("credential_id"), n)
	return h.writeCredential(w, c, err)
}

// decodeRollback decodes the body of a rollback: the version to restore.
func decodeRollback(m map[string]json.RawMessage) (int64, error) {
	verr := &validationError{}
	var n int64
	if raw, ok := m["version"]; !ok {
		verr.add("Field required", "missing", "body", "version")
	} else if err := json.Unmarshal(raw, &n); err != nil || n < 1 {
		verr.add("Input should be a positive integer", "int_type", "body", "version")
	}
	return n, verr.err()
}

type trashItem struct {
	Credential
	DeletedAt       string `json:"deleted_at"`
	DeletedByUserID string `json:"deleted_by_user_id"`
	PurgeAt         string `json:"purge_at"`
}

type trashPage struct {
	Object  string      `json:"object"`
	Items   []trashItem `json:"items"`
	HasMore bool        `json:"has_more"`
	Limit   int         `json:"limit"`
}

func (h *handlers) listTrash(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	v := r.URL.Query()
	limit := 100
	if v.Has("limit") {
		n, err := strconv.Atoi(strings.TrimSpace(v.Get("limit")))
		if err != nil || n < 1 || n > vault.MaxListLimit {
			verr := &validationError{}
			verr.add("Input should be an integer between 1 and 10000", "int_parsing", "query", "limit")
			return verr
		}
		limit = n
	}
	items, more, err := h.Service.ListTrash(r.Context(), id, v.Get("starting_after"), limit)
	if err != nil {
		return inQuery(err)
	}
	out := trashPage{Object: "list", Items: make([]trashItem, len(items)), HasMore: more, Limit: limit}
	for i := range items {
		t := &items[i]
		out.Items[i] = trashItem{Credential: h.toWire(&t.Credential), DeletedAt: t.DeletedAt.UTC().Format(timeFormat),
			DeletedByUserID: t.DeletedBy, PurgeAt: h.Service.PurgeAt(t).UTC().Format(timeFormat)}
	}
	httpx.WriteJSON(w, http.StatusOK, out)
	return nil
}

func (h *handlers) restore(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	c, err := h.Service.RestoreCredential(r.Context(), id, r.PathValue("credential_id"))
	return h.writeCredential(w, c, err)
}

type settings struct {
	Object                 string `json:"object"`
	MaxVersions            int    `json:"max_versions"`
	DeleteRetentionSeconds int64  `json:"delete_retention_seconds"`
}

func (h *handlers) writeSettings(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	n, err := h.Service.MaxVersions(r.Context(), id)
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, settings{Object: "credential_settings", MaxVersions: n, DeleteRetentionSeconds: int64(h.Service.DeleteRetention() / time.Second)})
	return nil
}

func (h *handlers) getSettings(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return h.writeSettings(w, r, id)
}

func (h *handlers) putSettings(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	n, err := readObject(h, r, decodeSettings)
	if err != nil {
		return err
	}
	if err := h.Service.SetMaxVersions(r.Context(), id, n); err != nil {
		return err
	}
	return h.writeSettings(w, r, id)
}

// decodeSettings decodes the body of PUT /v5/credential_settings.
func decodeSettings(m map[string]json.RawMessage) (int, error) {
	var n int
	if raw, ok := m["max_versions"]; !ok || json.Unmarshal(raw, &n) != nil {
		verr := &validationError{}
		verr.add("Input should be a valid integer", "int_type", "body", "max_versions")
		return 0, verr
	}
	return n, nil
}

type webhookWire struct {
	ID          string   `json:"id"`
	Object      string   `json:"object"`
	URL         string   `json:"url"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
	CreatedAt   string   `json:"created_at"`
	UpdatedAt   string   `json:"updated_at"`
	// Secret is present only in the answer to the create.
	Secret string `json:"secret,omitempty"`
}

func webhookToWire(wh *vault.Webhook) webhookWire {
	return webhookWire{ID: wh.ID, Object: "webhook", URL: wh.URL, Events: wh.Events, Description: wh.Description,
		CreatedAt: wh.CreatedAt.UTC().Format(timeFormat), UpdatedAt: wh.UpdatedAt.UTC().Format(timeFormat)}
}

// decodeWebhook decodes the body of a webhook's create or (not create)
// update.
func decodeWebhook(m map[string]json.RawMessage, create bool) (vault.WebhookInput, error) {
	verr := &validationError{}
	var in vault.WebhookInput
	in.URL = optStr(m, "url", create, true, verr)
	in.Description = optStr(m, "description", false, false, verr)
	if raw, ok := m["events"]; ok && string(raw) != "null" {
		if json.Unmarshal(raw, &in.Events) != nil || in.Events == nil {
			verr.add("Input should be a valid list of strings", "list_type", "body", "events")
		}
	} else if create {
		verr.add("Field required", "missing", "body", "events")
	}
	return in, verr.err()
}

func (h *handlers) createWebhook(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	in, err := readObject(h, r, func(m map[string]json.RawMessage) (vault.WebhookInput, error) { return decodeWebhook(m, true) })
	if err != nil {
		return err
	}
	wh, secret, err := h.Service.CreateWebhook(r.Context(), id, in)
	if err != nil {
		return err
	}
	out := webhookToWire(wh)
	out.Secret = secret
	httpx.WriteSecretJSON(w, http.StatusOK, out)
	return nil
}

func (h *handlers) listWebhooks(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	ws, err := h.Service.ListWebhooks(r.Context(), id)
	return httpx.Reply(w, http.StatusOK, listOf(webhookToWire), ws, err)
}

func (h *handlers) getWebhook(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	wh, err := h.Service.GetWebhook(r.Context(), id, r.PathValue("webhook_id"))
	return httpx.Reply(w, http.StatusOK, webhookToWire, wh, err)
}

func (h *handlers) updateWebhook(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	in, err := readObject(h, r, func(m map[string]json.RawMessage) (vault.WebhookInput, error) { return decodeWebhook(m, false) })
	if err != nil {
		return err
	}
	wh, err := h.Service.UpdateWebhook(r.Context(), id, r.PathValue("webhook_id"), in)
	return httpx.Reply(w, http.StatusOK, webhookToWire, wh, err)
}

type deliveryWire struct {
	ID         string  `json:"id"`
	Object     string  `json:"object"`
	EventID    string  `json:"event_id"`
	EventType  string  `json:"event_type"`
	Status     string  `json:"status"`
	Attempts   int     `json:"attempts"`
	CreatedAt  string  `json:"created_at"`
	NextAt     *string `json:"next_attempt_at"`
	LastAt     *string `json:"last_attempt_at"`
	LastStatus *int    `json:"last_status_code"`
	LastError  string  `json:"last_error"`
}

func (h *handlers) listDeliveries(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	limit := 100
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			verr := &validationError{}
			verr.add("Input should be a valid integer", "int_parsing", "query", "limit")
			return verr
		}
		limit = n
	}
	ds, err := h.Service.ListDeliveries(r.Context(), id, r.PathValue("webhook_id"), limit)
	return httpx.Reply(w, http.StatusOK, listOf(deliveryToWire), ds, err)
}

func deliveryToWire(d *vault.Delivery) deliveryWire {
	dw := deliveryWire{ID: d.ID, Object: "webhook_delivery", EventID: d.EventID, EventType: d.EventType, Status: d.Status,
		Attempts: d.Attempts, CreatedAt: d.CreatedAt.UTC().Format(timeFormat), LastError: d.LastError}
	if d.Status == vault.DeliveryPending {
		s := d.NextAt.UTC().Format(timeFormat)
		dw.NextAt = &s
	}
	if d.LastAt != nil {
		s := d.LastAt.UTC().Format(timeFormat)
		dw.LastAt = &s
	}
	if d.LastStatus != 0 {
		c := d.LastStatus
		dw.LastStatus = &c
	}
	return dw
}
