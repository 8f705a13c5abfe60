package vault

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"slices"
	"time"
)

// DSM groups and apps.

// GroupInput creates or updates a group; nil fields are left unchanged.
type GroupInput struct {
	Name           *string
	Description    *string
	CustomMetadata map[string]string // nil: unchanged
}

// CreateGroup creates a group. An app that creates a group becomes its member.
func (s *Service) CreateGroup(ctx context.Context, id *Identity, in GroupInput) (g *Group, err error) {
	ctx = s.auditing(ctx, id, "group.create", "group", func() string { return g.ID })
	defer func() { err = s.auditOutcome(ctx, id, "group.create", "group", resultID(g, ""), err) }()
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	if in.Name == nil {
		return nil, FieldError("name", "name is required")
	}
	if err := checkDSMName("name", *in.Name); err != nil {
		return nil, err
	}
	now := s.Now()
	g = &Group{ID: NewID(), AccountID: id.AccountID, Name: *in.Name, CustomMetadata: in.CustomMetadata, Creator: creatorOf(id), CreatedAt: now, UpdatedAt: now}
	patch(&g.Description, in.Description)
	if g.CustomMetadata == nil {
		g.CustomMetadata = map[string]string{}
	}
	if err := s.store.CreateGroup(ctx, g); err != nil {
		return nil, mapStoreErr(conflictName(err, "group"), "group", "create group")
	}
	if id.Principal.Kind == PrincipalApp {
		_, err := s.store.UpdateApp(ctx, id.AccountID, id.Principal.ID, func(a *App) error {
			a.Groups = append(a.Groups, AppGroup{GroupID: g.ID, Permissions: allGroupPermissions()})
			a.UpdatedAt = now
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("create group: add creator app: %w", err)
		}
	}
	return g, nil
}

// ListGroups returns the groups the caller reaches.
func (s *Service) ListGroups(ctx context.Context, id *Identity) ([]Group, error) {
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) ([]Group, error) {
		all, err := s.store.ListGroups(ctx, id.AccountID)
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		return slices.DeleteFunc(all, func(g Group) bool { return !sc.has(g.ID) }), nil
	})
}

// GetGroup returns a group the caller reaches.
func (s *Service) GetGroup(ctx context.Context, id *Identity, groupID string) (*Group, error) {
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) (*Group, error) { return s.getGroup(ctx, id, sc, groupID) })
}

func (s *Service) getGroup(ctx context.Context, id *Identity, sc *dsmScope, groupID string) (*Group, error) {
	if !sc.has(groupID) {
		return nil, notFound("group")
	}
	g, err := s.store.GetGroup(ctx, id.AccountID, groupID)
	if err != nil {
		return nil, mapStoreErr(err, "group", "get group")
	}
	return g, nil
}

