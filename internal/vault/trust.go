package vault

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode/utf8"
)

// Workload identity: a trust policy lets workloads holding a JWT from one
// issuer (a Kubernetes service-account token, a GitHub Actions OIDC token)
// trade it for a short-lived API key of the policy's role in its account.
// The core holds the policies and mints the keys; checking a token's
// signature and claims is a Verifier's job (internal/oidc).

// Lifetimes of keys issued through a trust policy.
const (
	DefaultWorkloadKeyTTL = 15 * time.Minute
	MaxWorkloadKeyTTL     = 12 * time.Hour
)

// KeySourceKind says where a trust policy's issuer keys come from.
type KeySourceKind string

const (
	KeysDiscovery KeySourceKind = "discovery" // <issuer>/.well-known/openid-configuration → jwks_uri
	KeysJWKSURL   KeySourceKind = "jwks_url"  // a JWKS URL given in the policy
	KeysJWKS      KeySourceKind = "jwks"      // a JWKS document stored in the policy
)

// ClaimRule requires a claim of the token to match Pattern: exactly, or as
// a glob when the pattern has '*', '?' or '[' (path.Match syntax, where '*'
// also matches '/' and ':'). A claim that is a list matches if one of its
// elements does; a missing claim never matches.
type ClaimRule struct {
	Claim   string
	Pattern string
}

// TrustPolicy trusts one issuer's tokens, with the given audiences and
// claims, for a role in one account. Keys issued through it belong to a
// service principal whose id is the policy's id, so the audit trail names
// the policy as the actor of everything done with them.
type TrustPolicy struct {
	ID        string
	AccountID string
	Name      string
	Issuer    string
	KeySource KeySourceKind
	JWKSURL   string // KeysJWKSURL
	JWKS      string // KeysJWKS: the JWKS document (public keys only)
	Audiences []string
	Claims    []ClaimRule
	Role      Role
	TTL       time.Duration
	CreatedAt time.Time
}

// WorkloadClaims are the verified facts about a workload token.
type WorkloadClaims struct {
	Issuer  string
	Subject string
	Expiry  time.Time
}

// TokenVerifier checks workload tokens. Implemented by internal/oidc.
type TokenVerifier interface {
	// Issuer returns the (unverified) iss claim of token; KindInvalid if
	// token is not a JWT.
	Issuer(token string) (string, error)
	// Verify checks token against p: signature, issuer, audience, times
	// and every claim rule. Its errors are KindUnauthenticated with a
	// message saying which check failed (never the token).
	Verify(ctx context.Context, p *TrustPolicy, token string) (*WorkloadClaims, error)
}

// TrustStore holds trust policies.
type TrustStore interface {
	// CreateTrustPolicy stores p with its service principal (id p.ID)
	// and that principal's membership (p.Role in p.AccountID), in one
	// transaction. ErrConflict if the name is taken in the account.
	CreateTrustPolicy(ctx context.Context, p *TrustPolicy, principal Principal) error
	// GetTrustPolicy returns the policy; ErrNotFound if there is none.
	GetTrustPolicy(ctx context.Context, id string) (*TrustPolicy, error)
	// ListTrustPolicies returns the account's policies, oldest first.
	ListTrustPolicies(ctx context.Context, accountID string) ([]TrustPolicy, error)
	// TrustPoliciesForIssuer returns the policies for issuer (of every
	// account when accountID is ""), oldest first.
	TrustPoliciesForIssuer(ctx context.Context, issuer, accountID string) ([]TrustPolicy, error)
	// DeleteTrustPolicy removes the policy and its principal's membership
	// and revokes (at at) every key issued through it, in one transaction.
	// ErrNotFound if there is none.
	DeleteTrustPolicy(ctx context.Context, id string, at time.Time) error
}

// trustStore returns the store's TrustStore.
func (s *Service) trustStore() TrustStore { return s.store }

