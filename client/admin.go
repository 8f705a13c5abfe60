package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// AdminService is the management API (/admin/v1, contract
// api/admin-v1.openapi.yaml): the caller itself, accounts, principals
// (users and service accounts), memberships, API keys and passwords.
// Operators (admins of the system account) manage every account; admins of
// an account manage its principals, memberships, keys and passwords; any
// principal may read itself, change its own password and manage its own
// keys. Objects outside the caller's reach are ErrNotFound.
//
// Creates (accounts, principals, API keys) and ChangeOwnPassword are
// retried only where they cannot have been applied (see [WithRetries]);
// the other calls set state and are retried like reads.
type AdminService struct{ c *Client }

// Roles in an account.
const (
	RoleAdmin        = "admin"
	RoleWriter       = "writer"
	RoleSecretReader = "secret_reader"
	RoleReader       = "reader"
)

// Principal kinds.
const (
	KindUser           = "user"
	KindServiceAccount = "service_account"
)

// Account is an account.
type Account struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

// Membership is a principal's role in an account.
type Membership struct {
	AccountID   string `json:"account_id"`
	AccountName string `json:"account_name,omitempty"`
	Role        string `json:"role"`
}

// Principal is a user or a service account.
type Principal struct {
	ID          string       `json:"id"`
	Kind        string       `json:"kind"` // KindUser or KindServiceAccount
	Name        string       `json:"name"`
	AccountID   string       `json:"account_id"` // the home account
	Email       *string      `json:"email"`
	HasPassword bool         `json:"has_password"`
	Disabled    bool         `json:"disabled"`
	DisabledAt  *time.Time   `json:"disabled_at"`
	CreatedAt   time.Time    `json:"created_at"`
	Memberships []Membership `json:"memberships"`
}

// Whoami is the calling principal and what the request acts as.
type Whoami struct {
	Principal  Principal `json:"principal"`
	Operator   bool      `json:"operator"`    // an admin of the system account
	AuthMethod string    `json:"auth_method"` // "api_key" or "session"
	AccountID  string    `json:"account_id"`  // the account this request acts in
	Role       string    `json:"role"`
}

