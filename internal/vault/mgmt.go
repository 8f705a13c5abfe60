package vault

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// The management plane (issue 12): accounts, principals, memberships, API
// keys and passwords administered by authenticated principals through the
// admin API. Every method takes the calling identity, decides what it may
// do (see mgmtCaller) and records every change, in the change's own
// transaction, with that identity as the actor.

// PrincipalDetail is a principal as the management plane shows it.
type PrincipalDetail struct {
	Principal
	Email       string
	HasPassword bool
	DisabledAt  *time.Time
	LastLoginAt *time.Time // last successful password login
	Memberships []Membership
}

// PrincipalQuery selects a page of users and service accounts (never DSM
// apps), ordered by id.
type PrincipalQuery struct {
	AccountID string        // only members of this account ("" = any)
	Kind      PrincipalKind // "" = both kinds
	Name      string        // exact name ("" = any)
	After     string        // id cursor: only ids after it
	Limit     int
	// Within, if not nil, keeps only principals that are members of one of
	// these accounts (the accounts a non-operator administers).
	Within []string
}

// PrincipalUpdate changes a principal; nil fields are kept.
type PrincipalUpdate struct {
	Name     *string
	Email    *string // "" removes the email
	Disabled *bool
	At       time.Time // when (for DisabledAt)
}

// UserSession is a login session of a user. Only a hash of its token is
// stored; it ends after SessionIdleTimeout without use and after
// SessionMaxLifetime in any case.
type UserSession struct {
	ID          string
	TokenHash   []byte
	PrincipalID string
	CreatedAt   time.Time
	LastUsedAt  time.Time
	ExpiresAt   time.Time
}

// MgmtStore is what the management plane needs from the store beyond
// AccountStore.
type MgmtStore interface {
	// RenameAccount renames an account; ErrConflict if the name is taken.
	RenameAccount(ctx context.Context, id, name string) error
	// DeleteAccount deletes an account. Unless force, it fails with
	// KindConflict while the account holds credentials, security objects,
	// groups, apps or principals whose home it is; with force they are
	// deleted with it.
	DeleteAccount(ctx context.Context, id string, force bool) error
	// CreatePrincipalDetail stores p with its memberships, email and
	// password hash ("" = none) in one transaction.
	CreatePrincipalDetail(ctx context.Context, p *PrincipalDetail, passwordHash string) error
	GetPrincipalDetail(ctx context.Context, id string) (*PrincipalDetail, error)
	// ListPrincipalDetails returns up to q.Limit principals and whether more follow.
	ListPrincipalDetails(ctx context.Context, q PrincipalQuery) ([]PrincipalDetail, bool, error)
	// UpdatePrincipal applies u; disabling ends every session of the principal.
	UpdatePrincipal(ctx context.Context, id string, u PrincipalUpdate) error
	// DeletePrincipal deletes a principal with its keys, memberships and sessions.
	DeletePrincipal(ctx context.Context, id string) error
	// DeleteMembership removes a membership; ErrNotFound if there is none.
	DeleteMembership(ctx context.Context, principalID, accountID string) error
	GetAPIKey(ctx context.Context, id string) (*APIKey, error)

	// SetPassword stores a user's password hash and ends all its sessions.
	SetPassword(ctx context.Context, principalID, hash string) error
	// PasswordHash returns a principal's password hash ("" if none).
	PasswordHash(ctx context.Context, principalID string) (string, error)
	// PrincipalByEmail finds the enabled or disabled user with that email
	// and its password hash.
	PrincipalByEmail(ctx context.Context, email string) (*PrincipalDetail, string, error)
	// RecordLogin notes a successful password login.
	RecordLogin(ctx context.Context, principalID string, at time.Time) error
	CreateUserSession(ctx context.Context, s *UserSession) error
	// LookupUserSession finds a session by token hash, with its principal;
	// sessions of disabled principals are not found.
	LookupUserSession(ctx context.Context, tokenHash []byte) (*UserSession, *Principal, error)
	TouchUserSession(ctx context.Context, id string, at time.Time) error
	DeleteUserSession(ctx context.Context, id string) error
}