// Validate checks a policy before it is stored and fills in defaults.
func (p *TrustPolicy) Validate() error {
	p.Name = strings.TrimSpace(p.Name)
	if p.Name == "" || len(p.Name) > 200 || !utf8.ValidString(p.Name) {
		return FieldError("name", "a trust policy needs a name (at most 200 bytes)")
	}
	if p.AccountID == "" {
		return FieldError("account_id", "a trust policy needs an account")
	}
	if err := checkHTTPS("issuer", p.Issuer); err != nil {
		return err
	}
	switch p.KeySource {
	case KeysDiscovery:
		if p.JWKSURL != "" || p.JWKS != "" {
			return FieldError("jwks_url", "with key source discovery, give neither jwks_url nor jwks")
		}
	case KeysJWKSURL:
		if p.JWKS != "" {
			return FieldError("jwks", "with key source jwks_url, give no jwks document")
		}
		if err := checkHTTPS("jwks_url", p.JWKSURL); err != nil {
			return err
		}
	case KeysJWKS:
		if p.JWKSURL != "" {
			return FieldError("jwks_url", "with key source jwks, give no jwks_url")
		}
		if strings.TrimSpace(p.JWKS) == "" || len(p.JWKS) > 64<<10 {
			return FieldError("jwks", "with key source jwks, give the issuer's JWKS document (at most 64 KiB)")
		}
	default:
		return FieldError("key_source", "key source must be discovery, jwks_url or jwks")
	}
	if len(p.Audiences) == 0 {
		return FieldError("audiences", "a trust policy needs at least one accepted audience")
	}
	for _, a := range p.Audiences {
		if strings.TrimSpace(a) == "" {
			return FieldError("audiences", "audiences must not be empty")
		}
	}
	hasSub := false
	for _, c := range p.Claims {
		if c.Claim == "" || c.Pattern == "" {
			return FieldError("claims", "every claim rule needs a claim name and a pattern")
		}
		if _, err := path.Match(c.Pattern, ""); err != nil {
			return FieldError("claims", "the pattern of claim %q is not a valid glob", c.Claim)
		}
		if c.Claim == "sub" {
			hasSub = true
		}
	}
	if !hasSub {
		// Without it, every workload the issuer vouches for (every pod of
		// the cluster, every repository on GitHub) would get the role.
		return FieldError("claims", "a trust policy needs a rule on the sub claim")
	}
	if _, ok := ParseRole(string(p.Role)); !ok {
		return FieldError("role", "unknown role %q", p.Role)
	}
	if p.TTL == 0 {
		p.TTL = DefaultWorkloadKeyTTL
	}
	if p.TTL < time.Minute || p.TTL > MaxWorkloadKeyTTL {
		return FieldError("ttl", "the lifetime of issued keys must be between 1 minute and 12 hours")
	}
	return nil
}

func checkHTTPS(field, u string) error {
	if !strings.HasPrefix(u, "https://") || len(u) <= len("https://") || len(u) > 2048 || strings.ContainsAny(u, " \t\r\n#") {
		return FieldError(field, "%s must be an https URL", field)
	}
	return nil
}

// MatchClaim reports whether a claim value matches pattern (see ClaimRule).
func MatchClaim(pattern string, value any) bool {
	switch v := value.(type) {
	case string:
		if !strings.ContainsAny(pattern, "*?[") {
			return v == pattern
		}
		// path.Match's '*' stops at '/'; claims are not paths, so match
		// with '/' mapped to a byte that cannot occur in valid UTF-8.
		ok, err := path.Match(strings.ReplaceAll(pattern, "/", "\xff"), strings.ReplaceAll(v, "/", "\xff"))
		return err == nil && ok
	case bool:
		return pattern == fmt.Sprint(v)
	case float64:
		return pattern == fmt.Sprint(v)
	case []any:
		for _, e := range v {
			if MatchClaim(pattern, e) {
				return true
			}
		}
	}
	return false
}

