package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DSM authentication, sessions and group scope.

// DefaultSessionTTL is how long a DSM session lives without a refresh.
const DefaultSessionTTL = 10 * time.Minute

var errBadSession = Errorf(KindUnauthenticated, "invalid, expired or terminated session; authenticate again")

// ErrNoCredential is the failure of a request that carries neither an
// API key nor a session token; a dialect may say how its requests carry them.
var ErrNoCredential = Errorf(KindUnauthenticated, "no API key or session token")

// AuthenticateKeyOrSession resolves an API key (base64 of id:secret for an app) or,
// if apiKey is empty, a session token. Apps must be enabled. Failed
// attempts are audited.
func (s *Service) AuthenticateKeyOrSession(ctx context.Context, apiKey, sessionToken string) (*Identity, error) {
	var (
		id  *Identity
		err error
	)
	switch {
	case apiKey != "":
		id, err = s.Authenticate(ctx, apiKey, "") // audits and throttles failures itself
	case sessionToken != "":
		id, err = s.authenticateSession(ctx, sessionToken)
	default:
		return nil, s.authFailed(ctx, "", nil, ErrNoCredential)
	}
	if err != nil {
		return nil, err
	}
	if id.Principal.Kind == PrincipalApp {
		app, enabled, err := s.appEnabled(ctx, id.AccountID, id.Principal.ID)
		if err != nil {
			if KindOf(err) == KindNotFound {
				return nil, s.authFailed(ctx, id.KeyID, id, errBadKey)
			}
			return nil, fmt.Errorf("authenticate: %w", err)
		}
		if !enabled {
			return nil, s.authFailed(ctx, id.KeyID, id, Errorf(KindUnauthenticated, "this app is disabled"))
		}
		id.App = app // nil when the cache answered: scope reads the app
	}
	return id, nil
}

func hashToken(token string) []byte { return HashAPIKey("dsm-session\x00" + token) }

func (s *Service) authenticateSession(ctx context.Context, token string) (*Identity, error) {
	h := hashToken(token)
	rec, err := s.lookupSession(ctx, h)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, s.authFailed(ctx, "", nil, errBadSession)
		}
		return nil, fmt.Errorf("authenticate session: %w", err)
	}
	id := &Identity{Principal: rec.Principal, AccountID: rec.Session.AccountID, Role: rec.Role, KeyID: rec.Session.KeyID, SessionID: rec.Session.ID,
		KeyExpiresAt: rec.KeyExpiresAt}
	now := s.now()
	keyDead := !rec.KeyFound || rec.KeyRevokedAt != nil || (rec.KeyExpiresAt != nil && !now.Before(*rec.KeyExpiresAt))
	if rec.Session.KeyID == "" { // a user's password session (dsm_users.go)
		id.KeyExpiresAt, keyDead = sessionCap(rec.Session.CreatedAt), !now.Before(*sessionCap(rec.Session.CreatedAt))
	}
	if subtle.ConstantTimeCompare(rec.Session.TokenHash, h) != 1 || !now.Before(rec.Session.ExpiresAt) || rec.Role == "" || keyDead {
		return nil, s.authFailed(ctx, "", id, errBadSession)
	}
	if err := s.Throttle(id); err != nil {
		return nil, err
	}
	return id, nil
}

// CreateSession opens a session for an authenticated identity and returns
// its bearer token, which exists only in this return value.
func (s *Service) CreateSession(ctx context.Context, id *Identity) (token string, sess *Session, err error) {
	ctx = s.auditing(ctx, id, "session.create", "session", func() string { return sess.ID })
	defer func() {
		if aerr := s.Audit(ctx, id, "session.create", "session", resultID(sess, ""), err); aerr != nil && err == nil {
			token, sess, err = "", nil, aerr
		}
	}()
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("session token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	now := s.Now()
	sess = &Session{ID: NewID(), TokenHash: hashToken(token), PrincipalID: id.Principal.ID, AccountID: id.AccountID, KeyID: id.KeyID,
		CreatedAt: now, ExpiresAt: sessionEnd(id, now)}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return "", nil, fmt.Errorf("create session: %w", err)
	}
	return token, sess, nil
}

// sessionEnd is when a session opened or refreshed at now ends:
// DefaultSessionTTL later, but never after the API key behind it expires.
func sessionEnd(id *Identity, now time.Time) time.Time {
	end := now.Add(DefaultSessionTTL)
	if id.KeyExpiresAt != nil && id.KeyExpiresAt.Before(end) {
		end = id.KeyExpiresAt.UTC().Truncate(time.Microsecond)
	}
	return end
}

// RefreshSession extends the caller's session by DefaultSessionTTL.
func (s *Service) RefreshSession(ctx context.Context, id *Identity) error {
	if id.SessionID == "" {
		return Errorf(KindInvalid, "this request did not use a session (Authorization: Bearer); there is nothing to refresh")
	}
	if err := s.store.ExtendSession(ctx, id.SessionID, sessionEnd(id, s.Now())); err != nil {
		if KindOf(err) == KindNotFound {
			return errBadSession
		}
		return fmt.Errorf("refresh session: %w", err)
	}
	return nil
}

// TerminateSession ends the caller's session.
func (s *Service) TerminateSession(ctx context.Context, id *Identity) (err error) {
	ctx = s.auditing(ctx, id, "session.terminate", "session", func() string { return id.SessionID })
	defer func() { err = s.auditOutcome(ctx, id, "session.terminate", "session", id.SessionID, err) }()
	if id.SessionID == "" {
		return Errorf(KindInvalid, "this request did not use a session (Authorization: Bearer); there is nothing to terminate")
	}
	if err := s.store.DeleteSession(ctx, id.SessionID); err != nil {
		return fmt.Errorf("terminate session: %w", err)
	}
	return nil
}