// UpdateGroup changes a group's name, description or custom metadata.
func (s *Service) UpdateGroup(ctx context.Context, id *Identity, groupID string, in GroupInput) (g *Group, err error) {
	ctx = s.auditing(ctx, id, "group.update", "group", func() string { return groupID })
	defer func() { err = s.auditOutcome(ctx, id, "group.update", "group", groupID, err) }()
	if err := s.groupInReach(ctx, id, ActAdmin, groupID); err != nil {
		return nil, err
	}
	if in.Name != nil {
		if err := checkDSMName("name", *in.Name); err != nil {
			return nil, err
		}
	}
	now := s.Now()
	g, err = s.store.UpdateGroup(ctx, id.AccountID, groupID, func(g *Group) error {
		patch(&g.Name, in.Name)
		patch(&g.Description, in.Description)
		if in.CustomMetadata != nil {
			g.CustomMetadata = in.CustomMetadata
		}
		g.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, mapStoreErr(conflictName(err, "group"), "group", "update group")
	}
	return g, nil
}

// groupInReach checks that the caller's role allows act and that it
// reaches groupID (NotFound otherwise, as for a missing group).
func (s *Service) groupInReach(ctx context.Context, id *Identity, act Action, groupID string) error {
	sc, err := s.scopeFor(ctx, id, act)
	if err != nil {
		return err
	}
	if !sc.has(groupID) {
		return notFound("group")
	}
	return nil
}

// DeleteGroup deletes an empty group.
func (s *Service) DeleteGroup(ctx context.Context, id *Identity, groupID string) (err error) {
	ctx = s.auditing(ctx, id, "group.delete", "group", func() string { return groupID })
	defer func() { err = s.auditOutcome(ctx, id, "group.delete", "group", groupID, err) }()
	if err := s.groupInReach(ctx, id, ActAdmin, groupID); err != nil {
		return err
	}
	if err := s.store.DeleteGroup(ctx, id.AccountID, groupID); err != nil {
		return mapStoreErr(err, "group", "delete group")
	}
	return nil
}

// ---- apps ----

// AppGroupPermissions are the DSM per-group app permissions credvault
// accepts (and stores; access itself follows the app's role).
var AppGroupPermissions = []string{"SIGN", "VERIFY", "ENCRYPT", "DECRYPT", "WRAPKEY", "UNWRAPKEY", "DERIVEKEY", "MACGENERATE", "MACVERIFY",
	"EXPORT", "MANAGE", "AGREEKEY", "MASKDECRYPT", "AUDIT", "TRANSFORM", "CREATE_SOBJECTS", "COPY_SOBJECTS", "ROTATE_SOBJECTS",
	"ACTIVATE_SOBJECTS", "REVOKE_SOBJECTS", "REVERT_SOBJECTS", "MOVE_SOBJECTS", "UPDATE_SOBJECTS_PROFILE", "UPDATE_SOBJECTS_ENABLED_STATE",
	"UPDATE_SOBJECT_POLICIES", "UPDATE_KEY_OPS", "DELETE_KEY_MATERIAL", "DELETE_SOBJECTS", "DESTROY_SOBJECTS", "RESTORE_EXTERNAL_SOBJECTS",
	"CALCULATE_DIGEST", "ENCAPSULATE", "DECAPSULATE"}

func allGroupPermissions() []string { return slices.Clone(AppGroupPermissions) }

// AppInput creates or updates an app. On update, nil fields are left
// unchanged; AddGroups/ModGroups/DelGroups change memberships.
type AppInput struct {
	Name         *string
	Description  *string
	AppType      *string
	Role         *DSMRole
	Enabled      *bool
	DefaultGroup *string
	AddGroups    []AppGroup
	ModGroups    []AppGroup
	DelGroups    []string
}

func checkAppGroups(field string, sc *dsmScope, gs []AppGroup) error {
	for _, g := range gs {
		if !ValidUUID(g.GroupID) {
			return FieldError(field, "%s: every group id must be a UUID", field)
		}
		if !sc.has(g.GroupID) {
			return FieldError(field, "%s names a group that was not found", field)
		}
		for _, p := range g.Permissions {
			if !slices.Contains(AppGroupPermissions, p) {
				return FieldError(field, "%s: unknown group permission", field)
			}
		}
	}
	return nil
}

func (in *AppInput) validate(sc *dsmScope) error {
	if in.Name != nil {
		if err := checkDSMName("name", *in.Name); err != nil {
			return err
		}
	}
	if in.Role != nil && *in.Role != DSMRoleAdmin && *in.Role != DSMRoleCrypto {
		return FieldError("role", "role must be admin or crypto")
	}
	if err := checkAppGroups("add_groups", sc, in.AddGroups); err != nil {
		return err
	}
	if err := checkAppGroups("mod_groups", sc, in.ModGroups); err != nil {
		return err
	}
	for _, g := range in.DelGroups {
		if !ValidUUID(g) || !sc.has(g) {
			return FieldError("del_groups", "del_groups names a group that was not found")
		}
	}
	if in.DefaultGroup != nil && *in.DefaultGroup != "" && !ValidUUID(*in.DefaultGroup) {
		return FieldError("default_group", "default_group must be a group id (UUID)")
	}
	return nil
}

// apply applies in to a; it enforces that an app keeps at least one group.
func (in *AppInput) apply(a *App) error {
	patch(&a.Name, in.Name)
	patch(&a.Description, in.Description)
	patch(&a.AppType, in.AppType)
	patch(&a.Role, in.Role)
	patch(&a.Enabled, in.Enabled)
	idx := func(g string) int {
		return slices.IndexFunc(a.Groups, func(x AppGroup) bool { return x.GroupID == g })
	}
	for _, g := range in.AddGroups {
		if g.Permissions == nil {
			g.Permissions = allGroupPermissions()
		}
		if i := idx(g.GroupID); i >= 0 {
			a.Groups[i] = g
		} else {
			a.Groups = append(a.Groups, g)
		}
	}
	for _, g := range in.ModGroups {
		i := idx(g.GroupID)
		if i < 0 {
			return FieldError("mod_groups", "mod_groups names a group the app is not a member of")
		}
		if g.Permissions == nil {
			g.Permissions = []string{}
		}
		a.Groups[i] = g
	}
	for _, g := range in.DelGroups {
		if i := idx(g); i >= 0 {
			a.Groups = slices.Delete(a.Groups, i, i+1)
		}
	}
	if len(a.Groups) == 0 {
		return FieldError("add_groups", "an app must be a member of at least one group")
	}
	patch(&a.DefaultGroup, in.DefaultGroup)
	if a.DefaultGroup != "" && idx(a.DefaultGroup) < 0 {
		if in.DefaultGroup != nil {
			return FieldError("default_group", "default_group must be one of the app's groups")
		}
		a.DefaultGroup = ""
	}
	if a.DefaultGroup == "" {
		// As in DSM, an app always has a default group: where objects it
		// creates without group_id go.
		a.DefaultGroup = a.Groups[0].GroupID
	}
	return nil
}

// CreateApp creates an app with no secret; the first GetAppCredential
// issues it.
func (s *Service) CreateApp(ctx context.Context, id *Identity, in AppInput) (a *App, err error) {
	ctx = s.auditing(ctx, id, "app.create", "app", func() string { return a.ID })
	defer func() { err = s.auditOutcome(ctx, id, "app.create", "app", resultID(a, ""), err) }()
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, err
	}
	if in.Name == nil {
		return nil, FieldError("name", "name is required")
	}
	if len(in.ModGroups) > 0 || len(in.DelGroups) > 0 {
		return nil, FieldError("mod_groups", "mod_groups and del_groups apply to existing apps only; use add_groups")
	}
	if err := in.validate(sc); err != nil {
		return nil, err
	}
	now := s.Now()
	a = &App{ID: NewID(), AccountID: id.AccountID, Role: DSMRoleCrypto, Enabled: true, Creator: creatorOf(id), CreatedAt: now, UpdatedAt: now, Groups: []AppGroup{}}
	if err := in.apply(a); err != nil {
		return nil, err
	}
	p := &Principal{ID: a.ID, Kind: PrincipalApp, Name: a.Name, DefaultAccountID: id.AccountID, CreatedAt: now}
	if err := s.store.CreateApp(ctx, a, p, a.Role.CoreRole()); err != nil {
		return nil, mapStoreErr(conflictName(err, "app"), "app", "create app")
	}
	return a, nil
}

