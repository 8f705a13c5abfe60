package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxNameLength bounds credential names, in bytes.
const MaxNameLength = 1024

// CredentialInput is the input of CreateCredential.
type CredentialInput struct {
	Name        string
	Type        string
	Description string
	Metadata    json.RawMessage // a JSON object or nil
	Payload     []byte
	ExpiresAt   *time.Time // nil: never (extension, lifecycle.go)
}

// CredentialPatch is the input of UpdateCredential: nil fields are left as
// they are.
type CredentialPatch struct {
	Name        *string
	Type        *string
	Description *string
	Metadata    json.RawMessage // nil: unchanged
	Payload     []byte          // nil: unchanged
	ExpiresAt   **time.Time     // nil: unchanged; *nil: never (extension)
}

// credentialAD is the associated data of a credential payload: it binds the
// ciphertext to its account, its id and its payload version, so that a
// ciphertext copied to another row, another account or an older version
// fails to open.
func credentialAD(accountID, id string, version int64) []byte {
	return []byte("credvault/credential/v1\x00" + accountID + "\x00" + id + "\x00" + strconv.FormatInt(version, 10))
}

func (s *Service) checkPayload(typ string, payload []byte) error {
	if len(payload) == 0 {
		return FieldError("payload", "payload must not be empty")
	}
	if len(payload) > s.maxPayload {
		return &Error{Kind: KindTooLarge, Field: "payload", Msg: fmt.Sprintf("payload exceeds the limit of %d bytes", s.maxPayload)}
	}
	if !utf8.Valid(payload) {
		return FieldError("payload", "payload must be valid UTF-8 text")
	}
	if typ == "json" && !json.Valid(payload) {
		return FieldError("payload", "payload of a credential of type json must be valid JSON")
	}
	return nil
}

