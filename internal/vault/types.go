package vault

import (
	"encoding/json"
	"slices"
	"time"
)

// Account is a tenant. Every credential, group and security object belongs to
// exactly one account, and nothing crosses account boundaries.
type Account struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// PrincipalKind says what kind of identity a principal is.
type PrincipalKind string

const (
	PrincipalUser           PrincipalKind = "user"
	PrincipalServiceAccount PrincipalKind = "service_account"
	PrincipalApp            PrincipalKind = "app" // a DSM app; also a service identity
)

// Principal is an identity that can hold API keys and be a member of accounts.
type Principal struct {
	ID               string
	Kind             PrincipalKind
	Name             string
	DefaultAccountID string
	CreatedAt        time.Time
}

// Membership grants a principal a role in an account.
type Membership struct {
	PrincipalID string
	AccountID   string
	Role        Role
}

// APIKey is a credential that authenticates a principal. Only a SHA-256 hash
// of the key is stored; keys are 256-bit random secrets, so a fast hash is
// enough (there is nothing to brute-force).
type APIKey struct {
	ID          string
	PrincipalID string
	Name        string
	Hash        []byte
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	LastUsedAt  *time.Time
}

// Identity is an authenticated caller acting in one account: the result of
// authentication, passed to every Service method.
type Identity struct {
	Principal Principal
	AccountID string
	Role      Role
	KeyID     string // the API key used, if any
	// KeyExpiresAt is when that key expires (nil: never); a DSM session
	// opened with it must not outlive it.
	KeyExpiresAt *time.Time
	SessionID    string // the DSM session used, if any
	// App is the app principal as read at authentication, so that its
	// group scope is read once per request (nil: not an app, or not read).
	App *App
}

// Credential is an SGP credential. Its payload is stored only as Ciphertext,
// sealed with associated data that binds it to AccountID, ID and Version.
type Credential struct {
	ID            string
	AccountID     string
	Name          string
	Type          string
	Description   string
	Metadata      json.RawMessage // a JSON object, compact
	CreatedBy     string          // principal id
	CreatedByKind PrincipalKind
	CreatedAt     time.Time
	UpdatedAt     time.Time
	Version       int64      // payload version; bumped whenever the payload changes
	Ciphertext    []byte     // envelope ciphertext of the payload
	ExpiresAt     *time.Time // when the credential expires (nil: never); see lifecycle.go
	// VersionBy is the principal that made the current version, set by
	// the service when it makes one (not a column of the credential).
	VersionBy string
}

// Credential sort fields accepted by ListCredentials.
const (
	SortCreatedAt = "created_at"
	SortUpdatedAt = "updated_at"
	SortName      = "name"
	SortType      = "type"
	SortID        = "id"
)

// SortFields lists the accepted credential sort fields.
var SortFields = []string{SortCreatedAt, SortUpdatedAt, SortName, SortType, SortID}

// IsSortField reports whether f is one of SortFields. It is the one
// definition of the rule: a dialect uses it to answer a bad query in its
// own shape, ListCredentials to refuse any other caller's, and a store may
// rely on it.
func IsSortField(f string) bool { return slices.Contains(SortFields, f) }

// CredentialQuery selects a page of credentials with keyset pagination.
// At most one of After and Before is set; both are credential ids.
type CredentialQuery struct {
	Name   *string // exact-name filter
	After  string
	Before string
	Limit  int
	SortBy string
	Desc   bool
}

// CredentialPage is one page of a credential listing.
type CredentialPage struct {
	Items   []Credential
	Total   int  // all credentials matching the filter, not just this page
	HasMore bool // more items exist beyond this page in the direction of travel
}