// APIKey is an API key's metadata; the key itself is never part of it.
type APIKey struct {
	ID          string     `json:"key_id"`
	PrincipalID string     `json:"principal_id"`
	Name        string     `json:"name"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	RevokedAt   *time.Time `json:"revoked_at"`
	LastUsedAt  *time.Time `json:"last_used_at"` // minute granularity
}

// NewAPIKey is a just-created API key: Key is shown in this answer only
// (the server stores a hash).
type NewAPIKey struct {
	APIKey
	Key Secret `json:"-"`
}

// CreatePrincipalParams describe a new principal.
type CreatePrincipalParams struct {
	Name      string // unique within the account
	Kind      string // KindUser (the default when empty) or KindServiceAccount
	AccountID string // the home account
	Role      string // the role in the home account
	Email     string // users only; unique
	Password  Secret // users only; at least 12 characters
}

// UpdatePrincipalParams change a principal; nil fields stay as they are.
type UpdatePrincipalParams struct {
	Name     *string
	Email    *string // "" removes it
	Disabled *bool   // disabling ends every session and stops every key at once
}

// PrincipalListParams select a page of principals. Zero values are the
// server's defaults (every principal the caller administers, 100 per page).
type PrincipalListParams struct {
	AccountID string // only members of this account
	Kind      string // KindUser or KindServiceAccount
	Name      string // exact name
	Limit     int    // 1..1000
	After     string // NextCursor of the previous page
}

// PrincipalList is one page of principals, ordered by id.
type PrincipalList struct {
	Items []Principal `json:"items"`
	// NextCursor is After for the next page; "" on the last page.
	NextCursor string `json:"-"`
}

// CreateAPIKeyParams describe a new API key.
type CreateAPIKeyParams struct {
	Name string
	TTL  time.Duration // 0 = no expiry; whole seconds
}

func accountPath(id string) string   { return "/admin/v1/accounts/" + url.PathEscape(id) }
func principalPath(id string) string { return "/admin/v1/principals/" + url.PathEscape(id) }

// Me returns the calling principal, whether it is an operator, and the
// account and role the request acts in (GET /admin/v1/me).
func (s *AdminService) Me(ctx context.Context) (*Whoami, error) {
	return call[Whoami](ctx, s.c, request{method: http.MethodGet, path: "/admin/v1/me"})
}

// ChangeOwnPassword changes the calling user's password (which needs the
// old one) and ends every session of the user.
func (s *AdminService) ChangeOwnPassword(ctx context.Context, oldPassword, newPassword Secret) error {
	body := map[string]string{"old_password": string(oldPassword), "new_password": string(newPassword)}
	return s.c.do(ctx, request{method: http.MethodPost, path: "/admin/v1/me/password", body: body, idem: createOnce}, nil)
}

// CreateAccount creates an account (operators). Names are unique, so a
// retried create answers ErrConflict rather than making a second account.
func (s *AdminService) CreateAccount(ctx context.Context, name string) (*Account, error) {
	return call[Account](ctx, s.c, request{method: http.MethodPost, path: "/admin/v1/accounts", body: map[string]string{"name": name}, idem: createOnce})
}

// ListAccounts lists the accounts the caller may see: all for operators,
// otherwise those it is a member of.
func (s *AdminService) ListAccounts(ctx context.Context) ([]Account, error) {
	var out struct {
		Items []Account `json:"items"`
	}
	if err := s.c.do(ctx, request{method: http.MethodGet, path: "/admin/v1/accounts"}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// GetAccount returns one account.
func (s *AdminService) GetAccount(ctx context.Context, id string) (*Account, error) {
	return call[Account](ctx, s.c, request{method: http.MethodGet, path: accountPath(id)})
}

// RenameAccount renames an account (its admins and operators).
func (s *AdminService) RenameAccount(ctx context.Context, id, name string) (*Account, error) {
	return call[Account](ctx, s.c, request{method: http.MethodPatch, path: accountPath(id), body: map[string]string{"name": name}})
}

// DeleteAccount deletes an account (operators; never the system account).
// While it holds credentials, security objects or principals the answer is
// ErrConflict unless force is set, which deletes them with it.
func (s *AdminService) DeleteAccount(ctx context.Context, id string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return s.c.do(ctx, request{method: http.MethodDelete, path: accountPath(id), query: q}, nil)
}

// CreatePrincipal creates a user or service account with a role in its
// home account (admins of that account and operators). Names are unique
// within the account, so a retried create answers ErrConflict rather than
// making a second principal.
func (s *AdminService) CreatePrincipal(ctx context.Context, p CreatePrincipalParams) (*Principal, error) {
	body := map[string]any{"name": p.Name, "account_id": p.AccountID, "role": p.Role}
	if p.Kind != "" {
		body["kind"] = p.Kind
	}
	if p.Email != "" {
		body["email"] = p.Email
	}
	if p.Password != "" {
		body["password"] = string(p.Password)
	}
	return call[Principal](ctx, s.c, request{method: http.MethodPost, path: "/admin/v1/principals", body: body, idem: createOnce})
}

// ListPrincipals returns one page of the principals of the accounts the
// caller administers.
func (s *AdminService) ListPrincipals(ctx context.Context, p PrincipalListParams) (*PrincipalList, error) {
	q := queryOf(map[string]string{"account_id": p.AccountID, "kind": p.Kind, "name": p.Name, "limit": itoa(p.Limit), "after": p.After})
	var out struct {
		Items      []Principal `json:"items"`
		NextCursor *string     `json:"next_cursor"`
	}
	if err := s.c.do(ctx, request{method: http.MethodGet, path: "/admin/v1/principals", query: q}, &out); err != nil {
		return nil, err
	}
	l := &PrincipalList{Items: out.Items}
	if out.NextCursor != nil {
		l.NextCursor = *out.NextCursor
	}
	return l, nil
}

// GetPrincipal returns one principal.
func (s *AdminService) GetPrincipal(ctx context.Context, id string) (*Principal, error) {
	return call[Principal](ctx, s.c, request{method: http.MethodGet, path: principalPath(id)})
}

// UpdatePrincipal renames a principal, sets its email, disables or
// enables it (admins of its home account and operators).
func (s *AdminService) UpdatePrincipal(ctx context.Context, id string, p UpdatePrincipalParams) (*Principal, error) {
	body := map[string]any{}
	setIf(body, "name", p.Name)
	setIf(body, "email", p.Email)
	setIf(body, "disabled", p.Disabled)
	return call[Principal](ctx, s.c, request{method: http.MethodPatch, path: principalPath(id), body: body})
}

// DisablePrincipal disables a principal: every session ends and every key
// stops working at once.
func (s *AdminService) DisablePrincipal(ctx context.Context, id string) (*Principal, error) {
	t := true
	return s.UpdatePrincipal(ctx, id, UpdatePrincipalParams{Disabled: &t})
}

// EnablePrincipal enables a disabled principal again.
func (s *AdminService) EnablePrincipal(ctx context.Context, id string) (*Principal, error) {
	f := false
	return s.UpdatePrincipal(ctx, id, UpdatePrincipalParams{Disabled: &f})
}

// DeletePrincipal deletes a principal with its keys, memberships and
// sessions (never the caller itself).
func (s *AdminService) DeletePrincipal(ctx context.Context, id string) error {
	return s.c.do(ctx, request{method: http.MethodDelete, path: principalPath(id)}, nil)
}

// SetMembership grants the principal role in accountID, or changes its
// role there (admins of that account and operators). It returns the
// principal's id and memberships; the other fields are filled only when
// the caller may see the principal.
func (s *AdminService) SetMembership(ctx context.Context, principalID, accountID, role string) (*Principal, error) {
	path := principalPath(principalID) + "/memberships/" + url.PathEscape(accountID)
	return call[Principal](ctx, s.c, request{method: http.MethodPut, path: path, body: map[string]string{"role": role}})
}

// RevokeMembership removes the principal from accountID (not its home
// account).
func (s *AdminService) RevokeMembership(ctx context.Context, principalID, accountID string) error {
	path := principalPath(principalID) + "/memberships/" + url.PathEscape(accountID)
	return s.c.do(ctx, request{method: http.MethodDelete, path: path}, nil)
}

// SetPassword sets a user's password (admins of its home account and
// operators) and ends every session of the user.
func (s *AdminService) SetPassword(ctx context.Context, principalID string, password Secret) error {
	body := map[string]string{"password": string(password)}
	return s.c.do(ctx, request{method: http.MethodPut, path: principalPath(principalID) + "/password", body: body}, nil)
}

// CreateAPIKey creates an API key for the principal; the key is in the
// answer only. Keys have no unique name, so the create is retried only
// where it cannot have been applied.
func (s *AdminService) CreateAPIKey(ctx context.Context, principalID string, p CreateAPIKeyParams) (*NewAPIKey, error) {
	body := map[string]any{}
	if p.Name != "" {
		body["name"] = p.Name
	}
	if p.TTL > 0 {
		body["ttl_seconds"] = int64(p.TTL / time.Second)
	}
	var out struct {
		APIKey
		Key string `json:"api_key"`
	}
	if err := s.c.do(ctx, request{method: http.MethodPost, path: principalPath(principalID) + "/api-keys", body: body, idem: createOnce}, &out); err != nil {
		return nil, err
	}
	return &NewAPIKey{APIKey: out.APIKey, Key: Secret(out.Key)}, nil
}

// ListAPIKeys lists the principal's API keys (never the keys themselves).
func (s *AdminService) ListAPIKeys(ctx context.Context, principalID string) ([]APIKey, error) {
	var out struct {
		Items []APIKey `json:"items"`
	}
	if err := s.c.do(ctx, request{method: http.MethodGet, path: principalPath(principalID) + "/api-keys"}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// RevokeAPIKey revokes an API key; it stops working at once.
func (s *AdminService) RevokeAPIKey(ctx context.Context, keyID string) error {
	return s.c.do(ctx, request{method: http.MethodDelete, path: "/admin/v1/api-keys/" + url.PathEscape(keyID)}, nil)
}
