package vault

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/credvault/credvault/internal/keymat"
)

// DSM security objects: generate, import, look up, list, update, delete,
// export, rekey, sign and verify.

// KeyOperations lists every DSM key operation name.
var KeyOperations = []string{"SIGN", "VERIFY", "ENCRYPT", "DECRYPT", "WRAPKEY", "UNWRAPKEY", "DERIVEKEY", "TRANSFORM", "MACGENERATE",
	"MACVERIFY", "EXPORT", "APPMANAGEABLE", "HIGHVOLUME", "AGREEKEY", "ENCAPSULATE", "DECAPSULATE"}

// implementedOps returns the key operations an object of this type (and
// public-only-ness) implements, in DSM's order.
func implementedOps(objType string, publicOnly bool) []string {
	switch objType {
	case ObjAES:
		return []string{OpEncrypt, OpDecrypt, OpWrapKey, OpUnwrapKey, OpDeriveKey, OpMacGenerate, OpMacVerify, OpExport, OpAppManageable}
	case ObjRSA:
		if publicOnly {
			return []string{OpVerify, OpEncrypt, OpWrapKey, OpExport, OpAppManageable}
		}
		return []string{OpSign, OpVerify, OpEncrypt, OpDecrypt, OpWrapKey, OpUnwrapKey, OpExport, OpAppManageable}
	case ObjEC:
		if publicOnly {
			return []string{OpVerify, OpExport, OpAppManageable}
		}
		return []string{OpSign, OpVerify, OpAgreeKey, OpExport, OpAppManageable}
	case ObjHMAC:
		return []string{OpMacGenerate, OpMacVerify, OpDeriveKey, OpExport, OpAppManageable}
	case ObjSecret:
		return []string{OpDeriveKey, OpExport, OpAppManageable}
	case ObjOpaque:
		return []string{OpExport, OpAppManageable}
	case ObjCertificate:
		return []string{OpVerify, OpEncrypt, OpWrapKey, OpExport, OpAppManageable}
	}
	return nil
}

// defaultOps: generation enables every implemented op except EXPORT,
// import enables all of them (DSM's defaults).
func defaultOps(objType string, publicOnly, generated bool) []string {
	ops := implementedOps(objType, publicOnly)
	if generated {
		ops = slices.DeleteFunc(slices.Clone(ops), func(o string) bool { return o == OpExport })
	}
	return ops
}

