package vault

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
)

// PrincipalOperator is the kind of an operator acting outside the API
// (the CLI's admin commands, bootstrap at start-up): not a principal stored
// in the vault, only a name in the audit trail.
const PrincipalOperator PrincipalKind = "operator"

// OperatorIdentity is the identity of an operator acting outside the API,
// recorded in the audit trail as principal "operator:<name>" of kind
// operator. The CLI uses "cli:<OS user>"; bootstrap at start-up "bootstrap".
func OperatorIdentity(name string) *Identity {
	return &Identity{Principal: Principal{ID: "operator:" + name, Kind: PrincipalOperator, Name: name}}
}

type actorKey struct{}

// WithActor returns ctx naming who performs the administrative changes
// (accounts, principals, memberships, API keys) made with it: the audit
// trail records that identity.
func WithActor(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, actorKey{}, id)
}

// ActorFrom returns the acting identity ctx names (WithActor), or nil.
func ActorFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(actorKey{}).(*Identity)
	return id
}

// actor returns a copy of the acting identity of ctx (an unnamed operator
// if none was given), to be recorded in accountID.
func actor(ctx context.Context, accountID string) *Identity {
	id, _ := ctx.Value(actorKey{}).(*Identity)
	if id == nil {
		id = OperatorIdentity("unnamed")
	}
	cp := *id
	cp.AccountID = accountID
	return &cp
}

// BootstrapResult is what Bootstrap created. APIKey is the only copy of the
// key in plaintext; it must be shown once and forgotten.
type BootstrapResult struct {
	Account   Account
	Principal Principal
	KeyID     string
	APIKey    string
}

// Bootstrap creates the default account, an admin principal and one API key
// if the store is empty, in one transaction with its audit record: a crash
// leaves either an empty store or a usable one. suppliedKey, if not empty,
// is used as that key instead of a generated one; it must have the form of
// a generated key (CheckSuppliedAPIKey). It returns nil, nil when the store
// already has an account.
func (s *Service) Bootstrap(ctx context.Context, suppliedKey string) (res *BootstrapResult, err error) {
	empty, err := s.store.IsEmpty(ctx)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if !empty {
		return nil, nil
	}
	keyID, key := NewID(), suppliedKey
	if key == "" {
		key = NewAPIKeySecret(keyID)
	} else {
		if keyID, err = CheckSuppliedAPIKey(key); err != nil {
			return nil, err
		}
	}
	now := s.Now()
	acct := Account{ID: NewID(), Name: "default", CreatedAt: now}
	p := Principal{ID: NewID(), Kind: PrincipalUser, Name: "admin", DefaultAccountID: acct.ID, CreatedAt: now}
	k := APIKey{ID: keyID, PrincipalID: p.ID, Name: "bootstrap", Hash: HashAPIKey(key), CreatedAt: now}
	if _, ok := ctx.Value(actorKey{}).(*Identity); !ok {
		ctx = WithActor(ctx, OperatorIdentity("bootstrap"))
	}
	id := actor(ctx, acct.ID)
	ctx = s.auditing(ctx, id, "vault.bootstrap", "account", func() string { return acct.ID })
	defer func() {
		if res != nil || err != nil { // nothing to record when another process bootstrapped first
			err = s.auditOutcome(ctx, id, "vault.bootstrap", "account", acct.ID, err)
		}
	}()
	err = s.store.ApplyAccountChanges(ctx, AccountChanges{
		RequireEmpty: true,
		Accounts:     []Account{acct},
		Principals:   []Principal{p},
		Memberships:  []Membership{{PrincipalID: p.ID, AccountID: acct.ID, Role: RoleAdmin}},
		APIKeys:      []APIKey{k},
		Meta:         map[string][]byte{systemAccountMeta: []byte(acct.ID)},
	})
	if KindOf(err) == KindConflict {
		return nil, nil // another process bootstrapped it first
	}
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &BootstrapResult{Account: acct, Principal: p, KeyID: keyID, APIKey: key}, nil
}

// CheckSuppliedAPIKey checks a key supplied from outside (the bootstrap key
// of $CREDVAULT_BOOTSTRAP_API_KEY) and returns its key id. Keys are stored
// as a fast hash, which is safe only for random keys, so it must have the
// form NewAPIKeySecret generates: base64 of "<uuid>:<secret>" where the
// secret is base64url of at least 32 random bytes (256 bits); secrets with
// visibly little entropy (few distinct bytes, e.g. "aaaa…") are refused.
func CheckSuppliedAPIKey(key string) (string, error) {
	bad := Errorf(KindInvalid, "the supplied bootstrap API key must have the form of a generated key: base64 of \"<uuid>:<secret>\" with a secret of at least 256 random bits (base64url; see the README), or let bootstrap generate the key")
	keyID, ok := APIKeyID(key)
	if !ok {
		return "", bad
	}
	raw, _ := base64.StdEncoding.DecodeString(key)
	_, secretText, _ := strings.Cut(string(raw), ":")
	secret, err := base64.RawURLEncoding.DecodeString(secretText)
	if err != nil || len(secret) < 32 {
		return "", bad
	}
	distinct := map[byte]bool{}
	for _, b := range secret {
		distinct[b] = true
	}
	// 32 random bytes have about 30 distinct values; fewer than half the
	// length means a pattern, not randomness.
	if len(distinct) < len(secret)/2 {
		return "", Errorf(KindInvalid, "the supplied bootstrap API key's secret has too little entropy (too few distinct bytes); use a randomly generated key")
	}
	return keyID, nil
}

