package client

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"net/url"
	"time"
)

// Credential types.
const (
	TypeKey  = "key"  // an opaque string, e.g. an API key
	TypeJSON = "json" // a JSON document, e.g. a service-account file
)

// Secret is a credential's payload. It redacts itself when formatted with
// fmt, logged with log/slog or marshalled to JSON, so that it does not leak
// by accident; string(s) is the payload.
type Secret string

const redacted = "[REDACTED]"

// String, GoString, LogValue, MarshalJSON and MarshalText show
// "[REDACTED]", never the payload.
func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Credential is a credential's metadata; the payload is never part of it.
type Credential struct {
	ID                    string         `json:"id"`
	Type                  string         `json:"type"`
	Name                  string         `json:"name"`
	Description           string         `json:"description"`
	Metadata              map[string]any `json:"credential_metadata"`
	CreatedByUserID       string         `json:"created_by_user_id"`
	CreatedByIdentityType string         `json:"created_by_identity_type"`
	CreatedAt             time.Time      `json:"created_at"`
	UpdatedAt             time.Time      `json:"updated_at"`
}

// CreateParams describe a new credential.
type CreateParams struct {
	Type        string // TypeKey or TypeJSON
	Name        string // unique in the account
	Description string
	Payload     Secret // for TypeJSON, JSON text
	Metadata    map[string]any
}

// UpdateParams change a credential; nil fields stay as they are.
type UpdateParams struct {
	Name        *string
	Type        *string
	Description *string
	Payload     *Secret
	Metadata    map[string]any // replaces the metadata when not nil
}

// ListParams select and order a page of credentials. Zero values are the
// server's defaults (100 per page, ordered by created_at ascending).
type ListParams struct {
	Name          string // exact-name filter
	Limit         int    // 1..10000
	SortBy        string // created_at, updated_at, name, type or id
	Descending    bool
	StartingAfter string // a credential id: the page after it
	EndingBefore  string // a credential id: the page before it
}

// CredentialList is one page of credentials.
type CredentialList struct {
	Items   []Credential `json:"items"`
	Total   int          `json:"total"`
	HasMore bool         `json:"has_more"`
	Limit   int          `json:"limit"`
}

// CredentialsService is the SGP v5 credentials API (/v5/credentials).
type CredentialsService struct{ c *Client }

// Create stores a new credential. A name already used in the account is
// ErrConflict. Create is retried only where it cannot have been applied
// (see WithRetries).
func (s *CredentialsService) Create(ctx context.Context, p CreateParams) (*Credential, error) {
	body := map[string]any{"type": p.Type, "name": p.Name, "payload": string(p.Payload)}
	if p.Description != "" {
		body["description"] = p.Description
	}
	if p.Metadata != nil {
		body["credential_metadata"] = p.Metadata
	}
	return call[Credential](ctx, s.c, request{method: http.MethodPost, path: "/v5/credentials", body: body, idem: createOnce})
}

// List returns one page of credentials.
func (s *CredentialsService) List(ctx context.Context, p ListParams) (*CredentialList, error) {
	q := queryOf(map[string]string{"name": p.Name, "limit": itoa(p.Limit), "sort_by": p.SortBy,
		"starting_after": p.StartingAfter, "ending_before": p.EndingBefore})
	if p.Descending {
		q.Set("sort_order", "desc")
	}
	return call[CredentialList](ctx, s.c, request{method: http.MethodGet, path: "/v5/credentials", query: q})
}

// All iterates over every credential matching p, fetching page after page
// (p.StartingAfter is where it starts; p.EndingBefore must be empty). An
// error ends the iteration after it is yielded.
func (s *CredentialsService) All(ctx context.Context, p ListParams) iter.Seq2[*Credential, error] {
	return func(yield func(*Credential, error) bool) {
		if p.EndingBefore != "" {
			yield(nil, errors.New("client: All pages forward: EndingBefore must be empty"))
			return
		}
		for {
			page, err := s.List(ctx, p)
			if err != nil {
				yield(nil, err)
				return
			}
			for i := range page.Items {
				if !yield(&page.Items[i], nil) {
					return
				}
			}
			if !page.HasMore || len(page.Items) == 0 {
				return
			}
			p.StartingAfter = page.Items[len(page.Items)-1].ID
		}
	}
}

// Get returns the credential with this id.
func (s *CredentialsService) Get(ctx context.Context, id string) (*Credential, error) {
	return call[Credential](ctx, s.c, request{method: http.MethodGet, path: "/v5/credentials/" + url.PathEscape(id)})
}

// GetByName returns the credential with this name.
func (s *CredentialsService) GetByName(ctx context.Context, name string) (*Credential, error) {
	return call[Credential](ctx, s.c, request{method: http.MethodGet, path: "/v5/credentials/name/" + url.PathEscape(name)})
}

// Update changes the credential with this id. Setting the same values
// twice has the same effect as once, so it is retried like a read.
func (s *CredentialsService) Update(ctx context.Context, id string, p UpdateParams) (*Credential, error) {
	body := map[string]any{}
	setIf(body, "name", p.Name)
	setIf(body, "type", p.Type)
	setIf(body, "description", p.Description)
	if p.Payload != nil {
		body["payload"] = string(*p.Payload)
	}
	if p.Metadata != nil {
		body["credential_metadata"] = p.Metadata
	}
	return call[Credential](ctx, s.c, request{method: http.MethodPatch, path: "/v5/credentials/" + url.PathEscape(id), body: body})
}

// Delete deletes the credential with this id. If a retried delete finds
// the credential gone (an earlier attempt deleted it but its answer was
// lost), the result is ErrNotFound.
func (s *CredentialsService) Delete(ctx context.Context, id string) error {
	return s.c.do(ctx, request{method: http.MethodDelete, path: "/v5/credentials/" + url.PathEscape(id)}, nil)
}

type secretResponse struct {
	Result string `json:"result"`
}

// Decrypt returns the payload of the credential with this id. It needs a
// role that may read secrets, and every call is recorded in the audit
// trail.
func (s *CredentialsService) Decrypt(ctx context.Context, id string) (Secret, error) {
	var out secretResponse
	if err := s.c.do(ctx, request{method: http.MethodPost, path: "/v5/credentials/" + url.PathEscape(id) + "/secret"}, &out); err != nil {
		return "", err
	}
	return Secret(out.Result), nil
}

// DecryptByName returns the payload of the credential with this name.
func (s *CredentialsService) DecryptByName(ctx context.Context, name string) (Secret, error) {
	var out secretResponse
	if err := s.c.do(ctx, request{method: http.MethodPost, path: "/v5/credentials/name/" + url.PathEscape(name) + "/secret"}, &out); err != nil {
		return "", err
	}
	return Secret(out.Result), nil
}
