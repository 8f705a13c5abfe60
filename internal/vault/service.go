package vault

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/credvault/credvault/internal/ratelimit"
)

// Sealer encrypts and decrypts payloads. associatedData is authenticated but
// not encrypted; a ciphertext only opens with the same associated data.
// Implemented by internal/crypto.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(ciphertext, associatedData []byte) ([]byte, error)
}

// DefaultMaxPayload is the default limit on a credential payload.
const DefaultMaxPayload = 64 << 10

// Service is the core of credvault. Both API dialects call it with an
// Identity produced by Authenticate.
type Service struct {
	store      Store
	sealer     Sealer
	now        func() time.Time
	maxPayload int
	auditor    Auditor
	chain      AuditChain // the auditor, when it can chain records into a store transaction

	failedByAddr *ratelimit.Keyed // failed authentications per client address
	failedByKey  *ratelimit.Keyed // failed authentications per API key id
	perPrincipal *ratelimit.Keyed // requests per principal (nil: unlimited)

	onAuthFailure  func()
	onSecretAccess func(op string)
	rekeyHook      func(step int) error

	auth *authCache // authcache.go

	signers signers // parsed private keys of security objects (signers.go)

	lifecycle LifecycleOptions // lifecycle.go
	onEvents  func()           // events.go
}

// Options configures a Service. Everything a Service depends on is given
// here, at construction: there are no setters.
type Options struct {
	MaxPayload int // bytes; DefaultMaxPayload if zero
	// Now is the service's clock (key and session expiry, audit and object
	// times); time.Now if nil. Tests pass a clock they can move.
	Now func() time.Time

	// Auditor is the audit trail. Without one, events are dropped. If it is
	// also an AuditChain, the record of every change is written in the same
	// transaction as the change (see TxAudit).
	Auditor Auditor
	// OnAuthFailure, if set, runs on every failed authentication (for
	// metrics).
	OnAuthFailure func()
	// OnSecretAccess, if set, runs whenever plaintext leaves the vault (SGP
	// decrypt, DSM export), with a fixed label naming the operation (for
	// metrics; never a user-supplied value).
	OnSecretAccess func(op string)
	// RekeyHook, if set, runs inside every rekey and credential-rotation
	// transaction after each object is rotated; an error rolls the whole
	// transaction back. Tests use it to inject a failure mid-transaction.
	RekeyHook func(step int) error
	// OnEvents, if set, runs after a transaction that wrote change events
	// commits (it wakes the webhook worker; events.go).
	OnEvents func()

	// FailedAuthPerMinute and FailedAuthBurst bound failed authentications
	// per client address (and, at half the rate, per API key id). Defaults
	// 30 and 30; a negative rate disables the limit.
	FailedAuthPerMinute float64
	FailedAuthBurst     int
	// PrincipalRPS and PrincipalBurst bound requests per principal per
	// second; 0 means unlimited.
	PrincipalRPS   float64
	PrincipalBurst int

	// Lifecycle sets version retention, the delete retention window and
	// the expiry notice lead (lifecycle.go).
	Lifecycle LifecycleOptions
}

// NewService returns a Service over store and sealer.
func NewService(store Store, sealer Sealer, opts Options) *Service {
	s := &Service{store: store, sealer: sealer, now: opts.Now, maxPayload: opts.MaxPayload,
		auditor: opts.Auditor, onAuthFailure: opts.OnAuthFailure, onSecretAccess: opts.OnSecretAccess, rekeyHook: opts.RekeyHook,
		auth: newAuthCache(store), lifecycle: opts.Lifecycle.withDefaults(), onEvents: opts.OnEvents}
	s.chain, _ = opts.Auditor.(AuditChain)
	if s.now == nil {
		s.now = time.Now
	}
	if s.maxPayload <= 0 {
		s.maxPayload = DefaultMaxPayload
	}
	perMin, burst := opts.FailedAuthPerMinute, opts.FailedAuthBurst
	if perMin == 0 {
		perMin = 30
	}
	if burst <= 0 {
		burst = 30
	}
	if perMin > 0 {
		s.failedByAddr = ratelimit.NewKeyed(perMin/60, burst, 100_000)
		s.failedByKey = ratelimit.NewKeyed(perMin/120, max(burst/2, 1), 100_000)
	}
	if opts.PrincipalRPS > 0 {
		s.perPrincipal = ratelimit.NewKeyed(opts.PrincipalRPS, max(opts.PrincipalBurst, int(opts.PrincipalRPS), 1), 100_000)
	}
	return s
}