// mgmtCaller is what the management plane knows about its caller: the
// accounts it administers and whether it is an operator (an admin of the
// system account), who may manage every account.
type mgmtCaller struct {
	id       *Identity
	operator bool
	roles    map[string]Role
	sys      string
}

func (s *Service) mgmtCaller(ctx context.Context, id *Identity) (*mgmtCaller, error) {
	if id == nil {
		return nil, errBadKey
	}
	if id.Principal.Kind == PrincipalApp {
		return nil, Errorf(KindPermissionDenied, "DSM apps cannot use the admin API; use a user or service-account API key")
	}
	ms, err := s.store.ListMemberships(ctx, id.Principal.ID)
	if err != nil {
		return nil, fmt.Errorf("admin: memberships: %w", err)
	}
	c, err := s.callerWith(ctx, id, id.Principal.Kind, ms)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	return c, nil
}

// callerWith is the caller id, a principal of kind with the memberships
// ms: its role in each account, and whether it is an operator.
func (s *Service) callerWith(ctx context.Context, id *Identity, kind PrincipalKind, ms []Membership) (*mgmtCaller, error) {
	sys, err := s.SystemAccountID(ctx)
	if err != nil {
		return nil, fmt.Errorf("system account: %w", err)
	}
	c := &mgmtCaller{id: id, roles: map[string]Role{}, sys: sys}
	for _, m := range ms {
		c.roles[m.AccountID] = m.Role
	}
	c.operator = isOperator(kind, sys, c.roles[sys])
	return c, nil
}

// isOperator reports whether a principal of kind, whose role in the system
// account sys is sysRole (empty: none), is an operator: an admin of the
// system account that is not a DSM app, or the operator acting outside
// the API (the CLI on the database it opened with the master key). The
// admin API decides with it, and whoami reports it.
func isOperator(kind PrincipalKind, sys string, sysRole Role) bool {
	if kind == PrincipalOperator {
		return true
	}
	return kind != PrincipalApp && sys != "" && sysRole == RoleAdmin
}

func (c *mgmtCaller) admins(accountID string) bool {
	return c.operator || c.roles[accountID] == RoleAdmin
}

var errNotAdmin = Errorf(KindPermissionDenied, "only an admin of this account (or an operator) may do this")

// requireAdmin allows admins of accountID and operators; members with
// another role are refused, and to anybody else the account does not exist.
func (c *mgmtCaller) requireAdmin(accountID string) error {
	if c.admins(accountID) {
		return nil
	}
	if _, member := c.roles[accountID]; member {
		return errNotAdmin
	}
	return Errorf(KindNotFound, "no such account")
}

func (c *mgmtCaller) requireOperator() error {
	if !c.operator {
		return Errorf(KindPermissionDenied, "only an operator (an admin of the system account) may do this")
	}
	return nil
}

// actorIn is the caller recorded in the audit trail of accountID.
func (c *mgmtCaller) actorIn(accountID string) *Identity {
	cp := *c.id
	cp.AccountID = accountID
	return &cp
}

// Whoami describes the caller.
type Whoami struct {
	Principal   PrincipalDetail
	Operator    bool
	AuthMethod  string // "api_key" or "session"
	AccountID   string // the account the request acts in
	AccountName map[string]string
}

// Whoami returns the calling principal, its accounts and roles.
func (s *Service) Whoami(ctx context.Context, id *Identity) (*Whoami, error) {
	if id == nil {
		return nil, errBadKey
	}
	p, err := s.store.GetPrincipalDetail(ctx, id.Principal.ID)
	if err != nil {
		return nil, fmt.Errorf("whoami: %w", err)
	}
	c, err := s.callerWith(ctx, id, p.Kind, p.Memberships)
	if err != nil {
		return nil, fmt.Errorf("whoami: %w", err)
	}
	w := &Whoami{Principal: *p, Operator: c.operator, AuthMethod: "api_key", AccountID: id.AccountID, AccountName: map[string]string{}}
	if id.KeyID == "" && id.SessionID != "" {
		w.AuthMethod = "session"
	}
	for _, m := range p.Memberships {
		if a, err := s.store.GetAccount(ctx, m.AccountID); err == nil {
			w.AccountName[m.AccountID] = a.Name
		}
	}
	return w, nil
}