// requireTrustAdmin allows an admin of accountID (through any of the
// principal's memberships, so a key need not select that account), or an
// operator (an admin of the system account). DSM apps never. Anyone else
// learns nothing: NotFound.
func (s *Service) requireTrustAdmin(ctx context.Context, id *Identity, accountID string) error {
	if id == nil {
		return errBadKey
	}
	if id.Principal.Kind == PrincipalApp {
		return Errorf(KindPermissionDenied, "DSM apps cannot manage trust policies")
	}
	if id.AccountID == accountID {
		return id.Require(ActAdmin)
	}
	ms, err := s.store.ListMemberships(ctx, id.Principal.ID)
	if err != nil {
		return fmt.Errorf("trust policy access: %w", err)
	}
	for _, m := range ms {
		if m.AccountID == accountID && m.Role.Allows(ActAdmin) {
			return nil
		}
	}
	if err := s.RequireOperator(ctx, id); err != nil {
		if KindOf(err) == KindPermissionDenied {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// CreateTrustPolicy validates and stores a trust policy.
func (s *Service) CreateTrustPolicy(ctx context.Context, id *Identity, p TrustPolicy) (out *TrustPolicy, err error) {
	p.ID, p.CreatedAt = NewID(), s.Now()
	ctx = s.auditing(ctx, id, "trust_policy.create", "trust_policy", func() string { return p.ID })
	defer func() { err = s.auditOutcome(ctx, id, "trust_policy.create", "trust_policy", p.ID, err) }()
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := s.requireTrustAdmin(ctx, id, p.AccountID); err != nil {
		if KindOf(err) == KindNotFound {
			return nil, FieldError("account_id", "no such account, or you are not its admin")
		}
		return nil, err
	}
	if _, err := s.store.GetAccount(ctx, p.AccountID); err != nil {
		if KindOf(err) == KindNotFound {
			return nil, FieldError("account_id", "no such account, or you are not its admin")
		}
		return nil, fmt.Errorf("create trust policy: %w", err)
	}
	pr := Principal{ID: p.ID, Kind: PrincipalServiceAccount, Name: "trust:" + p.Name, DefaultAccountID: p.AccountID, CreatedAt: p.CreatedAt}
	if err := s.trustStore().CreateTrustPolicy(ctx, &p, pr); err != nil {
		if errors.Is(err, ErrConflict) {
			return nil, Errorf(KindConflict, "a trust policy named %q already exists in this account", p.Name)
		}
		return nil, fmt.Errorf("create trust policy: %w", err)
	}
	return &p, nil
}

// GetTrustPolicy returns a trust policy its caller may manage.
func (s *Service) GetTrustPolicy(ctx context.Context, id *Identity, policyID string) (*TrustPolicy, error) {
	p, err := s.trustStore().GetTrustPolicy(ctx, policyID)
	if err != nil {
		return nil, err
	}
	if err := s.requireTrustAdmin(ctx, id, p.AccountID); err != nil {
		return nil, err
	}
	return p, nil
}

// ListTrustPolicies lists the trust policies of accountID ("" = the
// caller's account).
func (s *Service) ListTrustPolicies(ctx context.Context, id *Identity, accountID string) ([]TrustPolicy, error) {
	if accountID == "" && id != nil {
		accountID = id.AccountID
	}
	if err := s.requireTrustAdmin(ctx, id, accountID); err != nil {
		if KindOf(err) == KindNotFound {
			return nil, Errorf(KindPermissionDenied, "only an admin of the account may list its trust policies")
		}
		return nil, err
	}
	return s.trustStore().ListTrustPolicies(ctx, accountID)
}

// DeleteTrustPolicy deletes a trust policy. Keys issued through it stop
// working at once.
func (s *Service) DeleteTrustPolicy(ctx context.Context, id *Identity, policyID string) (err error) {
	if _, err := s.GetTrustPolicy(ctx, id, policyID); err != nil {
		return err
	}
	ctx = s.auditing(ctx, id, "trust_policy.delete", "trust_policy", func() string { return policyID })
	defer func() { err = s.auditOutcome(ctx, id, "trust_policy.delete", "trust_policy", policyID, err) }()
	if err := s.trustStore().DeleteTrustPolicy(ctx, policyID, s.Now()); err != nil {
		return fmt.Errorf("delete trust policy: %w", err)
	}
	return nil
}

// WorkloadKey is a key issued for a workload token. Key is the only copy
// of the key in plaintext.
type WorkloadKey struct {
	Key       string
	KeyID     string
	ExpiresAt time.Time
	Policy    *TrustPolicy
}

// errNoTrustPolicy is the refusal of a token no trust policy covers.
var errNoTrustPolicy = Errorf(KindUnauthenticated, "no trust policy accepts tokens of this issuer")

// ExchangeWorkloadToken trades a workload token for a new API key: the
// token must pass v's checks against a trust policy for its issuer (in
// accountID, if not ""); the first such policy, oldest first, grants its
// role in its account for its TTL. Every exchange is audited, refused
// ones too, as action "workload.exchange" by the policy's principal (whose
// id is the policy id) on object "workload" <subject> (refusals: no
// subject, since it was not verified). Refusals are KindUnauthenticated
// (KindInvalid for a token that is not a JWT), and count as failed
// authentications for the address and policy limits (throttleFailure):
// past them the answer is RateLimited and nothing more is written.
func (s *Service) ExchangeWorkloadToken(ctx context.Context, v TokenVerifier, token, accountID string) (*WorkloadKey, error) {
	iss, err := v.Issuer(token)
	if err != nil {
		return nil, s.exchangeRefused(ctx, "", nil, err)
	}
	policies, err := s.trustStore().TrustPoliciesForIssuer(ctx, iss, accountID)
	if err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	if len(policies) == 0 {
		return nil, s.exchangeRefused(ctx, "issuer:"+truncate(iss, 256), nil, errNoTrustPolicy)
	}
	var firstErr error
	var first *TrustPolicy
	for i := range policies {
		p := &policies[i]
		claims, err := v.Verify(ctx, p, token)
		if err != nil {
			if k := KindOf(err); k != KindUnauthenticated && k != KindInvalid {
				return nil, err // the issuer's keys could not be fetched: not the token's fault
			}
			if firstErr == nil {
				firstErr, first = err, p
			}
			continue
		}
		return s.issueWorkloadKey(ctx, p, claims)
	}
	return nil, s.exchangeRefused(ctx, "trust:"+first.ID, policyIdentity(first), firstErr)
}

// exchangeRefused counts and audits a refused exchange (see
// ExchangeWorkloadToken) and returns err, or RateLimited.
func (s *Service) exchangeRefused(ctx context.Context, limitKey string, id *Identity, err error) error {
	if s.onAuthFailure != nil {
		s.onAuthFailure()
	}
	if rl := s.throttleFailure(ctx, limitKey); rl != nil {
		return rl
	}
	_ = s.Audit(ctx, id, "workload.exchange", "workload", "", err)
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func policyIdentity(p *TrustPolicy) *Identity {
	return &Identity{Principal: Principal{ID: p.ID, Kind: PrincipalServiceAccount, Name: "trust:" + p.Name, DefaultAccountID: p.AccountID}, AccountID: p.AccountID, Role: p.Role}
}

func (s *Service) issueWorkloadKey(ctx context.Context, p *TrustPolicy, c *WorkloadClaims) (wk *WorkloadKey, err error) {
	now := s.Now()
	exp := now.Add(p.TTL)
	k := APIKey{ID: NewID(), PrincipalID: p.ID, Name: workloadKeyName(c), CreatedAt: now, ExpiresAt: &exp}
	secret := NewAPIKeySecret(k.ID)
	k.Hash = HashAPIKey(secret)
	id := policyIdentity(p)
	id.KeyID = k.ID
	ctx = s.auditing(ctx, id, "workload.exchange", "workload", func() string { return c.Subject })
	defer func() { err = s.auditOutcome(ctx, id, "workload.exchange", "workload", c.Subject, err) }()
	if err := s.store.CreateAPIKey(ctx, &k); err != nil {
		return nil, fmt.Errorf("token exchange: %w", err)
	}
	return &WorkloadKey{Key: secret, KeyID: k.ID, ExpiresAt: exp, Policy: p}, nil
}

// workloadKeyName names an issued key after the workload, so that a list
// of the principal's keys shows who holds them.
func workloadKeyName(c *WorkloadClaims) string {
	n := "workload " + c.Subject
	if len(n) > 200 {
		n = n[:200]
	}
	return strings.ToValidUTF8(n, "?")
}