// RateLimitError is a RateLimited error that says when to retry.
type RateLimitError struct {
	Err   *Error
	After time.Duration
}

func (e *RateLimitError) Error() string { return e.Err.Error() }
func (e *RateLimitError) Unwrap() error { return e.Err }

// RetryAfter is how long the client should wait.
func (e *RateLimitError) RetryAfter() time.Duration { return e.After }

func rateLimited(after time.Duration, msg string) error {
	return &RateLimitError{Err: &Error{Kind: KindRateLimited, Msg: msg}, After: after}
}

// throttleFailure counts one failed authentication against the client
// address and the key id it named, and returns a RateLimited error if either
// has failed too often recently. It is consulted only after a credential
// was verified and found wrong: a correct credential is never refused by
// it, however many wrong ones were sent for the same key id or from the
// same address (key ids are not secret, and behind a proxy or NAT one
// address is many clients).
func (s *Service) throttleFailure(ctx context.Context, keyID string) error {
	if ok, d := s.failedByAddr.Allow(RequestMetaFrom(ctx).ClientAddr); !ok {
		return rateLimited(d, "too many failed authentication attempts from this address; retry later")
	}
	if ok, d := s.failedByKey.Allow(keyID); !ok {
		return rateLimited(d, "too many failed authentication attempts for this key; retry later")
	}
	return nil
}

// Throttle applies the per-principal request limit to an authenticated
// identity.
func (s *Service) Throttle(id *Identity) error {
	if ok, d := s.perPrincipal.Allow(id.Principal.ID); !ok {
		return rateLimited(d, "request rate limit exceeded for this principal; retry later")
	}
	return nil
}

// Now returns the service clock's time, truncated to microseconds (the
// precision every store keeps).
func (s *Service) Now() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// MaxPayload is the largest payload accepted, in bytes.
func (s *Service) MaxPayload() int { return s.maxPayload }

// NewID returns a new random, time-ordered id (UUIDv7).
func NewID() string {
	return uuid.Must(uuid.NewV7()).String()
}

// HashAPIKey returns the stored form of an API key.
func HashAPIKey(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// NewAPIKeySecret returns a new API key for key id: base64(id ":" secret)
// with a 256-bit secret from crypto/rand. This is exactly the form of a
// Fortanix DSM app API key (base64 of app_id:secret), so one key serves both
// the SGP x-api-key header and DSM's "Authorization: Basic <key>".
func NewAPIKeySecret(id string) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never happens on a supported platform
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	return base64.StdEncoding.EncodeToString([]byte(id + ":" + secret))
}

// APIKeyID extracts the key id from a key in credvault's format, for
// rate limiting and audit. ok is false for any other string.
func APIKeyID(key string) (id string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		return "", false
	}
	id, _, found := strings.Cut(string(raw), ":")
	if !found || uuid.Validate(id) != nil {
		return "", false
	}
	return id, true
}

// MinAPIKeyLength is a lower bound on the length of any API key credvault
// accepts. A key supplied from outside (the bootstrap key) must moreover
// have the generated form: see CheckSuppliedAPIKey.
const MinAPIKeyLength = 32

var errBadKey = Errorf(KindUnauthenticated, "invalid or missing API key")

