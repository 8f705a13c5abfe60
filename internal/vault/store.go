package vault

import (
	"context"
	"time"
)

// Store is what the core calls on storage, and nothing more, composed of
// one interface per consumer: accounts and principals (bootstrap, the CLI's
// admin commands), API keys (authentication, with the generations that let
// it cache), SGP credentials (one at a time and in bulk), the DSM dialect's
// objects, meta values (the master-key check), reading the audit trail,
// credential lifecycle, the management plane and trust policies. A caller
// that needs only part of it takes that part; what the binary needs beyond
// the core (appending to the audit trail, the webhook worker's deliveries,
// readiness, closing, backups) is internal/store.Engine.
//
// It sees ciphertext and metadata only, never plaintext. Implementations
// translate driver errors at their edge: a missing row is ErrNotFound, a
// uniqueness violation is ErrConflict (both checked with errors.Is; other
// kinds with KindOf), an unreachable database is KindUnavailable. A write
// made with a context carrying a TxAudit appends its audit records in the
// same transaction. Store is implemented by internal/store/sqlstore for
// SQLite and PostgreSQL; internal/store/storetest is its contract, and
// internal/store.Engine adds the capabilities the binary needs beyond the
// core.
type Store interface {
	AccountStore
	APIKeyStore
	AuthGenerations // authcache.go
	CredentialStore
	BulkCredentialStore // bulk.go
	DSMStore
	MetaStore
	AuditReader
	LifecycleStore // lifecycle_store.go
	MgmtStore
	TrustStore
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

// AccountStore holds accounts, principals and memberships. A missing
// account or principal is ErrNotFound; a duplicate id ErrConflict.
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
	// ApplyAccountChanges stores ch in one transaction (all or nothing).
	// With RequireEmpty it fails with ErrConflict if any account exists.
	ApplyAccountChanges(ctx context.Context, ch AccountChanges) error
}

// APIKeyStore holds API keys; authentication reads it on every request.
type APIKeyStore interface {
	// CreateAPIKey stores k. ErrConflict if its id or hash exists.
	CreateAPIKey(ctx context.Context, k *APIKey) error
	// LookupAPIKey finds the key whose hash is hash and resolves the role of
	// its principal in accountID ("" = the principal's default account).
	// ErrNotFound if no key has that hash.
	LookupAPIKey(ctx context.Context, hash []byte, accountID string) (*AuthRecord, error)
	ListAPIKeys(ctx context.Context, principalID string) ([]APIKey, error)
	// RevokeAPIKey marks key id revoked at at. ErrNotFound if no such key
	// or it is revoked already.
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
	// cursor is KindInvalid with Field "after" or "before" (the cursor used).
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