// visibleApp reports whether a scoped caller may see app a: itself, or an
// app sharing one of its groups.
func visibleApp(id *Identity, sc *dsmScope, a *App) bool {
	if sc.all || a.ID == id.Principal.ID {
		return true
	}
	for _, g := range a.Groups {
		if sc.has(g.GroupID) {
			return true
		}
	}
	return false
}

// manageableApp reports whether a scoped caller may change app a: only
// if every group a reaches is one the caller reaches too. Otherwise an
// admin app could reset another app's secret, fetch the new one and so
// reach groups it is not a member of.
func manageableApp(sc *dsmScope, a *App) error {
	if sc.all {
		return nil
	}
	for _, g := range a.Groups {
		if !sc.has(g.GroupID) {
			return Errorf(KindPermissionDenied, "this app is also a member of groups the caller does not reach, so the caller may not manage it")
		}
	}
	return nil
}

// manageApp returns an app the caller may see and manage (manageableApp),
// with the caller's scope.
func (s *Service) manageApp(ctx context.Context, id *Identity, appID string) (*dsmScope, *App, error) {
	sc, err := s.scope(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	a, err := s.getApp(ctx, id, sc, appID)
	if err != nil {
		return nil, nil, err
	}
	if err := manageableApp(sc, a); err != nil {
		return nil, nil, err
	}
	return sc, a, nil
}

// AppReach is what apps a caller limited to some groups may see
// (visibleApp): itself, and the apps sharing one of its groups.
type AppReach struct {
	Self   string
	Groups []string
}

// appReach returns the apps sc reaches (self: the caller), nil for all.
func (sc *dsmScope) appReach(self string) *AppReach {
	if sc.all {
		return nil
	}
	return &AppReach{Self: self, Groups: sc.list()}
}

// AppListQuery selects one page of apps: every non-empty field is a
// condition that must hold.
type AppListQuery struct {
	Role    DSMRole // only apps of this role
	GroupID string  // only members of this group
	SortBy  string  // "id" (default) or "name"
	Desc    bool
	Start   string // only apps after this id or name in the sort order (exclusive)
	// From starts the page at the first app, in the sort order, whose id
	// is greater than From (a continuation token); Offset is then ignored.
	From   string
	Offset int
	Limit  int  // at most this many apps; 0: no limit
	Count  bool // also count the apps matching (Start included)
}

// AppPage is one page of apps.
type AppPage struct {
	Items []App
	Count int  // with Count: the apps matching
	More  bool // apps follow the page (with a Limit)
}

// ListApps returns the apps the caller may see, by id.
func (s *Service) ListApps(ctx context.Context, id *Identity) ([]App, error) {
	page, err := s.ListAppsPage(ctx, id, AppListQuery{})
	if err != nil {
		return nil, err
	}
	return page.Items, nil
}

// ListAppsPage returns one page of the apps the caller may see. The store
// filters, orders and pages.
func (s *Service) ListAppsPage(ctx context.Context, id *Identity, q AppListQuery) (*AppPage, error) {
	if q.SortBy == "" {
		q.SortBy = "id"
	}
	if q.SortBy != "id" && q.SortBy != "name" {
		return nil, FieldError("sort", "apps are sorted by id or name")
	}
	if q.Role != "" && q.Role != DSMRoleAdmin && q.Role != DSMRoleCrypto {
		return nil, FieldError("role", "role must be admin or crypto")
	}
	if q.Offset < 0 || q.Limit < 0 {
		return nil, FieldError("limit", "offset and limit must not be negative")
	}
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) (*AppPage, error) {
		page, err := s.store.ListApps(ctx, id.AccountID, sc.appReach(id.Principal.ID), q)
		if err != nil {
			return nil, fmt.Errorf("list apps: %w", err)
		}
		return page, nil
	})
}

