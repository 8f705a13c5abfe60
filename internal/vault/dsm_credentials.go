package vault

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Integration credentials: create, list, get, update, delete, rotate.
//
// Errors about a credential's details name the field by its path in
// domain terms, in Field and at the start of the message: "details" for
// the whole, "details.<field>" (e.g. details.signing_key) for one of
// them. A dialect renders the path in its own wire names.

// IntegrationCredentialInput creates or updates a credential; nil fields
// are absent. Description set to a pointer to "" clears it.
type IntegrationCredentialInput struct {
	Name        *string
	Description *string
	GroupID     *string
	Details     *CredentialDetails
}

// checkVariant returns the variant of d, which must be in Credentials. Its
// errors name the field in domain terms: details.provider, details.auth.
func checkVariant(d *CredentialDetails) (*CredentialVariant, error) {
	auths := Credentials.Auths(d.Provider)
	if len(auths) == 0 {
		return nil, FieldError("details.provider", "unknown details.provider (supported: %s)", strings.Join(Credentials.Providers(), ", "))
	}
	v := Credentials.Variant(d.Provider, d.Auth)
	if v == nil {
		return nil, FieldError("details.auth", "unknown details.auth for %s (supported: %s)", d.Provider, strings.Join(auths, ", "))
	}
	return v, nil
}

// checkDetails checks that d is a known variant with every field that
// variant has, and that its references are security object ids.
func checkDetails(d *CredentialDetails) error {
	v, err := checkVariant(d)
	if err != nil {
		return err
	}
	for _, f := range v.Fields {
		val := d.Field(f.Name)
		switch {
		case strings.TrimSpace(val) == "":
			return FieldError("details."+f.Name, "details.%s is required", f.Name)
		case f.Ref != nil && !ValidUUID(val):
			return FieldError("details."+f.Name, "details.%s must be a security object id (UUID)", f.Name)
		}
	}
	return nil
}

// checkRefs verifies, with a transactional reader, that every object d
// references is in the same account and group, may be used by
// credentials and is what its field needs. Objects the caller cannot
// reach are reported exactly like missing ones.
func checkRefs(get SobjectGetter, sc *dsmScope, groupID string, d *CredentialDetails) error {
	for _, r := range d.Refs() {
		where := "details." + r.Field
		o, err := get(r.KID)
		if err != nil {
			if KindOf(err) == KindNotFound {
				return FieldError(where, "%s: the referenced security object was not found", where)
			}
			return err
		}
		if o.GroupID != groupID {
			if !sc.has(o.GroupID) {
				return FieldError(where, "%s: the referenced security object was not found", where)
			}
			return FieldError(where, "%s: the referenced security object is in another group; a credential may only reference objects of its own group", where)
		}
		if !o.AllowCredentialUse {
			return FieldError(where, "%s: the referenced security object does not have allow_credential_use set", where)
		}
		if publicOnly := r.Need.Private && o.PublicOnly; !slices.Contains(r.Need.Types, o.ObjType) || publicOnly {
			return FieldError(where, "%s: the referenced security object must be %s, not %s%s", where, r.Need.What, o.ObjType,
				map[bool]string{true: " (public only)"}[publicOnly])
		}
	}
	return nil
}

func (s *Service) auditCred(ctx context.Context, id *Identity, action, credID string, opErr error) error {
	return s.auditOutcome(ctx, id, action, "credential", credID, opErr)
}

// CreateIntegrationCredential creates a credential in a group the caller reaches.
func (s *Service) CreateIntegrationCredential(ctx context.Context, id *Identity, in IntegrationCredentialInput) (c *IntegrationCredential, err error) {
	ctx = s.auditing(ctx, id, "integration_credential.create", "credential", func() string { return c.ID })
	defer func() { err = s.auditCred(ctx, id, "integration_credential.create", resultID(c, ""), err) }()
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	switch {
	case in.Name == nil:
		return nil, FieldError("name", "name is required")
	case in.GroupID == nil:
		return nil, FieldError("group_id", "group_id is required")
	case in.Details == nil:
		return nil, FieldError("details", "details is required")
	}
	if err := checkDSMName("name", *in.Name); err != nil {
		return nil, err
	}
	if !ValidUUID(*in.GroupID) {
		return nil, FieldError("group_id", "group_id must be a UUID")
	}
	if err := checkDetails(in.Details); err != nil {
		return nil, err
	}
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, err
	}
	if _, err := s.getGroup(ctx, id, sc, *in.GroupID); err != nil {
		return nil, err
	}
	now := s.Now()
	c = &IntegrationCredential{ID: NewID(), AccountID: id.AccountID, GroupID: *in.GroupID, Name: *in.Name, Description: in.Description,
		Details: *in.Details, Creator: creatorOf(id), CreatedAt: now, UpdatedAt: now}
	err = s.store.CreateIntegrationCredential(ctx, c, func(get SobjectGetter) error {
		return checkRefs(get, sc, c.GroupID, &c.Details)
	})
	if err != nil {
		return nil, mapStoreErr(conflictName(err, "credential"), "credential", "create integration credential")
	}
	return c, nil
}