// checkMgmtName checks an account or principal name.
func checkMgmtName(field, name string) error {
	if strings.TrimSpace(name) == "" {
		return FieldError(field, "%s must not be empty", field)
	}
	if len(name) > 255 {
		return FieldError(field, "%s must be at most 255 bytes", field)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return FieldError(field, "%s must not contain control characters", field)
		}
	}
	return nil
}

func nameTaken(err error, what string) error {
	if KindOf(err) == KindConflict {
		return Errorf(KindConflict, "%s", what)
	}
	return err
}

// AdminCreateAccount creates an account (operators only).
func (s *Service) AdminCreateAccount(ctx context.Context, id *Identity, name string) (*Account, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := c.requireOperator(); err != nil {
		return nil, err
	}
	if err := checkMgmtName("name", name); err != nil {
		return nil, err
	}
	a, err := s.CreateAccount(WithActor(ctx, id), name, "")
	return a, nameTaken(err, "an account with this name already exists")
}

// AdminListAccounts lists every account to an operator, and the accounts
// it is a member of to anybody else.
func (s *Service) AdminListAccounts(ctx context.Context, id *Identity) ([]Account, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	all, err := s.store.ListAccounts(ctx)
	if err != nil {
		return nil, fmt.Errorf("list accounts: %w", err)
	}
	out := []Account{}
	for _, a := range all {
		if _, member := c.roles[a.ID]; c.operator || member {
			out = append(out, a)
		}
	}
	return out, nil
}

// AdminGetAccount returns an account to its members and operators.
func (s *Service) AdminGetAccount(ctx context.Context, id *Identity, accountID string) (*Account, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, member := c.roles[accountID]; !member && !c.operator {
		return nil, Errorf(KindNotFound, "no such account")
	}
	a, err := s.store.GetAccount(ctx, accountID)
	if err != nil {
		return nil, fmt.Errorf("get account: %w", err)
	}
	return a, nil
}

// AdminRenameAccount renames an account (its admins and operators).
func (s *Service) AdminRenameAccount(ctx context.Context, id *Identity, accountID, name string) (a *Account, err error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := c.requireAdmin(accountID); err != nil {
		return nil, err
	}
	actor := c.actorIn(accountID)
	ctx = s.auditing(ctx, actor, "account.rename", "account", func() string { return accountID })
	defer func() { err = s.auditOutcome(ctx, actor, "account.rename", "account", accountID, err) }()
	if err := checkMgmtName("name", name); err != nil {
		return nil, err
	}
	if err := s.store.RenameAccount(ctx, accountID, name); err != nil {
		return nil, nameTaken(fmt.Errorf("rename account: %w", err), "an account with this name already exists")
	}
	return s.store.GetAccount(ctx, accountID)
}

// AdminDeleteAccount deletes an account (operators only; never the system
// account). Unless force, it is refused while the account holds anything.
func (s *Service) AdminDeleteAccount(ctx context.Context, id *Identity, accountID string, force bool) (err error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return err
	}
	if err := c.requireOperator(); err != nil {
		return err
	}
	action := "account.delete"
	if force {
		action = "account.force_delete"
	}
	actor := c.actorIn(accountID)
	ctx = s.auditing(ctx, actor, action, "account", func() string { return accountID })
	defer func() { err = s.auditOutcome(ctx, actor, action, "account", accountID, err) }()
	if accountID == c.sys {
		return Errorf(KindConflict, "the system account cannot be deleted")
	}
	if err := s.store.DeleteAccount(ctx, accountID, force); err != nil {
		return fmt.Errorf("delete account: %w", err)
	}
	return nil
}