// storable reports whether s can be stored and looked up alike on every
// engine: valid UTF-8 without NUL characters. PostgreSQL text rejects both
// (SQLite would store them), so such values are refused (or, as lookup
// keys, cannot match anything) before they reach a store.
func storable(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

func checkName(name string) error {
	switch {
	case name == "":
		return FieldError("name", "name must not be empty")
	case len(name) > MaxNameLength:
		return FieldError("name", "name must be at most %d bytes", MaxNameLength)
	case !storable(name):
		return FieldError("name", "name must be valid UTF-8 without NUL characters")
	case !pathSafeName(name):
		return FieldError("name", `name must not be "." or "..", contain such a segment between slashes, start with "/" or contain "//" (it could not be used in a URL path)`)
	}
	return CheckNameText("name", name)
}

func checkType(typ string) error {
	if typ == "" {
		return FieldError("type", "type must not be empty")
	}
	if len(typ) > 255 {
		return FieldError("type", "type must be at most 255 bytes")
	}
	if !storable(typ) {
		return FieldError("type", "type must be valid UTF-8 without NUL characters")
	}
	return nil
}

func checkDescription(d string) error {
	if !storable(d) {
		return FieldError("description", "description must be valid UTF-8 without NUL characters")
	}
	return nil
}

func normalizeMetadata(m json.RawMessage) (json.RawMessage, error) {
	if m == nil {
		return json.RawMessage("{}"), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err != nil || buf.Len() == 0 || buf.Bytes()[0] != '{' {
		return nil, FieldError("credential_metadata", "credential_metadata must be a JSON object")
	}
	if err := checkMetadataShape(buf.Bytes()); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CreateCredential seals the payload and stores a new credential.
func (s *Service) CreateCredential(ctx context.Context, id *Identity, in CredentialInput) (c *Credential, err error) {
	ctx = s.auditing(ctx, id, "credential.create", "credential", func() string { return c.ID })
	ctx = s.emitting(ctx, id, EventCredentialCreated, func() EventData { return credentialEvent(c) })
	defer func() { err = s.auditResult(ctx, id, "credential.create", c, "", err) }()
	if err := id.requireAccountWide(ActWrite); err != nil {
		return nil, err
	}
	if c, err = s.newCredential(id, &in); err != nil {
		return nil, err
	}
	c.Ciphertext, err = s.sealer.Seal(in.Payload, credentialAD(c.AccountID, c.ID, c.Version))
	if err != nil {
		return nil, fmt.Errorf("create credential: seal: %w", err)
	}
	if err := s.store.CreateCredential(ctx, c); err != nil {
		return nil, credentialChangeErr(err, "credential", "", "create credential")
	}
	return c, nil
}

// credentialChangeErr maps the store's error of a change to a credential:
// a missing one is NotFound (what: "credential" or "deleted credential"), a
// taken name a Conflict on name (hint is added to its message), and the
// errors of the change's own checks pass as they are.
func credentialChangeErr(err error, what, hint, op string) error {
	switch KindOf(err) {
	case KindNotFound:
		return Errorf(KindNotFound, "%s not found", what)
	case KindConflict:
		return &Error{Kind: KindConflict, Field: "name", Msg: "a credential with this name already exists in this account" + hint, Err: err}
	case KindInvalid, KindTooLarge:
		return err
	}
	return fmt.Errorf("%s: %w", op, err)
}

// newCredential validates in and returns the credential it describes, not
// yet sealed or stored. Single and bulk creates share it.
func (s *Service) newCredential(id *Identity, in *CredentialInput) (*Credential, error) {
	if err := checkType(in.Type); err != nil {
		return nil, err
	}
	if err := checkName(in.Name); err != nil {
		return nil, err
	}
	if err := checkDescription(in.Description); err != nil {
		return nil, err
	}
	if err := s.checkPayload(in.Type, in.Payload); err != nil {
		return nil, err
	}
	meta, err := normalizeMetadata(in.Metadata)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	return &Credential{
		ID:            NewID(),
		AccountID:     id.AccountID,
		Name:          in.Name,
		Type:          in.Type,
		Description:   in.Description,
		Metadata:      meta,
		CreatedBy:     id.Principal.ID,
		CreatedByKind: id.Principal.Kind,
		CreatedAt:     now,
		UpdatedAt:     now,
		Version:       1,
		ExpiresAt:     in.ExpiresAt,
		VersionBy:     id.Principal.ID,
	}, nil
}

// auditResult records the outcome of a credential operation and returns the
// operation's error, or the audit error if the record could not be written.
func (s *Service) auditResult(ctx context.Context, id *Identity, action string, c *Credential, credID string, opErr error) error {
	return s.auditOutcome(ctx, id, action, "credential", resultID(c, credID), opErr)
}

// GetCredential returns a credential's metadata.
func (s *Service) GetCredential(ctx context.Context, id *Identity, credID string) (*Credential, error) {
	if err := id.requireAccountWide(ActRead); err != nil {
		return nil, err
	}
	return s.getCredential(ctx, id, credID, "")
}

// GetCredentialByName returns a credential's metadata by name.
func (s *Service) GetCredentialByName(ctx context.Context, id *Identity, name string) (*Credential, error) {
	if err := id.requireAccountWide(ActRead); err != nil {
		return nil, err
	}
	return s.getCredential(ctx, id, "", name)
}

func (s *Service) getCredential(ctx context.Context, id *Identity, credID, name string) (*Credential, error) {
	if !storable(credID) || !storable(name) {
		return nil, Errorf(KindNotFound, "credential not found")
	}
	var (
		c   *Credential
		err error
	)
	if name != "" {
		c, err = s.store.GetCredentialByName(ctx, id.AccountID, name)
	} else {
		c, err = s.store.GetCredential(ctx, id.AccountID, credID)
	}
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, Errorf(KindNotFound, "credential not found")
		}
		return nil, fmt.Errorf("get credential: %w", err)
	}
	return c, nil
}

// DecryptCredential returns a credential and its plaintext payload. By id
// when name is empty, else by name.
func (s *Service) DecryptCredential(ctx context.Context, id *Identity, credID, name string) (*Credential, []byte, error) {
	if err := id.requireAccountWide(ActReadSecret); err != nil {
		return nil, nil, s.auditResult(ctx, id, "credential.decrypt", nil, credID, err)
	}
	// The row may come from the store's cache (ciphertext only, coherent
	// with this server's writes at once and with other processes' within
	// the store's bound). A cached row that does not open — the key that
	// sealed it was retired by a rekey elsewhere, or the row changed behind
	// the cache — is read again from the database before anything is
	// concluded: a verdict is never drawn from a cached copy.
	c, err := s.getCredential(ctx, id, credID, name)
	if err != nil {
		return nil, nil, s.auditResult(ctx, id, "credential.decrypt", nil, credID, err)
	}
	pt, err := s.openCredential(c)
	if err != nil {
		if c, err = s.getCredential(WithFreshRead(ctx), id, credID, name); err != nil {
			return nil, nil, s.auditResult(ctx, id, "credential.decrypt", nil, credID, err)
		}
		pt, err = s.openCredential(c)
	}
	// Fail closed: no record, no secret. The record is committed before the
	// plaintext leaves this function; a failure to open is recorded as one.
	if err := s.auditResult(ctx, id, "credential.decrypt", c, "", err); err != nil {
		clear(pt)
		return nil, nil, err
	}
	s.SecretAccessed("credential.decrypt")
	return c, pt, nil
}

// openCredential opens c's payload, bound to its account, id and version.
func (s *Service) openCredential(c *Credential) ([]byte, error) {
	pt, err := s.sealer.Open(c.Ciphertext, credentialAD(c.AccountID, c.ID, c.Version))
	if err != nil {
		return nil, IntegrityError("credential", fmt.Errorf("decrypt credential %s: %w", c.ID, err))
	}
	return pt, nil
}

// UpdateCredential applies a partial update. A new payload is sealed under a
// new version.
func (s *Service) UpdateCredential(ctx context.Context, id *Identity, credID string, p CredentialPatch) (c *Credential, err error) {
	ctx = s.auditing(ctx, id, "credential.update", "credential", func() string { return credID })
	var changed *Credential
	ctx = s.emitting(ctx, id, EventCredentialUpdated, func() EventData { return credentialEvent(changed) })
	defer func() { err = s.auditResult(ctx, id, "credential.update", nil, credID, err) }()
	if err := id.requireAccountWide(ActWrite); err != nil {
		return nil, err
	}
	if p.Name != nil {
		if err := checkName(*p.Name); err != nil {
			return nil, err
		}
	}
	if p.Type != nil {
		if err := checkType(*p.Type); err != nil {
			return nil, err
		}
	}
	if p.Description != nil {
		if err := checkDescription(*p.Description); err != nil {
			return nil, err
		}
	}
	var meta json.RawMessage
	if p.Metadata != nil {
		var err error
		if meta, err = normalizeMetadata(p.Metadata); err != nil {
			return nil, err
		}
	}
	if p.Payload != nil {
		// Type may change in the same request; check against the final type below too.
		if len(p.Payload) > s.maxPayload || len(p.Payload) == 0 {
			if err := s.checkPayload("", p.Payload); err != nil {
				return nil, err
			}
		}
	}
	if !storable(credID) {
		return nil, Errorf(KindNotFound, "credential not found")
	}
	now := s.Now()
	c, err = s.store.UpdateCredential(ctx, id.AccountID, credID, func(c *Credential) error {
		patch(&c.Name, p.Name)
		patch(&c.Type, p.Type)
		patch(&c.Description, p.Description)
		if meta != nil {
			c.Metadata = meta
		}
		if p.Payload != nil {
			if err := s.checkPayload(c.Type, p.Payload); err != nil {
				return err
			}
			c.Version++
			c.VersionBy = id.Principal.ID
			ct, err := s.sealer.Seal(p.Payload, credentialAD(c.AccountID, c.ID, c.Version))
			if err != nil {
				return fmt.Errorf("seal: %w", err)
			}
			c.Ciphertext = ct
		} else if p.Type != nil && c.Type == "json" {
			// Changing the type to json requires the stored payload to be JSON.
			pt, err := s.sealer.Open(c.Ciphertext, credentialAD(c.AccountID, c.ID, c.Version))
			if err != nil {
				return IntegrityError("credential", fmt.Errorf("open credential %s: %w", c.ID, err))
			}
			if !json.Valid(pt) {
				return FieldError("type", "the stored payload is not valid JSON, so the type cannot become json without a new payload")
			}
		}
		patch(&c.ExpiresAt, p.ExpiresAt)
		c.UpdatedAt = now
		changed = c
		return nil
	})
	if err != nil {
		return nil, credentialChangeErr(err, "credential", "", "update credential")
	}
	return c, nil
}

// DeleteCredential deletes a credential.
func (s *Service) DeleteCredential(ctx context.Context, id *Identity, credID string) (err error) {
	ctx = s.auditing(ctx, id, "credential.delete", "credential", func() string { return credID })
	defer func() { err = s.auditResult(ctx, id, "credential.delete", nil, credID, err) }()
	if err := id.requireAccountWideOn(ActWrite, "credential", credID); err != nil {
		return err
	}
	// The credential goes to the trash (lifecycle.go); its name is read
	// first for the event.
	cur, err := s.getCredential(ctx, id, credID, "")
	if err != nil {
		return err
	}
	ctx = s.emitting(withDeleter(ctx, id.Principal.ID), id, EventCredentialDeleted, func() EventData { return credentialEvent(cur) })
	if err := s.store.DeleteCredential(ctx, id.AccountID, credID); err != nil {
		if KindOf(err) == KindNotFound {
			return Errorf(KindNotFound, "credential not found")
		}
		return fmt.Errorf("delete credential: %w", err)
	}
	return nil
}

// MaxListLimit is the largest page size.
const MaxListLimit = 10000

// ListCredentials returns a page of the account's credentials.
func (s *Service) ListCredentials(ctx context.Context, id *Identity, q CredentialQuery) (*CredentialPage, error) {
	if err := id.requireAccountWide(ActRead); err != nil {
		return nil, err
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return nil, FieldError("limit", "limit must be between 1 and %d", MaxListLimit)
	}
	if q.After != "" && q.Before != "" {
		return nil, FieldError("before", "a page cannot both start after one credential and end before another")
	}
	if q.SortBy == "" {
		q.SortBy = SortCreatedAt
	}
	if !IsSortField(q.SortBy) {
		return nil, FieldError("sort_by", "sort_by must be one of %v", SortFields)
	}
	// Values no credential can have: answer as the store would for an
	// unknown cursor or a name that matches nothing.
	if !storable(q.After) {
		return nil, FieldError("after", "no credential with this id exists in this account")
	}
	if !storable(q.Before) {
		return nil, FieldError("before", "no credential with this id exists in this account")
	}
	if q.Name != nil && !storable(*q.Name) {
		return &CredentialPage{Items: []Credential{}}, nil
	}
	page, err := s.store.ListCredentials(ctx, id.AccountID, q)
	if err != nil {
		if k := KindOf(err); k == KindInvalid {
			return nil, err
		}
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return page, nil
}
