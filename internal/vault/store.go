package vault

import (
	"context"
	"time"
)

// Store is the storage interface. It sees ciphertext and metadata only, never
// plaintext. Implementations translate driver errors at their edge:
// a missing row is ErrNotFound, a uniqueness violation is ErrConflict, an
// unreachable database is KindUnavailable. Store is implemented by
// internal/store/sqlstore for SQLite and PostgreSQL.
type Store interface {
	AccountStore
	CredentialStore
	DSMStore
	MetaStore
	AuditStore
	TrustStore

	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	Close() error
}

// AuthRecord is what authentication needs to know about an API key, read in
// one query: the key, its principal and the principal's role in the account
// the request selected (or its default account).
type AuthRecord struct {
	Key       APIKey
	Principal Principal
	AccountID string
	Role      Role // empty when the principal is not a member of AccountID
}

// AccountStore holds accounts, principals, memberships and API keys.
type AccountStore interface {
	// IsEmpty reports whether no account exists yet (bootstrap is needed).
	IsEmpty(ctx context.Context) (bool, error)
	CreateAccount(ctx context.Context, a *Account) error
	GetAccount(ctx context.Context, id string) (*Account, error)
	ListAccounts(ctx context.Context) ([]Account, error)
	// CreatePrincipal stores p and its memberships in one transaction.
	CreatePrincipal(ctx context.Context, p *Principal, ms []Membership) error
	GetPrincipal(ctx context.Context, id string) (*Principal, error)
	ListPrincipals(ctx context.Context) ([]Principal, error)
	// PutMembership adds or replaces a membership.
	PutMembership(ctx context.Context, m Membership) error
	ListMemberships(ctx context.Context, principalID string) ([]Membership, error)
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// ApplyAccountChanges stores ch in one transaction (all or nothing).
	// With RequireEmpty it fails with ErrConflict if any account exists.
	ApplyAccountChanges(ctx context.Context, ch AccountChanges) error
	// LookupAPIKey finds the key whose hash is hash and resolves the role of
	// its principal in accountID ("" = the principal's default account).
	// ErrNotFound if no key has that hash.
	LookupAPIKey(ctx context.Context, hash []byte, accountID string) (*AuthRecord, error)
	ListAPIKeys(ctx context.Context, principalID string) ([]APIKey, error)
	RevokeAPIKey(ctx context.Context, id string, at time.Time) error
	// TouchAPIKey records that key id was used at t.
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// AccountChanges are changes to accounts, principals, memberships, API keys
// and meta values made together (bootstrap; an account with its admin).
type AccountChanges struct {
	RequireEmpty bool // refuse (ErrConflict) if any account exists
	Accounts     []Account
	Principals   []Principal
	Memberships  []Membership // added or replaced
	APIKeys      []APIKey
	Meta         map[string][]byte // set if unset
}

// CredentialStore holds SGP credentials.
type CredentialStore interface {
	// CreateCredential inserts c. ErrConflict if the name is taken in the account.
	CreateCredential(ctx context.Context, c *Credential) error
	GetCredential(ctx context.Context, accountID, id string) (*Credential, error)
	GetCredentialByName(ctx context.Context, accountID, name string) (*Credential, error)
	// UpdateCredential reads the credential, applies fn and writes the result,
	// all in one transaction. fn may not do I/O. ErrConflict on a name clash.
	UpdateCredential(ctx context.Context, accountID, id string, fn func(*Credential) error) (*Credential, error)
	// DeleteCredential removes it, leaving a tombstone so that its id keeps
	// working as a pagination cursor for the cursor horizon (30 days).
	DeleteCredential(ctx context.Context, accountID, id string) error
	// ListCredentials returns one page with keyset pagination. An unknown
	// cursor is KindInvalid with Field "starting_after"/"ending_before".
	ListCredentials(ctx context.Context, accountID string, q CredentialQuery) (*CredentialPage, error)
}

// MetaStore holds small named values about the database itself (for
// example the master-key check value).
type MetaStore interface {
	// GetMeta returns the value of key, ErrNotFound if unset.
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMeta sets key to value if it is unset; it reports whether it did.
	PutMeta(ctx context.Context, key string, value []byte) (bool, error)
}
