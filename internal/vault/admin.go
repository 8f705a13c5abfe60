package vault

import (
	"context"
	"fmt"
	"time"
)

// BootstrapResult is what Bootstrap created. APIKey is the only copy of the
// key in plaintext; it must be shown once and forgotten.
type BootstrapResult struct {
	Account   Account
	Principal Principal
	KeyID     string
	APIKey    string
}

// Bootstrap creates the default account, an admin principal and one API key
// if the store is empty. suppliedKey, if not empty, is used as that key
// instead of a generated one. It returns nil, nil when the store already has
// an account.
func (s *Service) Bootstrap(ctx context.Context, suppliedKey string) (*BootstrapResult, error) {
	empty, err := s.store.IsEmpty(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !empty {
		return nil, nil
	}
	if suppliedKey != "" && len(suppliedKey) < MinAPIKeyLength {
		return nil, Errorf(KindInvalid, "the supplied bootstrap API key must be at least %d characters", MinAPIKeyLength)
	}
	now := s.Now()
	acct := Account{ID: NewID(), Name: "default", CreatedAt: now}
	if err := s.store.CreateAccount(ctx, &acct); err != nil {
		return nil, fmt.Errorf("bootstrap: create account: %w", err)
	}
	if _, err := s.store.PutMeta(ctx, systemAccountMeta, []byte(acct.ID)); err != nil {
		return nil, fmt.Errorf("bootstrap: record system account: %w", err)
	}
	p := Principal{ID: NewID(), Kind: PrincipalUser, Name: "admin", DefaultAccountID: acct.ID, CreatedAt: now}
	if err := s.store.CreatePrincipal(ctx, &p, []Membership{{PrincipalID: p.ID, AccountID: acct.ID, Role: RoleAdmin}}); err != nil {
		return nil, fmt.Errorf("bootstrap: create principal: %w", err)
	}
	keyID, key := NewID(), suppliedKey
	if key == "" {
		key = NewAPIKeySecret(keyID)
	} else if id, ok := APIKeyID(key); ok {
		keyID = id
	}
	k := APIKey{ID: keyID, PrincipalID: p.ID, Name: "bootstrap", Hash: HashAPIKey(key), CreatedAt: now}
	if err := s.store.CreateAPIKey(ctx, &k); err != nil {
		return nil, fmt.Errorf("bootstrap: create key: %w", err)
	}
	return &BootstrapResult{Account: acct, Principal: p, KeyID: keyID, APIKey: key}, nil
}

// CreateAccount creates an account and makes the given principal (if any)
// its admin.
func (s *Service) CreateAccount(ctx context.Context, name, adminPrincipalID string) (*Account, error) {
	if name == "" {
		return nil, FieldError("name", "account name must not be empty")
	}
	a := Account{ID: NewID(), Name: name, CreatedAt: s.Now()}
	if err := s.store.CreateAccount(ctx, &a); err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	if adminPrincipalID != "" {
		if err := s.store.PutMembership(ctx, Membership{PrincipalID: adminPrincipalID, AccountID: a.ID, Role: RoleAdmin}); err != nil {
			return nil, fmt.Errorf("create account: add admin: %w", err)
		}
	}
	return &a, nil
}

// CreatePrincipal creates a user or service account with the given role in
// its default account.
func (s *Service) CreatePrincipal(ctx context.Context, kind PrincipalKind, name, accountID string, role Role) (*Principal, error) {
	if kind != PrincipalUser && kind != PrincipalServiceAccount {
		return nil, FieldError("kind", "principal kind must be user or service_account")
	}
	if name == "" {
		return nil, FieldError("name", "principal name must not be empty")
	}
	if _, ok := ParseRole(string(role)); !ok {
		return nil, FieldError("role", "unknown role %q", role)
	}
	if _, err := s.store.GetAccount(ctx, accountID); err != nil {
		return nil, fmt.Errorf("create principal: account %s: %w", accountID, err)
	}
	p := Principal{ID: NewID(), Kind: kind, Name: name, DefaultAccountID: accountID, CreatedAt: s.Now()}
	if err := s.store.CreatePrincipal(ctx, &p, []Membership{{PrincipalID: p.ID, AccountID: accountID, Role: role}}); err != nil {
		return nil, fmt.Errorf("create principal: %w", err)
	}
	return &p, nil
}

// AddMembership grants principalID role in accountID (replacing any role it had).
func (s *Service) AddMembership(ctx context.Context, principalID, accountID string, role Role) error {
	if _, ok := ParseRole(string(role)); !ok {
		return FieldError("role", "unknown role %q", role)
	}
	if _, err := s.store.GetPrincipal(ctx, principalID); err != nil {
		return fmt.Errorf("add membership: principal %s: %w", principalID, err)
	}
	if _, err := s.store.GetAccount(ctx, accountID); err != nil {
		return fmt.Errorf("add membership: account %s: %w", accountID, err)
	}
	return s.store.PutMembership(ctx, Membership{PrincipalID: principalID, AccountID: accountID, Role: role})
}

// CreateAPIKey creates a new API key for a principal and returns it with its
// plaintext, which exists only in this return value. ttl 0 means no expiry.
func (s *Service) CreateAPIKey(ctx context.Context, principalID, name string, ttl time.Duration) (*APIKey, string, error) {
	if _, err := s.store.GetPrincipal(ctx, principalID); err != nil {
		return nil, "", fmt.Errorf("create api key: principal %s: %w", principalID, err)
	}
	now := s.Now()
	k := APIKey{ID: NewID(), PrincipalID: principalID, Name: name, CreatedAt: now}
	secret := NewAPIKeySecret(k.ID)
	k.Hash = HashAPIKey(secret)
	if ttl > 0 {
		exp := now.Add(ttl)
		k.ExpiresAt = &exp
	}
	if err := s.store.CreateAPIKey(ctx, &k); err != nil {
		return nil, "", fmt.Errorf("create api key: %w", err)
	}
	return &k, secret, nil
}

// RevokeAPIKey revokes a key; it stops working at once.
func (s *Service) RevokeAPIKey(ctx context.Context, keyID string) error {
	if err := s.store.RevokeAPIKey(ctx, keyID, s.Now()); err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	return nil
}

// RequireOperator allows only operators of the whole installation: users or
// service accounts with the admin role in the system account (the first
// account, created at bootstrap). Server-wide actions such as master-key
// rotation need it; an admin of any other account, or an app, is refused.
func (s *Service) RequireOperator(ctx context.Context, id *Identity) error {
	if err := id.Require(ActAdmin); err != nil {
		return err
	}
	denied := Errorf(KindPermissionDenied, "only an admin of the system account may do this")
	if id.Principal.Kind == PrincipalApp {
		return denied
	}
	sys, err := s.SystemAccountID(ctx)
	if err != nil {
		return fmt.Errorf("require operator: %w", err)
	}
	if sys == "" || sys != id.AccountID {
		return denied
	}
	return nil
}

const systemAccountMeta = "system_account"

// SystemAccountID returns the id of the system account: the account created
// by bootstrap, recorded in the database's meta table (for databases
// bootstrapped before that record existed: the oldest account).
func (s *Service) SystemAccountID(ctx context.Context) (string, error) {
	v, err := s.store.GetMeta(ctx, systemAccountMeta)
	if err == nil {
		return string(v), nil
	}
	if KindOf(err) != KindNotFound {
		return "", err
	}
	accts, err := s.store.ListAccounts(ctx)
	if err != nil || len(accts) == 0 {
		return "", err
	}
	return accts[0].ID, nil
}
