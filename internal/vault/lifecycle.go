package vault

import (
	"context"
	"fmt"
	"time"
)

// Lifecycle defaults.
const (
	DefaultMaxVersions     = 10
	MaxMaxVersions         = 1000
	DefaultDeleteRetention = 7 * 24 * time.Hour
	DefaultExpiryNotice    = 7 * 24 * time.Hour
)

// Expiry notice stages (credential_expiry_notices.stage).
const (
	ExpiryStageExpiring = "expiring"
	ExpiryStageExpired  = "expired"
)

// LifecycleOptions tunes the credential lifecycle.
type LifecycleOptions struct {
	// DeleteRetention is how long a deleted credential stays recoverable
	// before the background purge destroys it (DefaultDeleteRetention if 0).
	DeleteRetention time.Duration
	// ExpiryNotice is how long before expires_at the credential.expiring
	// event is raised (DefaultExpiryNotice if 0).
	ExpiryNotice time.Duration
}

func (o LifecycleOptions) withDefaults() LifecycleOptions {
	if o.DeleteRetention <= 0 {
		o.DeleteRetention = DefaultDeleteRetention
	}
	if o.ExpiryNotice <= 0 {
		o.ExpiryNotice = DefaultExpiryNotice
	}
	return o
}

// DeleteRetention is the recoverable-delete window.
func (s *Service) DeleteRetention() time.Duration { return s.lifecycle.DeleteRetention }

// SystemIdentity is the actor of the background lifecycle work (purge,
// expiry notices) in an account, as the audit trail and events name it.
func SystemIdentity(accountID string) *Identity {
	return &Identity{Principal: Principal{ID: "system:lifecycle", Kind: PrincipalOperator, Name: "lifecycle"}, AccountID: accountID}
}

// Expired reports whether c has expired at now.
func (c *Credential) Expired(now time.Time) bool {
	return c.ExpiresAt != nil && !now.Before(*c.ExpiresAt)
}

// VersionInfo is a kept version as listed (never a payload).
type VersionInfo struct {
	CredentialVersion
	Current bool
}

var errCredNotFound = Errorf(KindNotFound, "credential not found")

