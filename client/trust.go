package client

import (
	"context"
	"encoding/json"
	"net/url"
	"time"
)

// TrustService manages trust policies (POST/GET/DELETE
// /admin/v1/trust-policies): which workload tokens may be exchanged for
// keys of which role in which account. It needs the key of an admin of the
// policy's account (or of the system account).
type TrustService struct{ c *Client }

// ClaimRule requires a token claim to match Pattern (exact, or a glob with
// *, ? or [).
type ClaimRule struct {
	Claim   string `json:"claim"`
	Pattern string `json:"pattern"`
}

// Key sources of a trust policy.
const (
	KeySourceDiscovery = "discovery" // the issuer's OIDC discovery document
	KeySourceJWKSURL   = "jwks_url"  // a JWKS URL
	KeySourceJWKS      = "jwks"      // a JWKS document stored in the policy
)

// TrustPolicyParams create a trust policy.
type TrustPolicyParams struct {
	Name       string          `json:"name"`
	AccountID  string          `json:"account_id"`
	Issuer     string          `json:"issuer"`
	KeySource  string          `json:"key_source"`
	JWKSURL    string          `json:"jwks_url,omitempty"`
	JWKS       json.RawMessage `json:"jwks,omitempty"`
	Audiences  []string        `json:"audiences"`
	Claims     []ClaimRule     `json:"claims"`
	Role       string          `json:"role"`
	TTLSeconds int64           `json:"ttl_seconds,omitempty"`
}

// TrustPolicy is a stored trust policy: its id, the parameters it was
// created with (TTLSeconds is never 0: the server fills in its default)
// and its creation time.
type TrustPolicy struct {
	ID string `json:"id"`
	TrustPolicyParams
	CreatedAt time.Time `json:"created_at"`
}

// Create creates a trust policy.
func (s *TrustService) Create(ctx context.Context, p TrustPolicyParams) (*TrustPolicy, error) {
	return call[TrustPolicy](ctx, s.c, request{method: "POST", path: "/admin/v1/trust-policies", body: p, idem: createOnce})
}

// List lists the trust policies of accountID ("" = the key's account).
func (s *TrustService) List(ctx context.Context, accountID string) ([]TrustPolicy, error) {
	var out struct {
		Items []TrustPolicy `json:"items"`
	}
	q := queryOf(map[string]string{"account_id": accountID})
	if err := s.c.do(ctx, request{method: "GET", path: "/admin/v1/trust-policies", query: q}, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Get returns one trust policy.
func (s *TrustService) Get(ctx context.Context, id string) (*TrustPolicy, error) {
	return call[TrustPolicy](ctx, s.c, request{method: "GET", path: "/admin/v1/trust-policies/" + url.PathEscape(id)})
}

// Delete deletes a trust policy; keys issued through it stop working.
func (s *TrustService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, request{method: "DELETE", path: "/admin/v1/trust-policies/" + url.PathEscape(id)}, nil)
}