// Authenticate resolves an API key to an Identity in accountID ("" selects
// the principal's default account). An unknown, revoked or expired key is
// Unauthenticated; a key whose principal is not a member of the account is
// PermissionDenied.
func (s *Service) Authenticate(ctx context.Context, key, accountID string) (*Identity, error) {
	keyID, _ := APIKeyID(key)
	if key == "" {
		return nil, s.authFailed(ctx, "", nil, errBadKey)
	}
	hash := HashAPIKey(key)
	rec, err := s.lookupAPIKey(ctx, hash, accountID)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, s.authFailed(ctx, keyID, nil, errBadKey)
		}
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	// The lookup was by hash; compare again in constant time so that the
	// decision never depends on a variable-time comparison of secrets.
	if subtle.ConstantTimeCompare(rec.Key.Hash, hash) != 1 {
		return nil, s.authFailed(ctx, rec.Key.ID, nil, errBadKey)
	}
	now := s.now()
	if rec.Key.RevokedAt != nil || (rec.Key.ExpiresAt != nil && !now.Before(*rec.Key.ExpiresAt)) {
		return nil, s.authFailed(ctx, rec.Key.ID, &Identity{Principal: rec.Principal, AccountID: rec.Principal.DefaultAccountID}, errBadKey)
	}
	if rec.Role == "" {
		return nil, s.authFailed(ctx, rec.Key.ID, &Identity{Principal: rec.Principal, AccountID: rec.Principal.DefaultAccountID},
			Errorf(KindPermissionDenied, "this API key may not use the selected account"))
	}
	if rec.Key.LastUsedAt == nil || now.Sub(*rec.Key.LastUsedAt) > time.Minute {
		// Recorded at minute granularity so that the hot path does not write
		// on every request, and best-effort: a database that cannot write
		// (disk full) must not stop requests that need no write. The store
		// reports such failures through its readiness check.
		_ = s.store.TouchAPIKey(ctx, rec.Key.ID, now)
		s.touchedAPIKey(hash, accountID, now)
	}
	id := &Identity{Principal: rec.Principal, AccountID: rec.AccountID, Role: rec.Role, KeyID: rec.Key.ID, KeyExpiresAt: rec.Key.ExpiresAt}
	if err := s.Throttle(id); err != nil {
		return nil, err
	}
	return id, nil
}

const keyCheckMeta = "master_key_check"

var keyCheckAD = []byte("credvault/master-key-check/v1")

// MasterKeyCheckMeta is the meta key under which a database keeps its
// master-key check value (see CheckMasterKey). Backups carry it so that a
// restore can verify the master key before writing anything.
const MasterKeyCheckMeta = keyCheckMeta

// ErrWrongMasterKey is returned when a master key cannot open a database's
// (or a backup's) key check value.
var ErrWrongMasterKey = errors.New("the master key does not match this database (it cannot open the database's key check value)")

// OpenMasterKeyCheck verifies, without writing anything, that sealer opens
// the key check value ct. It returns ErrWrongMasterKey if not.
func OpenMasterKeyCheck(sealer Sealer, ct []byte) error {
	if _, err := sealer.Open(ct, keyCheckAD); err != nil {
		return ErrWrongMasterKey
	}
	return nil
}

// CheckMasterKey verifies that the sealer's master key is the one this
// database was written with, by opening a check value sealed on first use.
// It refuses to serve with the wrong key rather than failing on every
// decrypt later.
func (s *Service) CheckMasterKey(ctx context.Context) error {
	ct, err := s.store.GetMeta(ctx, keyCheckMeta)
	if KindOf(err) == KindNotFound {
		ct, err = s.sealer.Seal([]byte("credvault"), keyCheckAD)
		if err != nil {
			return fmt.Errorf("master key check: %w", err)
		}
		if _, err := s.store.PutMeta(ctx, keyCheckMeta, ct); err != nil {
			return fmt.Errorf("master key check: %w", err)
		}
		ct, err = s.store.GetMeta(ctx, keyCheckMeta) // another replica may have won
	}
	if err != nil {
		return fmt.Errorf("master key check: %w", err)
	}
	return OpenMasterKeyCheck(s.sealer, ct)
}

// authFailed records a failed authentication in the audit trail (with the
// key id when the key has credvault's format — never the key itself) and
// returns err. A failure to write that record does not change the answer:
// the request is refused either way. Once the client address or key id has
// failed too often (throttleFailure), the answer is RateLimited instead and
// nothing is written: a throttled failure costs the one lookup that found
// the credential wrong, so a flood of wrong keys cannot flood the audit
// trail. It is still counted by the Options.OnAuthFailure callback.
func (s *Service) authFailed(ctx context.Context, keyID string, id *Identity, err error) error {
	if s.onAuthFailure != nil {
		s.onAuthFailure()
	}
	if rl := s.throttleFailure(ctx, keyID); rl != nil {
		return rl
	}
	_ = s.Audit(ctx, id, "auth.failure", "api_key", keyID, err)
	return err
}

// SecretAccessed runs the Options.OnSecretAccess callback.
func (s *Service) SecretAccessed(op string) {
	if s.onSecretAccess != nil {
		s.onSecretAccess(op)
	}
}