// CreateAccount creates an account and makes the given principal (if any)
// its admin, in one transaction with its audit record.
func (s *Service) CreateAccount(ctx context.Context, name, adminPrincipalID string) (a *Account, err error) {
	acct := Account{ID: NewID(), Name: name, CreatedAt: s.Now()}
	id := actor(ctx, acct.ID)
	ctx = s.auditing(ctx, id, "account.create", "account", func() string { return acct.ID })
	defer func() { err = s.auditOutcome(ctx, id, "account.create", "account", acct.ID, err) }()
	if name == "" {
		return nil, FieldError("name", "account name must not be empty")
	}
	ch := AccountChanges{Accounts: []Account{acct}}
	if adminPrincipalID != "" {
		if _, err := s.store.GetPrincipal(ctx, adminPrincipalID); err != nil {
			return nil, fmt.Errorf("create account: admin principal %s: %w", adminPrincipalID, err)
		}
		ch.Memberships = []Membership{{PrincipalID: adminPrincipalID, AccountID: acct.ID, Role: RoleAdmin}}
	}
	if err := s.store.ApplyAccountChanges(ctx, ch); err != nil {
		return nil, fmt.Errorf("create account: %w", err)
	}
	return &acct, nil
}

// CreatePrincipal creates a user or service account with the given role in
// its default account.
func (s *Service) CreatePrincipal(ctx context.Context, kind PrincipalKind, name, accountID string, role Role) (p *Principal, err error) {
	pr := Principal{ID: NewID(), Kind: kind, Name: name, DefaultAccountID: accountID, CreatedAt: s.Now()}
	id := actor(ctx, accountID)
	ctx = s.auditing(ctx, id, "principal.create", "principal", func() string { return pr.ID })
	defer func() { err = s.auditOutcome(ctx, id, "principal.create", "principal", pr.ID, err) }()
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
	if err := s.store.CreatePrincipal(ctx, &pr, []Membership{{PrincipalID: pr.ID, AccountID: accountID, Role: role}}); err != nil {
		return nil, fmt.Errorf("create principal: %w", err)
	}
	return &pr, nil
}

// AddMembership grants principalID role in accountID (replacing any role it had).
func (s *Service) AddMembership(ctx context.Context, principalID, accountID string, role Role) (err error) {
	id := actor(ctx, accountID)
	ctx = s.auditing(ctx, id, "membership.put", "principal", func() string { return principalID })
	defer func() { err = s.auditOutcome(ctx, id, "membership.put", "principal", principalID, err) }()
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
func (s *Service) CreateAPIKey(ctx context.Context, principalID, name string, ttl time.Duration) (key *APIKey, secret string, err error) {
	now := s.Now()
	k := APIKey{ID: NewID(), PrincipalID: principalID, Name: name, CreatedAt: now}
	id := actor(ctx, "")
	ctx = s.auditing(ctx, id, "api_key.create", "api_key", func() string { return k.ID })
	ctx = s.emitting(ctx, id, EventAPIKeyCreated, func() EventData { return EventData{ObjectType: "api_key", ObjectID: k.ID, Name: k.Name} })
	defer func() {
		if err = s.auditOutcome(ctx, id, "api_key.create", "api_key", k.ID, err); err != nil {
			key, secret = nil, ""
		}
	}()
	p, err := s.store.GetPrincipal(ctx, principalID)
	if err != nil {
		return nil, "", fmt.Errorf("create api key: principal %s: %w", principalID, err)
	}
	id.AccountID = p.DefaultAccountID
	secret = NewAPIKeySecret(k.ID)
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
func (s *Service) RevokeAPIKey(ctx context.Context, keyID string) (err error) {
	id := actor(ctx, "")
	ctx = s.auditing(ctx, id, "api_key.revoke", "api_key", func() string { return keyID })
	defer func() { err = s.auditOutcome(ctx, id, "api_key.revoke", "api_key", keyID, err) }()
	// The event goes to the key's principal's default account (as for
	// apikey.created); none for an unknown or already revoked key.
	if acct, name, revoked, err := s.store.APIKeyOwner(ctx, keyID); err == nil && !revoked {
		ev := *id
		ev.AccountID = acct
		ctx = s.emitting(ctx, &ev, EventAPIKeyRevoked, func() EventData { return EventData{ObjectType: "api_key", ObjectID: keyID, Name: name} })
	}
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