// findCredential returns a credential the caller reaches, and the
// caller's scope. Credentials outside it are NotFound, like missing ones.
func (s *Service) findCredential(ctx context.Context, id *Identity, credID string) (*IntegrationCredential, *dsmScope, error) {
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if !ValidUUID(credID) {
		return nil, nil, FieldError("cred_id", "cred_id must be a UUID")
	}
	c, err := s.store.GetIntegrationCredential(ctx, id.AccountID, credID)
	if err != nil {
		return nil, nil, mapStoreErr(err, "credential", "get integration credential")
	}
	if !sc.has(c.GroupID) {
		return nil, nil, notFound("credential")
	}
	return c, sc, nil
}

// GetIntegrationCredential returns a credential the caller reaches.
func (s *Service) GetIntegrationCredential(ctx context.Context, id *Identity, credID string) (*IntegrationCredential, error) {
	if err := id.Require(ActRead); err != nil {
		return nil, err
	}
	c, _, err := s.findCredential(ctx, id, credID)
	return c, err
}

// CredentialListQuery selects one page of integration credentials.
type CredentialListQuery struct {
	Limit  int
	Offset int
	Filter CredentialFilter
	SortBy string // "id" (default) or "name"
	Desc   bool
	Start  string // return only credentials after this id or name in the sort order (exclusive)
}

// CredentialFilter holds the conditions of a credential listing, all of
// which must hold. A nil list is no condition; a credential matches a
// non-nil list when its value is in it (so an empty list matches nothing).
type CredentialFilter struct {
	Names    []string
	GroupIDs []string
	IDs      []string
	Types    []string // providers: ProviderOCI, ProviderAzure
	Creators []string // creator principal ids
}

// CredentialListPage is one page of a listing.
type CredentialListPage struct {
	Items         []IntegrationCredential
	TotalCount    int // credentials in reach
	FilteredCount int // credentials matching the filter
}

// MaxCredentialListLimit is the largest (and default) page.
const MaxCredentialListLimit = 1000

// ListIntegrationCredentials lists credentials in the caller's groups; the
// store filters, orders and pages.
func (s *Service) ListIntegrationCredentials(ctx context.Context, id *Identity, q CredentialListQuery) (*CredentialListPage, error) {
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) (*CredentialListPage, error) {
		if q.Limit == 0 {
			q.Limit = MaxCredentialListLimit
		}
		if q.Limit < 0 || q.Limit > MaxCredentialListLimit {
			return nil, FieldError("limit", "limit must be between 1 and %d", MaxCredentialListLimit)
		}
		if q.Offset < 0 {
			return nil, FieldError("offset", "offset must not be negative")
		}
		if q.SortBy != "name" {
			q.SortBy = "id"
		}
		page, err := s.store.ListIntegrationCredentials(ctx, id.AccountID, sc.list(), q)
		if err != nil {
			return nil, fmt.Errorf("list integration credentials: %w", err)
		}
		return page, nil
	})
}

