// Package trust serves the trust-policy admin endpoints
// (/admin/v1/trust-policies): which workload tokens the token exchange
// (internal/api/oauth) accepts, for which role in which account. Contract:
// api/trust-v1.openapi.yaml.
package trust

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/credvault/credvault/client"
	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/vault"
)

// Deps are the endpoints' dependencies.
type Deps = httpx.Deps

// Register mounts the trust-policy routes on mux.
func Register(mux *http.ServeMux, d Deps) {
	h := &handlers{d}
	mux.Handle("POST /admin/v1/trust-policies", h.auth(h.create))
	mux.Handle("GET /admin/v1/trust-policies", h.auth(h.list))
	mux.Handle("GET /admin/v1/trust-policies/{policy_id}", h.auth(h.get))
	mux.Handle("DELETE /admin/v1/trust-policies/{policy_id}", h.auth(h.delete))
}

// The wire types are the public Go SDK's (package client, which imports
// nothing of credvault): the server encodes and decodes exactly what the
// SDK sends and reads, defined once.
type (
	// ClaimRule is a claim rule on the wire.
	ClaimRule = client.ClaimRule
	// PolicyInput is the body of POST /admin/v1/trust-policies.
	PolicyInput = client.TrustPolicyParams
	// Policy is a trust policy on the wire.
	Policy = client.TrustPolicy
)

// List is the body of GET /admin/v1/trust-policies.
type List struct {
	Items []Policy `json:"items"`
}

func toWire(p *vault.TrustPolicy) Policy {
	w := Policy{ID: p.ID, TrustPolicyParams: PolicyInput{Name: p.Name, AccountID: p.AccountID, Issuer: p.Issuer, KeySource: string(p.KeySource),
		JWKSURL: p.JWKSURL, Audiences: p.Audiences, Claims: []ClaimRule{}, Role: string(p.Role), TTLSeconds: int64(p.TTL / time.Second)},
		CreatedAt: p.CreatedAt}
	if p.JWKS != "" {
		w.JWKS = json.RawMessage(p.JWKS)
	}
	for _, c := range p.Claims {
		w.Claims = append(w.Claims, ClaimRule(c))
	}
	return w
}

// handlers serve the routes with the package's dependencies.
type handlers struct{ Deps }

type handlerFunc = httpx.HandlerFunc

// auth authenticates the request's API key (x-api-key, or Authorization:
// Basic as DSM clients send it) in the account x-selected-account-id
// selects, then runs fn and renders its error, if any. Whether the
// identity may manage a given policy is the service's decision.
func (h *handlers) auth(fn handlerFunc) http.Handler {
	return httpx.Authenticated(h.authenticate, h.renderError, fn)
}

func (h *handlers) authenticate(r *http.Request) (*vault.Identity, error) {
	return h.Service.Authenticate(r.Context(), httpx.APIKey(r), strings.TrimSpace(r.Header.Get("x-selected-account-id")))
}

func (h *handlers) renderError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r.Context(), h.Logger, err)
	status := httpx.Status(err, nil)
	if vault.KindOf(err) == vault.KindUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Basic realm="credvault"`)
	}
	httpx.WriteJSON(w, status, map[string]string{"detail": vault.Message(err)})
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	body, err := httpx.ReadBody(r, h.MaxBody)
	if err != nil {
		return err
	}
	var in PolicyInput
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return vault.Errorf(vault.KindInvalid, "the body must be a JSON trust policy: %s", jsonProblem(err))
	}
	p := vault.TrustPolicy{Name: in.Name, AccountID: in.AccountID, Issuer: in.Issuer, KeySource: vault.KeySourceKind(in.KeySource),
		JWKSURL: in.JWKSURL, Audiences: in.Audiences, Role: vault.Role(in.Role), TTL: time.Duration(in.TTLSeconds) * time.Second}
	if in.TTLSeconds < 0 || in.TTLSeconds > int64(vault.MaxWorkloadKeyTTL/time.Second) {
		return vault.FieldError("ttl_seconds", "the lifetime of issued keys must be between 60 and 43200 seconds")
	}
	if len(in.JWKS) > 0 && string(in.JWKS) != "null" {
		doc, err := oidc.CheckJWKS(in.JWKS)
		if err != nil {
			return err
		}
		p.JWKS = doc
	}
	for _, c := range in.Claims {
		p.Claims = append(p.Claims, vault.ClaimRule(c))
	}
	out, err := h.Service.CreateTrustPolicy(r.Context(), id, p)
	return httpx.Reply(w, http.StatusCreated, toWire, out, err)
}

func jsonProblem(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "json: unknown field") {
		return strings.TrimPrefix(msg, "json: ")
	}
	return "malformed JSON or a field of the wrong type"
}

func (h *handlers) list(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	ps, err := h.Service.ListTrustPolicies(r.Context(), id, strings.TrimSpace(r.URL.Query().Get("account_id")))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, List{Items: httpx.Wire(ps, toWire)})
	return nil
}

func (h *handlers) get(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	p, err := h.Service.GetTrustPolicy(r.Context(), id, r.PathValue("policy_id"))
	return httpx.Reply(w, http.StatusOK, toWire, p, err)
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.Service.DeleteTrustPolicy(r.Context(), id, r.PathValue("policy_id")))
}