// NewPrincipal is what AdminCreatePrincipal needs.
type NewPrincipal struct {
	Kind      PrincipalKind
	Name      string
	AccountID string
	Role      Role
	Email     string
	Password  string // users only; hashed with argon2id, never stored or logged
}

// AdminCreatePrincipal creates a user or service account with a role in an
// account (admins of that account and operators).
func (s *Service) AdminCreatePrincipal(ctx context.Context, id *Identity, np NewPrincipal) (p *PrincipalDetail, err error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := c.requireAdmin(np.AccountID); err != nil {
		return nil, err
	}
	pr := PrincipalDetail{Principal: Principal{ID: NewID(), Kind: np.Kind, Name: np.Name, DefaultAccountID: np.AccountID, CreatedAt: s.Now()}, Email: np.Email}
	actor := c.actorIn(np.AccountID)
	ctx = s.auditing(ctx, actor, "principal.create", "principal", func() string { return pr.ID })
	defer func() { err = s.auditOutcome(ctx, actor, "principal.create", "principal", pr.ID, err) }()
	if np.Kind != PrincipalUser && np.Kind != PrincipalServiceAccount {
		return nil, FieldError("kind", "principal kind must be user or service_account")
	}
	if err := checkMgmtName("name", np.Name); err != nil {
		return nil, err
	}
	if _, ok := ParseRole(string(np.Role)); !ok {
		return nil, FieldError("role", "unknown role %q (admin, writer, secret_reader, reader)", np.Role)
	}
	if np.Kind != PrincipalUser && (np.Email != "" || np.Password != "") {
		return nil, FieldError("email", "only users have an email and a password")
	}
	if err := checkEmail(np.Email); err != nil {
		return nil, err
	}
	var hash string
	if np.Password != "" {
		if hash, err = HashPassword(np.Password); err != nil {
			return nil, err
		}
		pr.HasPassword = true
	}
	pr.Memberships = []Membership{{PrincipalID: pr.ID, AccountID: np.AccountID, Role: np.Role}}
	if err := s.store.CreatePrincipalDetail(ctx, &pr, hash); err != nil {
		return nil, nameTaken(fmt.Errorf("create principal: %w", err), "a principal with this name already exists in the account, or a user with this email exists")
	}
	return &pr, nil
}

// administeredPrincipal is principalFor for a change to the principal:
// the caller must administer its home account.
func (s *Service) administeredPrincipal(ctx context.Context, id *Identity, principalID string) (*mgmtCaller, *PrincipalDetail, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	p, admin, err := s.principalFor(ctx, c, principalID)
	if err != nil {
		return nil, nil, err
	}
	if !admin {
		return nil, nil, errNotAdmin
	}
	return c, p, nil
}

// principalFor loads a user or service account the caller may see: one
// that is a member of an account the caller administers, or the caller.
// Admin reports whether the caller administers its home account.
func (s *Service) principalFor(ctx context.Context, c *mgmtCaller, principalID string) (p *PrincipalDetail, admin bool, err error) {
	p, err = s.store.GetPrincipalDetail(ctx, principalID)
	if err != nil {
		return nil, false, fmt.Errorf("principal %s: %w", principalID, err)
	}
	if p.Kind == PrincipalApp {
		return nil, false, Errorf(KindNotFound, "no such principal (DSM apps are managed through the DSM API)")
	}
	admin = c.admins(p.DefaultAccountID)
	if admin || p.ID == c.id.Principal.ID {
		return p, admin, nil
	}
	shared := false
	for _, m := range p.Memberships {
		if c.admins(m.AccountID) {
			return p, false, nil
		}
		if _, ok := c.roles[m.AccountID]; ok {
			shared = true
		}
	}
	if shared {
		return nil, false, errNotAdmin
	}
	return nil, false, Errorf(KindNotFound, "no such principal")
}

