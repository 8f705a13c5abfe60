package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"
)

// Passwords are hashed with argon2id at OWASP's recommended minimum
// (Password Storage Cheat Sheet): 19 MiB of memory, 2 iterations, 1 lane,
// a 16-byte random salt and a 32-byte hash, stored as a PHC string.
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32

	// MinPasswordLength and MaxPasswordLength bound a password, in bytes.
	MinPasswordLength = 12
	MaxPasswordLength = 1024
)

// Session lifetimes of users' logins.
const (
	SessionIdleTimeout = 30 * time.Minute
	SessionMaxLifetime = 12 * time.Hour
)

var errBadLogin = Errorf(KindUnauthenticated, "wrong email or password")

func checkPassword(field, pw string) error {
	if len(pw) < MinPasswordLength {
		return FieldError(field, "a password must have at least %d characters", MinPasswordLength)
	}
	if len(pw) > MaxPasswordLength {
		return FieldError(field, "a password must have at most %d bytes", MaxPasswordLength)
	}
	return nil
}

func checkEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return FieldError("email", "email must be a plain address such as jane@example.com")
	}
	return nil
}

// HashPassword checks pw and returns its argon2id PHC string.
func HashPassword(pw string) (string, error) {
	if err := checkPassword("password", pw); err != nil {
		return "", err
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	h := argon2.IDKey([]byte(pw), salt, argonTime, argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(h)), nil
}

// dummyHash is verified against when no user has the email, so that a
// wrong email costs as much time as a wrong password.
var dummyHash = func() string { h, _ := HashPassword("not a password, only a timing equaliser"); return h }()

// VerifyPassword reports whether pw matches the PHC string phc (with the
// parameters stored in it).
func VerifyPassword(phc, pw string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || m > 1<<22 || t > 64 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func hashSessionToken(token string) []byte { return HashAPIKey("user-session\x00" + token) }

// Login checks a user's email and password and opens a session. The
// password is verified before anything else: the failed-authentication
// throttle counts only wrong passwords (per address and per email), so a
// flood of wrong ones never locks out the right one.
func (s *Service) Login(ctx context.Context, email, password string) (token string, sess *UserSession, p *PrincipalDetail, err error) {
	id, err := s.AuthenticatePassword(ctx, email, password)
	if err != nil {
		return "", nil, nil, err
	}
	return s.openUserSession(ctx, id)
}

// AuthenticatePassword checks a user's email and password and returns the
// user's identity in its home account. The password is verified before
// anything else: the failed-authentication throttle counts only wrong
// passwords (per address and per email), so a flood of wrong ones never
// locks out the right one. A disabled user is refused.
func (s *Service) AuthenticatePassword(ctx context.Context, email, password string) (*Identity, error) {
	p, hash, err := s.store.PrincipalByEmail(ctx, email)
	if err != nil && KindOf(err) != KindNotFound {
		return nil, fmt.Errorf("login: %w", err)
	}
	if err != nil || hash == "" {
		VerifyPassword(dummyHash, password)
		return nil, s.authFailedUser(ctx, email, nil, errBadLogin)
	}
	id := &Identity{Principal: p.Principal, AccountID: p.DefaultAccountID}
	if !VerifyPassword(hash, password) || p.DisabledAt != nil {
		return nil, s.authFailedUser(ctx, email, id, errBadLogin)
	}
	for _, m := range p.Memberships {
		if m.AccountID == id.AccountID {
			id.Role = m.Role
		}
	}
	if err := s.store.RecordLogin(ctx, p.ID, s.Now()); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	return id, nil
}

// authFailedUser is authFailed for a password login: the throttle counts
// the email, and the audit record names the user (when one has the email).
func (s *Service) authFailedUser(ctx context.Context, email string, id *Identity, err error) error {
	if s.onAuthFailure != nil {
		s.onAuthFailure()
	}
	if rl := s.throttleFailure(ctx, "email:"+strings.ToLower(email)); rl != nil {
		return rl
	}
	objID := ""
	if id != nil {
		objID = id.Principal.ID
	}
	_ = s.Audit(ctx, id, "auth.failure", "user", objID, err)
	return err
}

func (s *Service) openUserSession(ctx context.Context, id *Identity) (token string, sess *UserSession, p *PrincipalDetail, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, nil, fmt.Errorf("login: %w", err)
	}
	token = "cvs_" + base64.RawURLEncoding.EncodeToString(b[:])
	now := s.Now()
	sess = &UserSession{ID: NewID(), TokenHash: hashSessionToken(token), PrincipalID: id.Principal.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(SessionMaxLifetime)}
	id = &Identity{Principal: id.Principal, AccountID: id.AccountID, SessionID: sess.ID}
	ctx = s.auditing(ctx, id, "session.login", "session", func() string { return sess.ID })
	defer func() {
		if err = s.auditOutcome(ctx, id, "session.login", "session", sess.ID, err); err != nil {
			token, sess, p = "", nil, nil
		}
	}()
	if err := s.store.CreateUserSession(ctx, sess); err != nil {
		return "", nil, nil, fmt.Errorf("login: %w", err)
	}
	p, err = s.store.GetPrincipalDetail(ctx, id.Principal.ID)
	if err != nil {
		return "", nil, nil, fmt.Errorf("login: %w", err)
	}
	return token, sess, p, nil
}

var errBadUserSession = Errorf(KindUnauthenticated, "invalid, expired or ended session; log in again")

// AuthenticateUserSession resolves a login session token to an identity in
// accountID ("" = the user's home account). A session ends after
// SessionIdleTimeout without use, after SessionMaxLifetime, at logout, and
// when the user's password changes or the user is disabled.
func (s *Service) AuthenticateUserSession(ctx context.Context, token, accountID string) (*Identity, error) {
	h := hashSessionToken(token)
	sess, p, err := s.store.LookupUserSession(ctx, h)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, s.authFailed(ctx, "", nil, errBadUserSession)
		}
		return nil, fmt.Errorf("authenticate session: %w", err)
	}
	now := s.Now()
	if subtle.ConstantTimeCompare(sess.TokenHash, h) != 1 || !now.Before(sess.ExpiresAt) || now.Sub(sess.LastUsedAt) >= SessionIdleTimeout {
		return nil, s.authFailed(ctx, "", &Identity{Principal: *p, AccountID: p.DefaultAccountID}, errBadUserSession)
	}
	if accountID == "" {
		accountID = p.DefaultAccountID
	}
	ms, err := s.store.ListMemberships(ctx, p.ID)
	if err != nil {
		return nil, fmt.Errorf("authenticate session: %w", err)
	}
	id := &Identity{Principal: *p, AccountID: accountID, SessionID: sess.ID}
	for _, m := range ms {
		if m.AccountID == accountID {
			id.Role = m.Role
		}
	}
	if id.Role == "" {
		return nil, s.authFailed(ctx, "", id, Errorf(KindPermissionDenied, "this user may not use the selected account"))
	}
	if now.Sub(sess.LastUsedAt) > time.Minute {
		if err := s.store.TouchUserSession(ctx, sess.ID, now); err != nil {
			return nil, fmt.Errorf("authenticate session: %w", err)
		}
	}
	if err := s.Throttle(id); err != nil {
		return nil, err
	}
	return id, nil
}