func checkKeyOps(objType string, publicOnly bool, ops []string) ([]string, error) {
	impl := implementedOps(objType, publicOnly)
	out := []string{}
	for _, op := range ops {
		if !slices.Contains(KeyOperations, op) {
			return nil, FieldError("key_ops", "unknown key operation in key_ops")
		}
		if op == "HIGHVOLUME" {
			out = append(out, op)
			continue
		}
		if !slices.Contains(impl, op) {
			return nil, FieldError("key_ops", "key_ops names an operation that %s objects do not implement", objType)
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, nil
}

// SobjectInput is a DSM SobjectRequest: create, import, update and rekey
// use it. Nil fields are absent.
type SobjectInput struct {
	Name               *string
	Description        *string
	GroupID            *string
	ObjType            *string
	KeySize            *int
	EllipticCurve      *string
	KeyOps             []string // nil: absent
	CustomMetadata     map[string]string
	Enabled            *bool
	AllowCredentialUse *bool
	Value              []byte // import only
	Transient          bool
	State              *string
	DeactivationDate   *time.Time
}

// SobjectDescriptor names a persisted object by kid or by name, or
// presents a transient object's handle.
type SobjectDescriptor struct {
	KID       string
	Name      string
	Transient []byte
}

func (d SobjectDescriptor) String() string {
	switch {
	case d.KID != "":
		return d.KID
	case d.Transient != nil:
		return "(transient)"
	}
	return d.Name
}

// sobjectAD is the associated data of an object's key material: it binds
// the ciphertext to its account, kid and version.
func sobjectAD(accountID, kid string, version int64) []byte {
	return []byte("credvault/sobject/v1\x00" + accountID + "\x00" + kid + "\x00" + strconv.FormatInt(version, 10))
}

func keymatErr(err error) error {
	var ke *keymat.Error
	if errors.As(err, &ke) {
		return FieldError("value", "%s", ke.Msg)
	}
	return err
}

// pickGroup resolves the group of a new object: the requested one, else
// the app's default group, else the only group in reach.
func (s *Service) pickGroup(ctx context.Context, id *Identity, requested *string) (string, error) {
	sc, err := s.scope(ctx, id)
	if err != nil {
		return "", err
	}
	if requested != nil {
		g := *requested
		if !ValidUUID(g) {
			return "", FieldError("group_id", "group_id must be a UUID")
		}
		if _, err := s.getGroup(ctx, id, sc, g); err != nil {
			return "", err
		}
		return g, nil
	}
	if sc.app != nil {
		// An app's default group; an app stored without one (its default
		// group was deleted) uses its first group.
		if sc.app.DefaultGroup != "" {
			return sc.app.DefaultGroup, nil
		}
		if len(sc.app.Groups) > 0 {
			return sc.app.Groups[0].GroupID, nil
		}
	}
	var groups []string
	if sc.all {
		gs, err := s.store.ListGroups(ctx, id.AccountID)
		if err != nil {
			return "", fmt.Errorf("pick group: %w", err)
		}
		for _, g := range gs {
			groups = append(groups, g.ID)
		}
	} else {
		groups = sc.list()
	}
	if len(groups) == 1 {
		return groups[0], nil
	}
	return "", FieldError("group_id", "group_id is required (the caller reaches %d groups)", len(groups))
}

func (s *Service) newSobject(id *Identity, in SobjectInput, groupID string, m *keymat.Material, generated bool) (*Sobject, error) {
	now := s.Now()
	o := &Sobject{
		KID: NewID(), AccountID: id.AccountID, GroupID: groupID, ObjType: m.ObjType, KeySize: m.KeySize, EllipticCurve: m.Curve,
		CustomMetadata: in.CustomMetadata, Enabled: true, State: StateActive, PublicOnly: m.PublicOnly, Creator: creatorOf(id),
		CreatedAt: now, UpdatedAt: now, ActivationDate: now, PubKey: m.PubKey, Version: 1, Origin: OriginImported,
	}
	if generated {
		o.Origin = OriginGenerated
	}
	patch(&o.Name, in.Name)
	patch(&o.Description, in.Description)
	patch(&o.Enabled, in.Enabled)
	patch(&o.AllowCredentialUse, in.AllowCredentialUse)
	if o.CustomMetadata == nil {
		o.CustomMetadata = map[string]string{}
	}
	if in.DeactivationDate != nil {
		d := *in.DeactivationDate
		o.DeactivationDate = &d
	}
	if in.KeyOps != nil {
		ops, err := checkKeyOps(o.ObjType, o.PublicOnly, in.KeyOps)
		if err != nil {
			return nil, err
		}
		o.KeyOps = ops
	} else {
		o.KeyOps = defaultOps(o.ObjType, o.PublicOnly, generated)
	}
	o.NeverExportable = !o.HasOp(OpExport)
	ct, err := s.sealer.Seal(m.Secret, sobjectAD(o.AccountID, o.KID, o.Version))
	if err != nil {
		return nil, fmt.Errorf("seal key material: %w", err)
	}
	o.Ciphertext = ct
	return o, nil
}

// checkSobjectWrite checks that the caller may write objects and that in
// is acceptable for a create (or an update).
func checkSobjectWrite(id *Identity, in *SobjectInput, create bool) error {
	if err := id.Require(ActWrite); err != nil {
		return err
	}
	if create {
		if in.Name == nil && !in.Transient { // a transient object needs no name: it is never looked up by one
			return FieldError("name", "name is required")
		}
		if in.ObjType == nil {
			return FieldError("obj_type", "obj_type is required")
		}
	} else if in.Transient {
		return FieldError("transient", "a stored security object cannot become transient")
	}
	if in.Name != nil {
		if err := checkDSMName("name", *in.Name); err != nil {
			return err
		}
	}
	return nil
}

// CreateSobject generates a new AES, RSA, EC or HMAC object.
func (s *Service) CreateSobject(ctx context.Context, id *Identity, in SobjectInput) (o *Sobject, err error) {
	ctx = s.auditing(ctx, id, "sobject.create", "sobject", func() string { return o.KID })
	defer func() { err = s.auditSobject(ctx, id, "sobject.create", o, "", err) }()
	if err := checkSobjectWrite(id, &in, true); err != nil {
		return nil, err
	}
	if in.Value != nil {
		return nil, FieldError("value", "value is only accepted when importing an object; generating one creates its material")
	}
	groupID, err := s.pickGroup(ctx, id, in.GroupID)
	if err != nil {
		return nil, err
	}
	typ := *in.ObjType
	if !keymat.Generatable(typ) {
		return nil, FieldError("obj_type", "security objects of type %s cannot be generated (generate AES, RSA, EC or HMAC; import others)", typ)
	}
	size, curve := 0, ""
	patch(&size, in.KeySize)
	patch(&curve, in.EllipticCurve)
	switch {
	case typ == ObjEC && curve == "":
		return nil, FieldError("elliptic_curve", "elliptic_curve is required for EC keys")
	case typ != ObjEC && size == 0:
		return nil, FieldError("key_size", "key_size is required for %s keys", typ)
	}
	m, err := keymat.Generate(typ, size, curve)
	if err != nil {
		return nil, keymatErr(err)
	}
	defer clear(m.Secret)
	if o, err = s.newSobject(id, in, groupID, m, true); err != nil {
		return nil, err
	}
	return s.storeNewSobject(ctx, id, in, o, "create sobject")
}

// ImportSobject imports key material given in in.Value.
func (s *Service) ImportSobject(ctx context.Context, id *Identity, in SobjectInput) (o *Sobject, err error) {
	ctx = s.auditing(ctx, id, "sobject.import", "sobject", func() string { return o.KID })
	defer func() { err = s.auditSobject(ctx, id, "sobject.import", o, "", err) }()
	if err := checkSobjectWrite(id, &in, true); err != nil {
		return nil, err
	}
	if len(in.Value) == 0 {
		return nil, FieldError("value", "value is required for import")
	}
	if err := s.checkValueSize(in.Value); err != nil {
		return nil, err
	}
	groupID, err := s.pickGroup(ctx, id, in.GroupID)
	if err != nil {
		return nil, err
	}
	m, err := keymat.Import(*in.ObjType, in.Value)
	if err != nil {
		return nil, keymatErr(err)
	}
	defer clear(m.Secret)
	if in.KeySize != nil && *in.KeySize != m.KeySize && m.ObjType != ObjEC {
		return nil, FieldError("key_size", "key_size does not match the imported key (%d bits)", m.KeySize)
	}
	if in.EllipticCurve != nil && m.Curve != "" && *in.EllipticCurve != m.Curve {
		return nil, FieldError("elliptic_curve", "elliptic_curve does not match the imported key (%s)", m.Curve)
	}
	if o, err = s.newSobject(id, in, groupID, m, false); err != nil {
		return nil, err
	}
	return s.storeNewSobject(ctx, id, in, o, "import sobject")
}

// checkValueSize refuses imported key material over the payload limit.
func (s *Service) checkValueSize(v []byte) error {
	if len(v) > s.maxPayload {
		return &Error{Kind: KindTooLarge, Field: "value", Msg: fmt.Sprintf("value exceeds the limit of %d bytes", s.maxPayload)}
	}
	return nil
}

// storeNewSobject stores a new object o, or seals it into a transient
// object's handle if in asks for one. The caller has already set its
// result to o: the audit record written with the object names it.
func (s *Service) storeNewSobject(ctx context.Context, id *Identity, in SobjectInput, o *Sobject, op string) (*Sobject, error) {
	if in.Transient {
		return s.sealTransient(id, o)
	}
	if err := s.store.CreateSobject(ctx, o); err != nil {
		return nil, mapStoreErr(conflictName(err, "security object"), "security object", op)
	}
	return o, nil
}

func (s *Service) auditSobject(ctx context.Context, id *Identity, action string, o *Sobject, kid string, opErr error) error {
	return s.auditOutcome(ctx, id, action, "sobject", resultID(o, kid), opErr)
}

// opens reports whether o's sealed key material (if it has any) opens.
func (s *Service) opens(o *Sobject) bool {
	if len(o.Ciphertext) == 0 {
		return true
	}
	key, err := s.sealer.Open(o.Ciphertext, sobjectAD(o.AccountID, o.KID, o.Version))
	clear(key)
	return err == nil
}

// findSobject resolves a descriptor within the caller's scope. Objects
// outside it are NotFound, exactly like missing ones.
func (s *Service) findSobject(ctx context.Context, id *Identity, d SobjectDescriptor) (*Sobject, error) {
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, err
	}
	var o *Sobject
	switch {
	case d.KID != "":
		if !ValidUUID(d.KID) {
			return nil, FieldError("kid", "kid must be a UUID")
		}
		o, err = s.store.GetSobject(ctx, id.AccountID, d.KID)
	case d.Name != "":
		o, err = s.store.GetSobjectByName(ctx, id.AccountID, d.Name)
	case d.Transient != nil:
		if o, err = s.openTransient(id, d.Transient); err != nil {
			return nil, err
		}
	default:
		return nil, FieldError("key", "a security object descriptor needs kid or name")
	}
	if err != nil {
		return nil, mapStoreErr(err, "security object", "get sobject")
	}
	if !s.opens(o) && !IsFreshRead(ctx) {
		// The row may come from the store's cache, and its key material
		// does not open: re-sealed by a master-key rotation elsewhere, or
		// restored behind the cache. Every check and the operation itself
		// then use the stored row; a verdict is never drawn from a copy.
		return s.findSobject(WithFreshRead(ctx), id, d)
	}
	if !sc.has(o.GroupID) {
		return nil, notFound("security object")
	}
	return o, nil
}

// ValueInInfo reports whether DSM returns an object's value with its
// metadata (a descriptor lookup) rather than only through export:
// for the types DSM treats as not sensitive, OPAQUE and CERTIFICATE.
// Never for SECRET, AES, HMAC or private keys.
func ValueInInfo(objType string) bool { return objType == ObjOpaque || objType == ObjCertificate }

// GetSobject looks an object up: metadata and public key, and for the
// types of ValueInInfo also the value. A certificate is public; an OPAQUE
// value is shown only to callers allowed to read secrets (for others it is
// left out), and each such read is audited like an export, fail closed.
func (s *Service) GetSobject(ctx context.Context, id *Identity, d SobjectDescriptor) (o *Sobject, value []byte, err error) {
	if err := id.Require(ActRead); err != nil {
		return nil, nil, err
	}
	o, err = s.findSobject(ctx, id, d)
	if err != nil {
		return nil, nil, err
	}
	ct := o.Ciphertext
	o.Ciphertext = nil
	if !ValueInInfo(o.ObjType) || (o.ObjType == ObjOpaque && !id.Role.Allows(ActReadSecret)) {
		return o, nil, nil
	}
	if o.ObjType == ObjOpaque {
		if err := s.auditSobject(ctx, id, "sobject.read_value", o, "", nil); err != nil {
			return nil, nil, err
		}
	}
	value, err = s.sealer.Open(ct, sobjectAD(o.AccountID, o.KID, o.Version))
	if err != nil {
		return nil, nil, Wrap(KindInternal, fmt.Errorf("open sobject %s: %w", o.KID, err), "the security object's value cannot be decrypted")
	}
	if o.ObjType == ObjOpaque {
		s.SecretAccessed("sobject.read_value")
	}
	return o, value, nil
}

// SobjectListQuery selects one page of security objects: every non-empty
// field is a condition that must hold.
type SobjectListQuery struct {
	GroupID        string
	Creator        string
	Name           string
	ObjType        string
	CustomMetadata map[string]string // key → value; "" also matches an absent key
	SortBy         string            // "kid" (default) or "name"
	Desc           bool
	Start          string // return only objects after this kid or name in the sort order (exclusive)
	Limit          int
	Offset         int
	Count          bool // also count the objects in reach and those matching
}

// SobjectPage is one page of a listing.
type SobjectPage struct {
	Items         []Sobject
	TotalCount    int // objects in reach (with Count)
	FilteredCount int // objects matching the filters (with Count)
}

// MaxSobjectListLimit is the largest page.
const MaxSobjectListLimit = 1000

// ListSobjects lists objects in the caller's groups. The store filters,
// orders and pages, so a page costs the same wherever it is in the list
// (Offset aside, which the store must still skip over).
func (s *Service) ListSobjects(ctx context.Context, id *Identity, q SobjectListQuery) (*SobjectPage, error) {
	if q.Limit <= 0 || q.Limit > MaxSobjectListLimit {
		q.Limit = MaxSobjectListLimit
	}
	q.Offset = max(q.Offset, 0)
	if q.SortBy != "name" {
		q.SortBy = "kid"
	}
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) (*SobjectPage, error) {
		if q.GroupID != "" {
			if _, err := s.getGroup(ctx, id, sc, q.GroupID); err != nil {
				return nil, err
			}
		}
		page, err := s.store.ListSobjects(ctx, id.AccountID, sc.list(), q)
		if err != nil {
			return nil, fmt.Errorf("list sobjects: %w", err)
		}
		return page, nil
	})
}