// AdminGetPrincipal returns a principal.
func (s *Service) AdminGetPrincipal(ctx context.Context, id *Identity, principalID string) (*PrincipalDetail, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	p, _, err := s.principalFor(ctx, c, principalID)
	return p, err
}

// AdminListPrincipals lists the users and service accounts of the
// accounts the caller administers (every account for operators).
func (s *Service) AdminListPrincipals(ctx context.Context, id *Identity, q PrincipalQuery) ([]PrincipalDetail, bool, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if q.Kind != "" && q.Kind != PrincipalUser && q.Kind != PrincipalServiceAccount {
		return nil, false, FieldError("kind", "kind must be user or service_account")
	}
	if q.AccountID != "" {
		if err := c.requireAdmin(q.AccountID); err != nil {
			return nil, false, err
		}
	} else if !c.operator {
		q.Within = []string{}
		for a, r := range c.roles {
			if r == RoleAdmin {
				q.Within = append(q.Within, a)
			}
		}
		if len(q.Within) == 0 {
			return nil, false, errNotAdmin
		}
	}
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 100
	}
	return s.store.ListPrincipalDetails(ctx, q)
}

// AdminUpdatePrincipal renames a principal, sets its email, or disables or
// enables it (admins of its home account and operators). Disabling ends
// every session at once; its keys stop working at once.
func (s *Service) AdminUpdatePrincipal(ctx context.Context, id *Identity, principalID string, u PrincipalUpdate) (p *PrincipalDetail, err error) {
	c, p, err := s.administeredPrincipal(ctx, id, principalID)
	if err != nil {
		return nil, err
	}
	action := "principal.update"
	if u.Disabled != nil {
		action = map[bool]string{true: "principal.disable", false: "principal.enable"}[*u.Disabled]
	}
	actor := c.actorIn(p.DefaultAccountID)
	ctx = s.auditing(ctx, actor, action, "principal", func() string { return principalID })
	defer func() { err = s.auditOutcome(ctx, actor, action, "principal", principalID, err) }()
	if u.Name != nil {
		if err := checkMgmtName("name", *u.Name); err != nil {
			return nil, err
		}
	}
	if u.Email != nil {
		if p.Kind != PrincipalUser && *u.Email != "" {
			return nil, FieldError("email", "only users have an email")
		}
		if err := checkEmail(*u.Email); err != nil {
			return nil, err
		}
	}
	if u.Disabled != nil && *u.Disabled && principalID == id.Principal.ID {
		return nil, Errorf(KindConflict, "a principal cannot disable itself")
	}
	u.At = s.Now()
	if err := s.store.UpdatePrincipal(ctx, principalID, u); err != nil {
		return nil, nameTaken(fmt.Errorf("update principal: %w", err), "a principal with this name already exists in the account, or a user with this email exists")
	}
	return s.store.GetPrincipalDetail(ctx, principalID)
}

// AdminDeletePrincipal deletes a principal with its keys, memberships and
// sessions (admins of its home account and operators; not oneself).
func (s *Service) AdminDeletePrincipal(ctx context.Context, id *Identity, principalID string) (err error) {
	c, p, err := s.administeredPrincipal(ctx, id, principalID)
	if err != nil {
		return err
	}
	actor := c.actorIn(p.DefaultAccountID)
	ctx = s.auditing(ctx, actor, "principal.delete", "principal", func() string { return principalID })
	defer func() { err = s.auditOutcome(ctx, actor, "principal.delete", "principal", principalID, err) }()
	if principalID == id.Principal.ID {
		return Errorf(KindConflict, "a principal cannot delete itself")
	}
	if err := s.store.DeletePrincipal(ctx, principalID); err != nil {
		return fmt.Errorf("delete principal: %w", err)
	}
	return nil
}

