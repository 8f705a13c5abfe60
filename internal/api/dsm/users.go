package dsm

import (
	"encoding/base64"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// DSM users and accounts (issue 12): GET /sys/v1/accounts[/{acct_id}],
// GET /sys/v1/users[/{user_id}]. Users authenticate to session/auth with
// Basic email:password (handlers.go, sessionAuth).

func registerUsers(mux *http.ServeMux, h *handlers) {
	mux.Handle("GET /sys/v1/accounts", h.auth(h.listAccounts))
	mux.Handle("GET /sys/v1/accounts/{acct_id}", h.auth(h.getAccount))
	mux.Handle("GET /sys/v1/users", h.auth(h.listUsers))
	users := resource[struct{}, *vault.DSMUser]{param: "user_id", render: func(_ *http.Request, u *vault.DSMUser) any { return toUserWire(u) }}
	mux.Handle("GET /sys/v1/users/{user_id}", h.auth(users.get(h.svc.DSMGetUser)))
}

// legacyAccountRole maps a credvault role to DSM's legacy account role.
func legacyAccountRole(r vault.Role) string {
	switch r {
	case vault.RoleAdmin:
		return "ACCOUNTADMINISTRATOR"
	case vault.RoleReader:
		return "ACCOUNTAUDITOR"
	}
	return "ACCOUNTMEMBER"
}

// toAccountWire is DSM's Account with the fields its schema requires; the
// rest (policies, quotas, logging) credvault does not have.
func toAccountWire(a vault.Account) map[string]any {
	return map[string]any{
		"acct_id": a.ID, "name": a.Name, "created_at": compact(a.CreatedAt), "enabled": true,
		"logging_configs": map[string]any{}, "mark_key_disable_when_deactivated": false,
		"purpose": map[string]any{"$type": "Standard"}, "original_purpose": map[string]any{"$type": "Standard"},
		"subscription": map[string]any{"standard": map[string]any{}},
	}
}

func toUserWire(u *vault.DSMUser) map[string]any {
	w := map[string]any{
		"user_id": u.ID, "account_role": []string{legacyAccountRole(u.Role), "STATEENABLED"},
		"created_at": compact(u.CreatedAt), "email_verified": false, "has_password": u.HasPassword, "has_account": true,
		"groups": map[string]any{}, "explicit_groups": map[string]any{}, "mfa_devices": []any{}, "u2f_devices": []any{},
		"user_email": u.Email, "description": nil,
	}
	if u.DisabledAt != nil {
		w["account_role"] = []string{legacyAccountRole(u.Role)}
	}
	if u.LastLoginAt != nil {
		w["last_logged_in_at"] = compact(*u.LastLoginAt)
	}
	if strings.TrimSpace(u.Name) != "" {
		w["first_name"] = u.Name
	}
	return w
}

func (h *handlers) listAccounts(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	as, err := h.svc.DSMAccounts(r.Context(), id)
	if err != nil {
		return err
	}
	out := make([]map[string]any, len(as))
	for i, a := range as {
		out[i] = toAccountWire(a.Account)
	}
	writeJSON(w, out)
	return nil
}

func (h *handlers) getAccount(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	acct, err := pathUUID(r, "acct_id")
	if err != nil {
		return err
	}
	as, err := h.svc.DSMAccounts(r.Context(), id)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.Account.ID == acct {
			writeJSON(w, toAccountWire(a.Account))
			return nil
		}
	}
	return vault.Errorf(vault.KindNotFound, "no such account")
}

func (h *handlers) listUsers(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	limit, offset := q.int("limit"), q.int("offset")
	if q.err != nil {
		return q.err
	}
	us, err := h.svc.DSMListUsers(r.Context(), id, limit, offset)
	if err != nil {
		return err
	}
	writeJSON(w, httpx.Wire(us, toUserWire))
	return nil
}

// userCredential reports whether a Basic credential is a user's
// base64(email:password) rather than an API key (base64 of
// "<uuid>:<secret>").
func userCredential(cred string) (email, password string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return "", "", false
	}
	user, pw, found := strings.Cut(string(raw), ":")
	if !found || uuid.Validate(user) == nil || !strings.Contains(user, "@") {
		return "", "", false
	}
	return user, pw, true
}