// UpdateSobject changes an object's name, description, enabled state,
// key_ops, custom metadata, allow_credential_use or deactivation date.
func (s *Service) UpdateSobject(ctx context.Context, id *Identity, kid string, in SobjectInput) (o *Sobject, err error) {
	ctx = s.auditing(ctx, id, "sobject.update", "sobject", func() string { return kid })
	defer func() { err = s.auditSobject(ctx, id, "sobject.update", nil, kid, err) }()
	if err := checkSobjectWrite(id, &in, false); err != nil {
		return nil, err
	}
	if in.Value != nil {
		return nil, FieldError("value", "key material cannot be changed; use rekey")
	}
	cur, err := s.findSobject(ctx, id, SobjectDescriptor{KID: kid})
	if err != nil {
		return nil, err
	}
	if err := s.manageable(ctx, id, cur); err != nil {
		return nil, err
	}
	if in.GroupID != nil && *in.GroupID != cur.GroupID {
		return nil, FieldError("group_id", "moving security objects between groups is not supported")
	}
	if in.ObjType != nil && *in.ObjType != cur.ObjType {
		return nil, FieldError("obj_type", "obj_type cannot be changed")
	}
	if (in.KeySize != nil && *in.KeySize != cur.KeySize) || (in.EllipticCurve != nil && *in.EllipticCurve != cur.EllipticCurve) {
		return nil, FieldError("key_size", "key_size and elliptic_curve cannot be changed; use rekey")
	}
	if in.State != nil && *in.State != cur.State {
		if !(*in.State == StateDeactivated && cur.State == StateActive) {
			return nil, FieldError("state", "state can only change from Active to Deactivated")
		}
	}
	now := s.Now()
	o, err = s.store.UpdateSobject(ctx, id.AccountID, kid, func(o *Sobject) error {
		patch(&o.Name, in.Name)
		patch(&o.Description, in.Description)
		patch(&o.Enabled, in.Enabled)
		patch(&o.AllowCredentialUse, in.AllowCredentialUse)
		if in.CustomMetadata != nil {
			o.CustomMetadata = in.CustomMetadata
		}
		if in.KeyOps != nil {
			ops, err := checkKeyOps(o.ObjType, o.PublicOnly, in.KeyOps)
			if err != nil {
				return err
			}
			if o.NeverExportable && slices.Contains(ops, OpExport) {
				return FieldError("key_ops", "EXPORT cannot be added to an object that was never exportable")
			}
			o.KeyOps = ops
		}
		if in.DeactivationDate != nil {
			d := *in.DeactivationDate
			o.DeactivationDate = &d
		}
		if in.State != nil && *in.State == StateDeactivated && o.State == StateActive {
			o.State, o.DeactivationDate = StateDeactivated, &now
		}
		o.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, mapStoreErr(conflictName(err, "security object"), "security object", "update sobject")
	}
	o.Ciphertext = nil
	return o, nil
}

// manageable refuses to let a crypto app update, delete or rotate o when
// o's key_ops lack APPMANAGEABLE, as DSM does; users, service accounts and
// admin apps manage it either way.
func (s *Service) manageable(ctx context.Context, id *Identity, o *Sobject) error {
	if id.Principal.Kind != PrincipalApp || o.HasOp(OpAppManageable) {
		return nil
	}
	sc, err := s.scope(ctx, id)
	if err != nil {
		return err
	}
	if sc.app.Role == DSMRoleCrypto {
		return Errorf(KindPermissionDenied, "the object's key_ops lack APPMANAGEABLE: a crypto app may not update, delete or rotate it")
	}
	return nil
}

// DeleteSobject deletes an object that no credential references.
func (s *Service) DeleteSobject(ctx context.Context, id *Identity, kid string) (err error) {
	ctx = s.auditing(ctx, id, "sobject.delete", "sobject", func() string { return kid })
	defer func() { err = s.auditSobject(ctx, id, "sobject.delete", nil, kid, err) }()
	if err := id.Require(ActWrite); err != nil {
		return err
	}
	o, err := s.findSobject(ctx, id, SobjectDescriptor{KID: kid})
	if err != nil {
		return err
	}
	if err := s.manageable(ctx, id, o); err != nil {
		return err
	}
	if err := s.store.DeleteSobject(ctx, id.AccountID, kid); err != nil {
		return mapStoreErr(err, "security object", "delete sobject")
	}
	return nil
}

// ExportSobject returns an object with its key material. Only objects with
// EXPORT in key_ops can be exported; every export is audited, and without
// an audit record there is no export (fail closed).
func (s *Service) ExportSobject(ctx context.Context, id *Identity, d SobjectDescriptor) (*Sobject, []byte, error) {
	fail := func(o *Sobject, err error) (*Sobject, []byte, error) {
		return nil, nil, s.auditSobject(ctx, id, "sobject.export", o, "", err)
	}
	if err := id.Require(ActReadSecret); err != nil {
		return fail(nil, err)
	}
	o, err := s.findSobject(ctx, id, d)
	if err != nil {
		return fail(nil, err)
	}
	if !o.HasOp(OpExport) {
		return fail(o, Errorf(KindPermissionDenied, "the security object is not exportable (EXPORT is not among its key_ops)"))
	}
	if err := s.auditSobject(ctx, id, "sobject.export", o, "", nil); err != nil {
		return nil, nil, err
	}
	value, err := s.sealer.Open(o.Ciphertext, sobjectAD(o.AccountID, o.KID, o.Version))
	if err != nil {
		return nil, nil, IntegrityError("key material", fmt.Errorf("open sobject %s: %w", o.KID, err))
	}
	s.SecretAccessed("sobject.export")
	o.Ciphertext = nil
	return o, value, nil
}

// RekeyInput asks for a replacement of the object named by In.Name; other
// fields override the copied properties.
type RekeyInput struct {
	In         SobjectInput
	Deactivate bool
	// Retired names the replaced object (nil: RetiredNameRFC3339).
	Retired RetiredName
}

// RetiredName is the name a replaced object takes when a rekey at at gives
// its name to the replacement; each dialect may write the time its own way.
type RetiredName func(name string, at time.Time) string

// RetiredNameRFC3339 is "<name> (rotated at <RFC 3339 time>)".
func RetiredNameRFC3339(name string, at time.Time) string {
	return name + " (rotated at " + at.UTC().Format(time.RFC3339) + ")"
}

// planRekey generates the replacement of old (outside any transaction:
// RSA generation can take a while).
func (s *Service) planRekey(id *Identity, old *Sobject, in SobjectInput, deactivate bool, at time.Time, retired RetiredName) (*RekeyStep, error) {
	m, err := s.rekeyMaterial(old, in)
	if err != nil {
		return nil, err
	}
	defer clear(m.Secret)
	generated := in.Value == nil
	ni := SobjectInput{Name: &old.Name, Description: &old.Description, CustomMetadata: old.CustomMetadata, KeyOps: old.KeyOps,
		Enabled: &old.Enabled, AllowCredentialUse: &old.AllowCredentialUse}
	if in.Description != nil {
		ni.Description = in.Description
	}
	if in.CustomMetadata != nil {
		ni.CustomMetadata = in.CustomMetadata
	}
	if in.KeyOps != nil {
		ni.KeyOps = in.KeyOps
	}
	if in.Enabled != nil {
		ni.Enabled = in.Enabled
	}
	if in.AllowCredentialUse != nil {
		ni.AllowCredentialUse = in.AllowCredentialUse
	}
	if old.PublicOnly != m.PublicOnly {
		// The replacement has (or lacks) a private key: give it the ops
		// that fit.
		ni.KeyOps = defaultOps(old.ObjType, m.PublicOnly, generated)
	}
	n, err := s.newSobject(id, ni, old.GroupID, m, generated)
	if err != nil {
		return nil, err
	}
	n.Replaced = old.KID
	n.CreatedAt, n.UpdatedAt, n.ActivationDate = at, at, at
	if old.NeverExportable && n.HasOp(OpExport) {
		return nil, FieldError("key_ops", "EXPORT cannot be added to the replacement of an object that was never exportable")
	}
	return &RekeyStep{Old: old, OldNewName: retired(old.Name, at), Deactivate: deactivate, New: n}, nil
}

// rekeyMaterial is the replacement's material: in.Value imported as the
// old object's type when given (the only way to rotate SECRET, OPAQUE and
// CERTIFICATE objects, whose material credvault cannot make), else new
// material generated with the old object's (or in's) size and curve.
func (s *Service) rekeyMaterial(old *Sobject, in SobjectInput) (*keymat.Material, error) {
	if in.Value != nil {
		if len(in.Value) == 0 {
			return nil, FieldError("value", "value must not be empty")
		}
		if err := s.checkValueSize(in.Value); err != nil {
			return nil, err
		}
		m, err := keymat.Import(old.ObjType, in.Value)
		if err != nil {
			return nil, keymatErr(err)
		}
		return m, nil
	}
	if !keymat.Generatable(old.ObjType) {
		return nil, FieldError("value", "security objects of type %s are rotated with new material given in value (credvault generates only AES, RSA, EC and HMAC material)", old.ObjType)
	}
	size, curve := old.KeySize, old.EllipticCurve
	if in.KeySize != nil && old.ObjType != ObjEC {
		size = *in.KeySize
	}
	if in.EllipticCurve != nil && old.ObjType == ObjEC {
		curve = *in.EllipticCurve
	}
	m, err := keymat.Generate(old.ObjType, size, curve)
	if err != nil {
		return nil, keymatErr(err)
	}
	return m, nil
}

// RekeySobject replaces an object by a new one with new key material, as
// DSM does: the old object is renamed (RekeyInput.Retired), linked to
// the new one (links.replacement / links.replaced), and deactivated if
// asked; the new object takes the original name.
func (s *Service) RekeySobject(ctx context.Context, id *Identity, r RekeyInput) (o *Sobject, err error) {
	ctx = s.auditing(ctx, id, "sobject.rekey", "sobject", func() string { return o.KID })
	defer func() { err = s.auditSobject(ctx, id, "sobject.rekey", o, "", err) }()
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	if r.In.Name == nil {
		return nil, FieldError("name", "name (of the security object to rotate) is required")
	}
	if r.In.Transient {
		return nil, FieldError("transient", "a rotation replaces a stored security object with a stored one; transient objects are not rotated")
	}
	old, err := s.findSobject(ctx, id, SobjectDescriptor{Name: *r.In.Name})
	if err != nil {
		return nil, err
	}
	if err := s.manageable(ctx, id, old); err != nil {
		return nil, err
	}
	if r.In.ObjType != nil && *r.In.ObjType != old.ObjType {
		return nil, FieldError("obj_type", "obj_type must stay %s", old.ObjType)
	}
	if r.In.GroupID != nil && *r.In.GroupID != old.GroupID {
		return nil, FieldError("group_id", "the replacement stays in the group of the rotated object")
	}
	if old.Replacement != "" {
		return nil, Errorf(KindConflict, "the security object was already rotated")
	}
	at := s.Now()
	if r.Retired == nil {
		r.Retired = RetiredNameRFC3339
	}
	st, err := s.planRekey(id, old, r.In, r.Deactivate, at, r.Retired)
	if err != nil {
		return nil, err
	}
	o = st.New // named by the audit record written with the change
	if err := s.store.Rekey(ctx, id.AccountID, RekeyPlan{At: at, Steps: []RekeyStep{*st}, Hook: s.rekeyHook}); err != nil {
		return nil, mapStoreErr(conflictName(err, "security object"), "security object", "rekey sobject")
	}
	st.New.Ciphertext = nil
	return st.New, nil
}

// SignInput is a signing or verification request.
type SignInput struct {
	Key       SobjectDescriptor
	HashAlg   string
	Hash      []byte // exactly one of Hash and Data
	Data      []byte
	PSS       bool
	MGFHash   string // PSS: MGF1 hash ("" = HashAlg); may differ from HashAlg
	Signature []byte // verify only
}

func (in *SignInput) digest() (crypto.Hash, []byte, keymat.Padding, crypto.Hash, error) {
	h, err := keymat.Hash(in.HashAlg)
	if err != nil {
		return 0, nil, 0, 0, FieldError("hash_alg", "hash_alg: %s", err.Error())
	}
	switch {
	case in.Hash != nil && in.Data != nil:
		return 0, nil, 0, 0, FieldError("hash", "give either hash or data, not both")
	case in.Hash == nil && in.Data == nil:
		return 0, nil, 0, 0, FieldError("hash", "hash or data is required")
	}
	d := in.Hash
	if in.Data != nil {
		hh := h.New()
		hh.Write(in.Data)
		d = hh.Sum(nil)
	} else if len(d) != h.Size() {
		return 0, nil, 0, 0, FieldError("hash", "hash must be %d bytes for this hash_alg", h.Size())
	}
	pad, mgf := keymat.PKCS1v15, crypto.Hash(0)
	if in.PSS {
		pad, mgf = keymat.PSS, h
		if in.MGFHash != "" {
			if mgf, err = keymat.Hash(in.MGFHash); err != nil {
				return 0, nil, 0, 0, FieldError("mode", "mode.PSS.mgf.mgf1.hash: %s", err.Error())
			}
		}
	}
	return h, d, pad, mgf, nil
}

// signature is a signing or verification request checked and resolved:
// the key and what is signed.
type signature struct {
	o      *Sobject
	h, mgf crypto.Hash
	d      []byte
	pad    keymat.Padding
}

// signatureKey checks that the caller may sign or verify and in's digest
// (and, to verify, that there is a signature), then resolves the key.
func (s *Service) signatureKey(ctx context.Context, id *Identity, in *SignInput, verify bool) (*signature, error) {
	if err := id.Require(ActWrite); err != nil {
		return nil, err
	}
	h, d, pad, mgf, err := in.digest()
	if err != nil {
		return nil, err
	}
	if verify && in.Signature == nil {
		return nil, FieldError("signature", "signature is required")
	}
	o, err := s.findSobject(ctx, id, in.Key)
	if err != nil {
		return nil, err
	}
	return &signature{o: o, h: h, mgf: mgf, d: d, pad: pad}, nil
}

// Sign signs with an RSA or EC private key that has SIGN in key_ops.
func (s *Service) Sign(ctx context.Context, id *Identity, in SignInput) (kid string, sig []byte, err error) {
	defer func() { err = s.auditSobject(ctx, id, "sobject.sign", nil, kid, err) }()
	sg, err := s.signatureKey(ctx, id, &in, false)
	if err != nil {
		return "", nil, err
	}
	o := sg.o
	kid = o.KID
	if (o.ObjType != ObjRSA && o.ObjType != ObjEC) || o.PublicOnly {
		return kid, nil, FieldError("key", "signing needs an RSA or EC private key; this object is %s%s", o.ObjType, map[bool]string{true: " (public only)"}[o.PublicOnly])
	}
	if in.PSS && o.ObjType != ObjRSA {
		return kid, nil, FieldError("mode", "PSS padding applies to RSA keys only")
	}
	if !o.HasOp(OpSign) {
		return kid, nil, Errorf(KindPermissionDenied, "SIGN is not among the security object's key_ops")
	}
	if !o.Active(s.Now()) {
		return kid, nil, FieldError("key", "the security object is disabled or deactivated and cannot sign")
	}
	ad := sobjectAD(o.AccountID, o.KID, o.Version)
	k, err := s.signers.signer(o.Ciphertext, ad, func() ([]byte, error) {
		secret, err := s.sealer.Open(o.Ciphertext, ad)
		if err != nil {
			return nil, IntegrityError("key material", fmt.Errorf("open sobject %s: %w", o.KID, err))
		}
		return secret, nil
	})
	if err != nil {
		return kid, nil, err
	}
	sig, err = keymat.SignWith(k, sg.h, sg.d, sg.pad, sg.mgf)
	if err != nil {
		return kid, nil, keymatErr(err)
	}
	return kid, sig, nil
}

// Verify checks a signature with an object's public key; the object needs
// VERIFY in key_ops. A deactivated key still verifies. Every verification
// is audited, like a signature.
func (s *Service) Verify(ctx context.Context, id *Identity, in SignInput) (kid string, ok bool, err error) {
	defer func() { err = s.auditSobject(ctx, id, "sobject.verify", nil, kid, err) }()
	sg, err := s.signatureKey(ctx, id, &in, true)
	if err != nil {
		return "", false, err
	}
	o := sg.o
	if len(o.PubKey) == 0 || (o.ObjType != ObjRSA && o.ObjType != ObjEC && o.ObjType != ObjCertificate) {
		return o.KID, false, FieldError("key", "verifying needs an RSA or EC key or a certificate; this object is %s", o.ObjType)
	}
	if !o.HasOp(OpVerify) {
		return o.KID, false, Errorf(KindPermissionDenied, "VERIFY is not among the security object's key_ops")
	}
	if !o.Enabled {
		return o.KID, false, FieldError("key", "the security object is disabled")
	}
	ok, err = keymat.Verify(o.PubKey, sg.h, sg.d, in.Signature, sg.pad, sg.mgf)
	if err != nil {
		return o.KID, false, keymatErr(err)
	}
	return o.KID, ok, nil
}