// GetApp returns an app the caller may see.
func (s *Service) GetApp(ctx context.Context, id *Identity, appID string) (*App, error) {
	return scoped(ctx, s, id, ActRead, func(sc *dsmScope) (*App, error) { return s.getApp(ctx, id, sc, appID) })
}

func (s *Service) getApp(ctx context.Context, id *Identity, sc *dsmScope, appID string) (*App, error) {
	a, err := s.store.GetApp(ctx, id.AccountID, appID)
	if err != nil {
		return nil, mapStoreErr(err, "app", "get app")
	}
	if !visibleApp(id, sc, a) {
		return nil, notFound("app")
	}
	return a, nil
}

// UpdateApp changes an app.
func (s *Service) UpdateApp(ctx context.Context, id *Identity, appID string, in AppInput) (a *App, err error) {
	ctx = s.auditing(ctx, id, "app.update", "app", func() string { return appID })
	defer func() { err = s.auditOutcome(ctx, id, "app.update", "app", appID, err) }()
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	sc, _, err := s.manageApp(ctx, id, appID)
	if err != nil {
		return nil, err
	}
	if err := in.validate(sc); err != nil {
		return nil, err
	}
	now := s.Now()
	a, err = s.store.UpdateApp(ctx, id.AccountID, appID, func(a *App) error {
		if err := manageableApp(sc, a); err != nil { // as it is now, inside the transaction
			return err
		}
		if err := in.apply(a); err != nil {
			return err
		}
		a.UpdatedAt = now
		return nil
	})
	if err != nil {
		return nil, mapStoreErr(conflictName(err, "app"), "app", "update app")
	}
	return a, nil
}