// AdminPutMembership grants a principal a role in an account, or changes
// it (admins of that account and operators).
func (s *Service) AdminPutMembership(ctx context.Context, id *Identity, principalID, accountID string, role Role) error {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return err
	}
	if err := c.requireAdmin(accountID); err != nil {
		return err
	}
	p, err := s.store.GetPrincipal(ctx, principalID)
	if err != nil || p.Kind == PrincipalApp {
		return Errorf(KindNotFound, "no such principal")
	}
	return s.AddMembership(WithActor(ctx, id), principalID, accountID, role)
}

// AdminRevokeMembership removes a principal from an account (admins of
// that account and operators). A principal's home account membership
// cannot be revoked: delete the principal instead.
func (s *Service) AdminRevokeMembership(ctx context.Context, id *Identity, principalID, accountID string) (err error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return err
	}
	if err := c.requireAdmin(accountID); err != nil {
		return err
	}
	actor := c.actorIn(accountID)
	ctx = s.auditing(ctx, actor, "membership.revoke", "principal", func() string { return principalID })
	defer func() { err = s.auditOutcome(ctx, actor, "membership.revoke", "principal", principalID, err) }()
	p, err := s.store.GetPrincipal(ctx, principalID)
	if err != nil || p.Kind == PrincipalApp {
		return Errorf(KindNotFound, "no such principal")
	}
	if p.DefaultAccountID == accountID {
		return Errorf(KindConflict, "this is the principal's home account; delete the principal instead")
	}
	if err := s.store.DeleteMembership(ctx, principalID, accountID); err != nil {
		return fmt.Errorf("revoke membership: %w", err)
	}
	return nil
}

// AdminCreateAPIKey creates an API key for a principal (admins of its home
// account, operators, and the principal itself). ttl 0: no expiry.
func (s *Service) AdminCreateAPIKey(ctx context.Context, id *Identity, principalID, name string, ttl time.Duration) (*APIKey, string, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, "", err
	}
	if _, _, err := s.principalFor(ctx, c, principalID); err != nil {
		return nil, "", err
	}
	if ok, _ := s.mayManageKeys(ctx, c, principalID); !ok {
		return nil, "", errNotAdmin
	}
	if ttl < 0 {
		return nil, "", FieldError("ttl", "ttl must not be negative")
	}
	return s.CreateAPIKey(WithActor(ctx, id), principalID, name, ttl)
}

func (s *Service) mayManageKeys(ctx context.Context, c *mgmtCaller, principalID string) (bool, error) {
	if principalID == c.id.Principal.ID {
		return true, nil
	}
	p, err := s.store.GetPrincipal(ctx, principalID)
	if err != nil {
		return false, err
	}
	return c.admins(p.DefaultAccountID), nil
}

// AdminListAPIKeys lists a principal's keys (never the keys themselves).
func (s *Service) AdminListAPIKeys(ctx context.Context, id *Identity, principalID string) ([]APIKey, error) {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.principalFor(ctx, c, principalID); err != nil {
		return nil, err
	}
	if ok, _ := s.mayManageKeys(ctx, c, principalID); !ok {
		return nil, errNotAdmin
	}
	ks, err := s.store.ListAPIKeys(ctx, principalID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	return ks, nil
}

// AdminRevokeAPIKey revokes a key; it stops working at once.
func (s *Service) AdminRevokeAPIKey(ctx context.Context, id *Identity, keyID string) error {
	c, err := s.mgmtCaller(ctx, id)
	if err != nil {
		return err
	}
	k, err := s.store.GetAPIKey(ctx, keyID)
	if err != nil {
		return fmt.Errorf("revoke api key: %w", err)
	}
	if _, _, err := s.principalFor(ctx, c, k.PrincipalID); err != nil {
		if KindOf(err) == KindNotFound {
			return Errorf(KindNotFound, "no such API key")
		}
		return err
	}
	if ok, _ := s.mayManageKeys(ctx, c, k.PrincipalID); !ok {
		return errNotAdmin
	}
	if k.RevokedAt != nil {
		return nil
	}
	return s.RevokeAPIKey(WithActor(ctx, id), keyID)
}