// UpdateIntegrationCredential changes name, description or details. New
// details are checked like on create.
func (s *Service) UpdateIntegrationCredential(ctx context.Context, id *Identity, credID string, in IntegrationCredentialInput) (c *IntegrationCredential, err error) {
	ctx = s.auditing(ctx, id, "integration_credential.update", "credential", func() string { return credID })
	defer func() { err = s.auditCred(ctx, id, "integration_credential.update", credID, err) }()
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	if in.GroupID != nil {
		return nil, FieldError("group_id", "group_id cannot be changed")
	}
	if in.Name != nil {
		if err := checkDSMName("name", *in.Name); err != nil {
			return nil, err
		}
	}
	if in.Details != nil {
		if err := checkDetails(in.Details); err != nil {
			return nil, err
		}
	}
	_, sc, err := s.findCredential(ctx, id, credID)
	if err != nil {
		return nil, err
	}
	now := s.Now()
	c, err = s.store.UpdateIntegrationCredential(ctx, id.AccountID, credID, func(c *IntegrationCredential, get SobjectGetter) error {
		patch(&c.Name, in.Name)
		if in.Description != nil {
			c.Description = in.Description
		}
		if in.Details != nil {
			if err := checkRefs(get, sc, c.GroupID, in.Details); err != nil {
				return err
			}
			c.Details = *in.Details
		}
		c.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, mapStoreErr(conflictName(err, "credential"), "credential", "update integration credential")
	}
	return c, nil
}

// DeleteIntegrationCredential deletes a credential (not the objects it references).
func (s *Service) DeleteIntegrationCredential(ctx context.Context, id *Identity, credID string) (err error) {
	ctx = s.auditing(ctx, id, "integration_credential.delete", "credential", func() string { return credID })
	defer func() { err = s.auditCred(ctx, id, "integration_credential.delete", credID, err) }()
	if err := id.Require(ActWrite); err != nil {
		return err
	}
	if _, _, err := s.findCredential(ctx, id, credID); err != nil {
		return err
	}
	if err := s.store.DeleteIntegrationCredential(ctx, id.AccountID, credID); err != nil {
		return mapStoreErr(err, "credential", "delete integration credential")
	}
	return nil
}

// checkRotationMethod checks that method is one of
// Credentials.RotationMethods (the field is "method").
func checkRotationMethod(method string) error {
	if !slices.Contains(Credentials.RotationMethods, method) {
		return FieldError("method", "unknown method (supported: %s)", strings.Join(Credentials.RotationMethods, ", "))
	}
	return nil
}

// RotateIntegrationCredential rotates with method Generate: every object
// the credential references gets new material by rekey (the old object is
// renamed, linked and deactivated), and the credential points at the new
// objects — all in one transaction. Variants whose material only the cloud
// provider can issue (CredentialVariant.NotRotatable) are refused, with
// nothing changed. Replaced objects are renamed by retired (nil: RetiredNameRFC3339).
func (s *Service) RotateIntegrationCredential(ctx context.Context, id *Identity, credID, method string, retired RetiredName) (c *IntegrationCredential, err error) {
	ctx = s.auditing(ctx, id, "integration_credential.rotate", "credential", func() string { return credID })
	var rotatedName string
	ctx = s.emitting(ctx, id, EventIntegrationRotated, func() EventData {
		return EventData{ObjectType: "integration_credential", ObjectID: credID, Name: rotatedName}
	})
	defer func() { err = s.auditCred(ctx, id, "integration_credential.rotate", credID, err) }()
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	if err := checkRotationMethod(method); err != nil {
		return nil, err
	}
	cur, _, err := s.findCredential(ctx, id, credID)
	if err != nil {
		return nil, err
	}
	rotatedName = cur.Name
	v, err := checkVariant(&cur.Details)
	if err != nil {
		return nil, err
	}
	if v.NotRotatable != "" {
		return nil, Errorf(KindInvalid, "%s %s credentials cannot be rotated by credvault: %s", v.Provider, v.Auth, v.NotRotatable)
	}
	if retired == nil {
		retired = RetiredNameRFC3339
	}
	at := s.Now()
	plan := RekeyPlan{At: at, Credential: cur, Hook: s.rekeyHook}
	details := cur.Details
	for _, r := range cur.Details.Refs() {
		old, err := s.store.GetSobject(ctx, id.AccountID, r.KID)
		if err != nil {
			return nil, mapStoreErr(err, "security object "+r.KID, "rotate credential")
		}
		if err := s.manageable(ctx, id, old); err != nil {
			return nil, err
		}
		if old.ObjType != ObjRSA && old.ObjType != ObjEC {
			return nil, FieldError("details."+r.Field, "details.%s: a %s object cannot be regenerated by credvault", r.Field, old.ObjType)
		}
		if old.Replacement != "" {
			return nil, Errorf(KindConflict, "security object %s was already rotated; update the credential to reference its replacement", old.KID)
		}
		st, err := s.planRekey(id, old, SobjectInput{}, true, at, retired)
		if err != nil {
			return nil, err
		}
		plan.Steps = append(plan.Steps, *st)
		details.SetField(r.Field, st.New.KID)
	}
	plan.CredentialDetails = &details
	if err := s.store.Rekey(ctx, id.AccountID, plan); err != nil {
		return nil, mapStoreErr(conflictName(err, "security object"), "credential", "rotate credential")
	}
	c, err = s.store.GetIntegrationCredential(ctx, id.AccountID, credID)
	if err != nil {
		return nil, mapStoreErr(err, "credential", "rotate credential")
	}
	return c, nil
}