// DeleteApp deletes an app, its key and its sessions.
func (s *Service) DeleteApp(ctx context.Context, id *Identity, appID string) (err error) {
	ctx = s.auditing(ctx, id, "app.delete", "app", func() string { return appID })
	defer func() { err = s.auditOutcome(ctx, id, "app.delete", "app", appID, err) }()
	if err := id.Require(ActAdmin); err != nil {
		return err
	}
	if _, _, err := s.manageApp(ctx, id, appID); err != nil {
		return err
	}
	if err := s.store.DeleteApp(ctx, id.AccountID, appID); err != nil {
		return mapStoreErr(err, "app", "delete app")
	}
	return nil
}

// ErrLegacySecret is returned by GetAppCredential for an app whose secret
// was issued by a credvault version that kept only its hash; a dialect may
// name its own way of resetting the secret.
var ErrLegacySecret = Errorf(KindConflict, "this app's secret was issued before credvault kept app secrets and cannot be shown again; "+
	"reset the app's secret to issue one that can")

// MaxCredentialMigrationPeriod bounds reset_secret's
// credential_migration_period (seconds).
const MaxCredentialMigrationPeriod = 365 * 24 * 3600

// appSecretAD binds a sealed app secret to its account, app and the hash
// of the API key it forms, so that a sealed secret copied to another app
// or left over from an earlier key fails to open.
func appSecretAD(accountID, appID string, keyHash []byte) []byte {
	return []byte(fmt.Sprintf("credvault/dsm-app-secret/v1\x00%s\x00%s\x00%x", accountID, appID, keyHash))
}

// AppAPIKey is the API key a DSM client builds from an app's id and
// secret: base64(app_id ":" secret).
func AppAPIKey(appID, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(appID + ":" + secret))
}