func notFoundAs(err error, what string) error {
	if KindOf(err) == KindNotFound {
		return Errorf(KindNotFound, "%s not found", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ListCredentialVersions lists a credential's kept versions, newest first.
func (s *Service) ListCredentialVersions(ctx context.Context, id *Identity, credID string) ([]VersionInfo, error) {
	c, err := s.GetCredential(ctx, id, credID)
	if err != nil {
		return nil, err
	}
	vs, err := s.store.ListCredentialVersions(ctx, id.AccountID, c.ID)
	if err != nil {
		return nil, notFoundAs(err, "credential")
	}
	out := make([]VersionInfo, len(vs))
	for i, v := range vs {
		out[i] = VersionInfo{CredentialVersion: v, Current: v.Version == c.Version}
	}
	return out, nil
}

// DecryptCredentialVersion returns the plaintext of a kept version. It is
// audited like a decrypt (action credential.version.decrypt), fail closed.
func (s *Service) DecryptCredentialVersion(ctx context.Context, id *Identity, credID string, version int64) ([]byte, error) {
	const action = "credential.version.decrypt"
	if err := id.requireAccountWide(ActReadSecret); err != nil {
		return nil, s.auditResult(ctx, id, action, nil, credID, err)
	}
	v, err := s.version(ctx, id, credID, version)
	if err != nil {
		return nil, s.auditResult(ctx, id, action, nil, credID, err)
	}
	if err := s.auditResult(ctx, id, action, nil, credID, nil); err != nil {
		return nil, err
	}
	pt, err := s.sealer.Open(v.Ciphertext, credentialAD(v.AccountID, v.CredentialID, v.Version))
	if err != nil {
		return nil, IntegrityError("credential", fmt.Errorf("decrypt credential %s version %d: %w", v.CredentialID, v.Version, err))
	}
	s.SecretAccessed(action)
	return pt, nil
}

func (s *Service) version(ctx context.Context, id *Identity, credID string, version int64) (*CredentialVersion, error) {
	if !storable(credID) {
		return nil, errCredNotFound
	}
	v, err := s.store.GetCredentialVersion(ctx, id.AccountID, credID, version)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, Errorf(KindNotFound, "credential version not found")
		}
		return nil, fmt.Errorf("get credential version: %w", err)
	}
	return v, nil
}

// RollbackCredential makes a new version whose payload is version's.
func (s *Service) RollbackCredential(ctx context.Context, id *Identity, credID string, version int64) (c *Credential, err error) {
	const action = "credential.rollback"
	ctx = s.auditing(ctx, id, action, "credential", func() string { return credID })
	defer func() { err = s.auditResult(ctx, id, action, nil, credID, err) }()
	if err := id.requireAccountWide(ActWrite); err != nil {
		return nil, err
	}
	if version < 1 {
		return nil, FieldError("version", "version must be a positive integer")
	}
	v, err := s.version(ctx, id, credID, version)
	if err != nil {
		return nil, err
	}
	pt, err := s.sealer.Open(v.Ciphertext, credentialAD(v.AccountID, v.CredentialID, v.Version))
	if err != nil {
		return nil, IntegrityError("credential", fmt.Errorf("open credential %s version %d: %w", credID, version, err))
	}
	defer clear(pt)
	var out *Credential
	ctx = s.emitting(ctx, id, EventCredentialRolledBack, func() EventData { return credentialEvent(out) })
	now := s.Now()
	c, err = s.store.UpdateCredential(ctx, id.AccountID, credID, func(c *Credential) error {
		if err := s.checkPayload(c.Type, pt); err != nil {
			return err
		}
		c.Version++
		ct, err := s.sealer.Seal(pt, credentialAD(c.AccountID, c.ID, c.Version))
		if err != nil {
			return fmt.Errorf("seal: %w", err)
		}
		c.Ciphertext, c.UpdatedAt, c.VersionBy = ct, now, id.Principal.ID
		out = c
		return nil
	})
	if err != nil {
		if k := KindOf(err); k == KindInvalid || k == KindTooLarge {
			return nil, err
		}
		return nil, notFoundAs(err, "credential")
	}
	return c, nil
}

// MaxVersions returns how many versions the account keeps per credential.
func (s *Service) MaxVersions(ctx context.Context, id *Identity) (int, error) {
	if err := id.requireAccountWide(ActRead); err != nil {
		return 0, err
	}
	n, err := s.store.MaxVersions(ctx, id.AccountID)
	if err != nil {
		return 0, fmt.Errorf("max versions: %w", err)
	}
	if n <= 0 {
		n = DefaultMaxVersions
	}
	return n, nil
}

// SetMaxVersions sets how many versions the account keeps per credential
// (account admins). Older versions are destroyed at each credential's next
// version.
func (s *Service) SetMaxVersions(ctx context.Context, id *Identity, n int) (err error) {
	const action = "account.set_max_versions"
	ctx = s.auditing(ctx, id, action, "account", func() string { return id.AccountID })
	defer func() {
		if aerr := s.Audit(ctx, id, action, "account", id.AccountID, err); aerr != nil && err == nil {
			err = aerr
		}
	}()
	if err := id.requireAccountWide(ActAdmin); err != nil {
		return err
	}
	if n < 1 || n > MaxMaxVersions {
		return FieldError("max_versions", "max_versions must be between 1 and %d", MaxMaxVersions)
	}
	if err := s.store.SetMaxVersions(ctx, id.AccountID, n); err != nil {
		return fmt.Errorf("set max versions: %w", err)
	}
	return nil
}

// ListTrash returns a page of the account's deleted credentials, newest
// deletion first.
func (s *Service) ListTrash(ctx context.Context, id *Identity, after string, limit int) ([]TrashedCredential, bool, error) {
	if err := id.requireAccountWide(ActRead); err != nil {
		return nil, false, err
	}
	if limit < 1 || limit > MaxListLimit {
		return nil, false, FieldError("limit", "limit must be between 1 and %d", MaxListLimit)
	}
	if !storable(after) {
		return nil, false, FieldError("after", "no deleted credential with this id exists in this account")
	}
	items, more, err := s.store.ListTrash(ctx, id.AccountID, after, limit)
	if err != nil {
		if KindOf(err) == KindInvalid {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("list trash: %w", err)
	}
	return items, more, nil
}

// PurgeAt is when a deleted credential will be purged.
func (s *Service) PurgeAt(t *TrashedCredential) time.Time {
	return t.DeletedAt.Add(s.lifecycle.DeleteRetention)
}

// RestoreCredential brings a deleted credential back.
func (s *Service) RestoreCredential(ctx context.Context, id *Identity, credID string) (c *Credential, err error) {
	const action = "credential.restore"
	ctx = s.auditing(ctx, id, action, "credential", func() string { return credID })
	defer func() { err = s.auditResult(ctx, id, action, nil, credID, err) }()
	if err := id.requireAccountWideOn(ActWrite, "deleted credential", credID); err != nil {
		return nil, err
	}
	// A credential past its retention window is gone even if the purge
	// has not run yet.
	t, err := s.trashed(ctx, id.AccountID, credID)
	if err != nil {
		return nil, err
	}
	if !s.Now().Before(s.PurgeAt(t)) {
		return nil, Errorf(KindNotFound, "deleted credential not found")
	}
	ctx = s.emitting(ctx, id, EventCredentialRestored, func() EventData { return credentialEvent(&t.Credential) })
	out, err := s.store.RestoreCredential(ctx, id.AccountID, credID)
	if err != nil {
		return nil, credentialChangeErr(err, "deleted credential", "; rename it or delete it first", "restore credential")
	}
	return out, nil
}

func (s *Service) trashed(ctx context.Context, accountID, credID string) (*TrashedCredential, error) {
	t, err := s.store.GetTrashedCredential(ctx, accountID, credID)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, Errorf(KindNotFound, "deleted credential not found")
		}
		return nil, fmt.Errorf("get deleted credential: %w", err)
	}
	return t, nil
}