// SelectAccount is DSM's select_account: the caller's account is accepted
// as is; a session may move to another account its principal is a member
// of; any other account is refused, with the same answer whether it
// exists or not.
func (s *Service) SelectAccount(ctx context.Context, id *Identity, accountID string) (err error) {
	ctx = s.auditing(ctx, id, "session.select_account", "account", func() string { return accountID })
	defer func() { err = s.auditOutcome(ctx, id, "session.select_account", "account", accountID, err) }()
	if accountID == id.AccountID {
		return nil
	}
	ms, err := s.store.ListMemberships(ctx, id.Principal.ID)
	if err != nil {
		return fmt.Errorf("select account: %w", err)
	}
	member := false
	for _, m := range ms {
		member = member || m.AccountID == accountID
	}
	if !member {
		return Errorf(KindPermissionDenied, "the caller is not a member of that account")
	}
	if id.SessionID == "" {
		return Errorf(KindInvalid, "switching accounts needs a session (Authorization: Bearer); an API key acts in its own account")
	}
	if err := s.store.SetSessionAccount(ctx, id.SessionID, accountID); err != nil {
		if KindOf(err) == KindNotFound {
			return errBadSession
		}
		return fmt.Errorf("select account: %w", err)
	}
	return nil
}

// auditOutcome records the outcome of a change (administrative or DSM)
// and returns the operation's error, or the audit error if the record could
// not be written: it fails closed. A change's own record is written with it
// (auditing); this records failures.
func (s *Service) auditOutcome(ctx context.Context, id *Identity, action, objectType, objectID string, opErr error) error {
	if aerr := s.Audit(ctx, id, action, objectType, objectID, opErr); aerr != nil && opErr == nil {
		return aerr
	}
	return opErr
}

// dsmScope is the set of groups a caller reaches: all groups of the
// account for users and service accounts, the member groups for apps.
type dsmScope struct {
	all    bool
	groups map[string]bool
	app    *App
}

func (sc *dsmScope) has(groupID string) bool { return sc.all || sc.groups[groupID] }

// list returns the groups of a limited scope, nil for all.
func (sc *dsmScope) list() []string {
	if sc.all {
		return nil
	}
	out := make([]string, 0, len(sc.groups))
	for g := range sc.groups {
		out = append(out, g)
	}
	return out
}

func (s *Service) scope(ctx context.Context, id *Identity) (*dsmScope, error) {
	if id.Principal.Kind != PrincipalApp {
		return &dsmScope{all: true}, nil
	}
	app := id.App
	if app == nil || app.ID != id.Principal.ID || app.AccountID != id.AccountID {
		var err error
		if app, err = s.store.GetApp(ctx, id.AccountID, id.Principal.ID); err != nil {
			if KindOf(err) == KindNotFound {
				return nil, errBadKey
			}
			return nil, fmt.Errorf("app scope: %w", err)
		}
	}
	sc := &dsmScope{groups: map[string]bool{}, app: app}
	for _, g := range app.Groups {
		sc.groups[g.GroupID] = true
	}
	return sc, nil
}

// scopeFor is the start of most DSM operations: it checks that the
// caller's role allows act and returns the DSM scope the caller reaches.
func (s *Service) scopeFor(ctx context.Context, id *Identity, act Action) (*dsmScope, error) {
	if err := id.Require(act); err != nil {
		return nil, err
	}
	return s.scope(ctx, id)
}

// scoped runs fn with the scope of scopeFor.
func scoped[T any](ctx context.Context, s *Service, id *Identity, act Action, fn func(*dsmScope) (T, error)) (T, error) {
	sc, err := s.scopeFor(ctx, id, act)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(sc)
}

func creatorOf(id *Identity) Creator { return Creator{Kind: id.Principal.Kind, ID: id.Principal.ID} }

// MaxDSMNameLength bounds DSM names (groups, apps, objects, credentials).
const MaxDSMNameLength = 4096

// checkDSMName enforces the contract's name rule: at most 4096 characters,
// no line breaks or other control characters (CheckNameText), at least one
// non-space character.
func checkDSMName(field, name string) error {
	switch {
	case !utf8.ValidString(name):
		return FieldError(field, "%s must be valid UTF-8", field)
	case utf8.RuneCountInString(name) > MaxDSMNameLength:
		return FieldError(field, "%s must be at most %d characters", field, MaxDSMNameLength)
	case CheckNameText(field, name) != nil:
		return CheckNameText(field, name)
	case strings.IndexFunc(name, func(r rune) bool { return !unicode.IsSpace(r) }) < 0:
		return FieldError(field, "%s must contain a non-space character", field)
	}
	return nil
}

// ValidUUID reports whether s is a UUID in the 8-4-4-4-12 form.
func ValidUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// notFound returns a NotFound error naming what was not found.
func notFound(what string) error {
	return &Error{Kind: KindNotFound, Subject: what, Msg: what + " not found"}
}

// mapStoreErr turns store NotFound into a message naming the object and
// wraps other errors with op.
func mapStoreErr(err error, what, op string) error {
	switch KindOf(err) {
	case KindNotFound:
		return notFound(what)
	case KindInvalid, KindConflict, KindTooLarge, KindPermissionDenied:
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}