// newAppKey mints a secret for appID and returns the key row and the
// sealed secret.
func (s *Service) newAppKey(accountID, appID string) (*APIKey, []byte, error) {
	var b [48]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, nil, fmt.Errorf("app secret: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(b[:])
	k := &APIKey{ID: appID, PrincipalID: appID, Name: "dsm-app", Hash: HashAPIKey(AppAPIKey(appID, secret)), CreatedAt: s.Now()}
	sealed, err := s.sealer.Seal([]byte(secret), appSecretAD(accountID, appID, k.Hash))
	if err != nil {
		return nil, nil, fmt.Errorf("seal app secret: %w", err)
	}
	return k, sealed, nil
}

// GetAppCredential returns the app's secret, issuing it on first use. As
// in DSM, every call returns the same secret until reset_secret; the
// client builds the API key as base64(app_id:secret) (AppAPIKey). The
// secret is stored sealed and authentication compares only the key's
// hash. Every call is audited, and without a record there is no secret.
func (s *Service) GetAppCredential(ctx context.Context, id *Identity, appID string) (secret string, err error) {
	ctx = s.auditing(ctx, id, "app.credential", "app", func() string { return appID })
	defer func() {
		if aerr := s.Audit(ctx, id, "app.credential", "app", appID, err); aerr != nil && err == nil {
			secret, err = "", aerr // fail closed: no record, no secret
		}
	}()
	if err := id.Require(ActAdmin); err != nil {
		return "", err
	}
	_, a, err := s.manageApp(ctx, id, appID)
	if err != nil {
		return "", err
	}
	sec, err := s.store.GetAppSecret(ctx, id.AccountID, appID)
	if KindOf(err) == KindNotFound {
		if a.SecretIssued {
			return "", ErrLegacySecret
		}
		k, sealed, kerr := s.newAppKey(id.AccountID, appID)
		if kerr != nil {
			return "", kerr
		}
		if err := s.store.IssueAppKey(ctx, id.AccountID, k, sealed); err != nil && KindOf(err) != KindConflict {
			return "", mapStoreErr(err, "app", "issue app key")
		}
		// Issued now, or by a concurrent caller: read what won.
		sec, err = s.store.GetAppSecret(ctx, id.AccountID, appID)
		if KindOf(err) == KindNotFound {
			return "", ErrLegacySecret
		}
	}
	if err != nil {
		return "", mapStoreErr(err, "app", "get app secret")
	}
	plain, err := s.sealer.Open(sec.Ciphertext, appSecretAD(id.AccountID, appID, sec.KeyHash))
	if err != nil {
		return "", Wrap(KindInternal, fmt.Errorf("open app secret %s: %w", appID, err), "the app secret cannot be decrypted")
	}
	secret = string(plain)
	clear(plain)
	if subtle.ConstantTimeCompare(HashAPIKey(AppAPIKey(appID, secret)), sec.KeyHash) != 1 {
		return "", Wrap(KindInternal, fmt.Errorf("app secret %s does not match its key hash", appID), "the app secret cannot be decrypted")
	}
	s.SecretAccessed("app.credential")
	return secret, nil
}

// ResetAppSecret issues a new secret for the app. The previous secret and
// its sessions stop working at once, or, with a migration period > 0,
// keep working for that long.
func (s *Service) ResetAppSecret(ctx context.Context, id *Identity, appID string, migrationPeriod time.Duration) (a *App, err error) {
	ctx = s.auditing(ctx, id, "app.reset_secret", "app", func() string { return appID })
	defer func() { err = s.auditOutcome(ctx, id, "app.reset_secret", "app", appID, err) }()
	if err := id.Require(ActAdmin); err != nil {
		return nil, err
	}
	if migrationPeriod < 0 || migrationPeriod > MaxCredentialMigrationPeriod*time.Second {
		return nil, FieldError("credential_migration_period", "credential_migration_period must be between 0 and %d seconds", MaxCredentialMigrationPeriod)
	}
	if _, _, err := s.manageApp(ctx, id, appID); err != nil {
		return nil, err
	}
	k, sealed, err := s.newAppKey(id.AccountID, appID)
	if err != nil {
		return nil, err
	}
	r := AppKeyReset{New: k, Sealed: sealed}
	if migrationPeriod > 0 {
		r.PreviousKeyID, r.PreviousUntil = NewID(), k.CreatedAt.Add(migrationPeriod)
	}
	if err := s.store.ResetAppKey(ctx, id.AccountID, appID, r); err != nil {
		return nil, mapStoreErr(err, "app", "reset app secret")
	}
	a, err = s.store.GetApp(ctx, id.AccountID, appID)
	if err != nil {
		return nil, mapStoreErr(err, "app", "reset app secret")
	}
	return a, nil
}