// PurgeCredential destroys a deleted credential and its versions now.
func (s *Service) PurgeCredential(ctx context.Context, id *Identity, credID string) (err error) {
	const action = "credential.purge"
	ctx = s.auditing(ctx, id, action, "credential", func() string { return credID })
	defer func() { err = s.auditResult(ctx, id, action, nil, credID, err) }()
	if err := id.requireAccountWideOn(ActWrite, "deleted credential", credID); err != nil {
		return err
	}
	t, err := s.trashed(ctx, id.AccountID, credID)
	if err != nil {
		return err
	}
	ctx = s.emitting(ctx, id, EventCredentialPurged, func() EventData { return credentialEvent(&t.Credential) })
	if _, err := s.store.PurgeCredential(ctx, id.AccountID, credID, time.Time{}); err != nil {
		if KindOf(err) == KindNotFound {
			return Errorf(KindNotFound, "deleted credential not found")
		}
		return fmt.Errorf("purge credential: %w", err)
	}
	return nil
}

// PurgeDueTrash destroys the deleted credentials whose retention window
// has ended, each in its own transaction with its audit record and event
// (actor SystemIdentity). A credential another replica purged first is
// skipped: each is purged, audited and announced once. It returns how
// many this call purged.
func (s *Service) PurgeDueTrash(ctx context.Context) (int, error) {
	const action = "credential.purge"
	cutoff := s.Now().Add(-s.lifecycle.DeleteRetention)
	n := 0
	for {
		due, err := s.store.DueTrash(ctx, cutoff, 100)
		if err != nil {
			return n, fmt.Errorf("purge deleted credentials: %w", err)
		}
		purged := 0
		for i := range due {
			t := &due[i]
			id := SystemIdentity(t.AccountID)
			tctx := s.auditing(ctx, id, action, "credential", func() string { return t.ID })
			tctx = s.emitting(tctx, id, EventCredentialPurged, func() EventData { return credentialEvent(&t.Credential) })
			if _, err := s.store.PurgeCredential(tctx, t.AccountID, t.ID, cutoff); err != nil {
				if KindOf(err) == KindNotFound {
					continue // purged (or restored) meanwhile
				}
				return n, fmt.Errorf("purge deleted credential %s: %w", t.ID, err)
			}
			if err := s.Audit(tctx, id, action, "credential", t.ID, nil); err != nil {
				return n, err
			}
			n++
			purged++
		}
		if len(due) < 100 || purged == 0 {
			return n, nil
		}
	}
}

// NotifyExpiry raises credential.expiring (ExpiryNotice ahead) and
// credential.expired events, each once per credential and expiry time
// (replicas included). It returns how many it raised.
func (s *Service) NotifyExpiry(ctx context.Context) (int, error) {
	now := s.Now()
	n := 0
	for _, st := range []struct {
		stage, typ string
		before     time.Time
	}{
		{ExpiryStageExpiring, EventCredentialExpiring, now.Add(s.lifecycle.ExpiryNotice)},
		{ExpiryStageExpired, EventCredentialExpired, now.Add(time.Microsecond)},
	} {
		for {
			due, err := s.store.DueExpiry(ctx, st.before, st.stage, 100)
			if err != nil {
				return n, fmt.Errorf("expiry notices: %w", err)
			}
			raised := 0
			for i := range due {
				c := &due[i]
				cctx := s.emitting(ctx, SystemIdentity(c.AccountID), st.typ, func() EventData { return credentialEvent(c) })
				ok, err := s.store.NoteExpiry(cctx, c, st.stage)
				if err != nil {
					return n, fmt.Errorf("expiry notice for %s: %w", c.ID, err)
				}
				if ok {
					n++
					raised++
				}
			}
			if len(due) < 100 || raised == 0 {
				break
			}
		}
	}
	return n, nil
}