// Logout ends the caller's login session.
func (s *Service) Logout(ctx context.Context, id *Identity) (err error) {
	if id == nil || id.SessionID == "" || id.KeyID != "" {
		return Errorf(KindInvalid, "logout needs a login session (Authorization: Bearer <session token>)")
	}
	ctx = s.auditing(ctx, id, "session.logout", "session", func() string { return id.SessionID })
	defer func() { err = s.auditOutcome(ctx, id, "session.logout", "session", id.SessionID, err) }()
	if err := s.store.DeleteUserSession(ctx, id.SessionID); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

// AdminSetPassword sets a user's password (admins of its home account and
// operators). Every session of the user ends.
func (s *Service) AdminSetPassword(ctx context.Context, id *Identity, principalID, password string) (err error) {
	c, p, err := s.administeredPrincipal(ctx, id, principalID)
	if err != nil {
		return err
	}
	return s.setPassword(ctx, c.actorIn(p.DefaultAccountID), p, password)
}

// ChangePassword changes the caller's own password; it needs the old one.
// Every session of the user ends (the caller logs in again).
func (s *Service) ChangePassword(ctx context.Context, id *Identity, oldPassword, newPassword string) error {
	if id == nil {
		return errBadKey
	}
	p, err := s.store.GetPrincipalDetail(ctx, id.Principal.ID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if p.Kind != PrincipalUser {
		return Errorf(KindInvalid, "only users have a password")
	}
	hash, err := s.store.PasswordHash(ctx, p.ID)
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	if hash == "" || !VerifyPassword(hash, oldPassword) {
		return s.authFailedUser(ctx, p.Email, id, Errorf(KindPermissionDenied, "the old password is wrong"))
	}
	return s.setPassword(ctx, id, p, newPassword)
}

func (s *Service) setPassword(ctx context.Context, actor *Identity, p *PrincipalDetail, password string) (err error) {
	ctx = s.auditing(ctx, actor, "principal.set_password", "principal", func() string { return p.ID })
	defer func() { err = s.auditOutcome(ctx, actor, "principal.set_password", "principal", p.ID, err) }()
	if p.Kind != PrincipalUser {
		return Errorf(KindInvalid, "only users have a password")
	}
	hash, err := HashPassword(password)
	if err != nil {
		return err
	}
	if err := s.store.SetPassword(ctx, p.ID, hash); err != nil {
		return fmt.Errorf("set password: %w", err)
	}
	return nil
}
