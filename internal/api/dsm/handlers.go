package dsm

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Version is what GET /sys/v1/version reports.
const (
	Version    = "1.0.0"
	APIVersion = "1.0.0"
)

func (h *handlers) version(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, map[string]string{"version": Version, "api_version": APIVersion, "server_mode": "Software"})
	return nil
}

// health answers DSM's health check as DSM does: 204 No Content, without
// authentication, whenever the server handles requests (MinIO KES will not
// start on anything else). Whether the database takes writes is /readyz's
// to say.
func (h *handlers) health(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ---- sessions ----

func (h *handlers) sessionAuth(w http.ResponseWriter, r *http.Request) error {
	scheme, _, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !strings.EqualFold(scheme, "Basic") {
		return vault.Errorf(vault.KindUnauthenticated, "session/auth needs Authorization: Basic <api key> or Basic base64(email:password)")
	}
	var id *vault.Identity
	var err error
	_, cred, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if email, pw, ok := userCredential(cred); ok { // a user's Basic email:password
		id, err = h.svc.AuthenticateDSMUser(r.Context(), email, pw)
	} else {
		id, err = h.authenticate(r)
	}
	if err != nil {
		return err
	}
	httpx.SetIdentity(r.Context(), id)
	// The optional AuthRequest body (token_type, bind_to, method) is
	// accepted and ignored: credvault issues Bearer tokens only.
	var body map[string]json.RawMessage
	if _, err := h.readJSON(r, &body, false); err != nil {
		return err
	}
	return h.newSession(w, r, id)
}

func (h *handlers) newSession(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	token, sess, err := h.svc.CreateSession(r.Context(), id)
	if err != nil {
		return err
	}
	// Rounded down: a client must never believe the session outlives the
	// API key behind it.
	httpx.WriteSecretJSON(w, http.StatusOK, authResponse{TokenType: "Bearer", ExpiresIn: int(sess.ExpiresAt.Sub(sess.CreatedAt) / time.Second), AccessToken: token,
		EntityID: id.Principal.ID})
	return nil
}

func (h *handlers) sessionRefresh(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.svc.RefreshSession(r.Context(), id))
}

// sessionReauth issues a fresh session token for the caller; the old token
// stays valid until it expires or is terminated.
func (h *handlers) sessionReauth(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return h.newSession(w, r, id)
}

func (h *handlers) sessionTerminate(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	return httpx.NoContent(w, h.svc.TerminateSession(r.Context(), id))
}

// selectAccount is DSM's POST /sys/v1/session/select_account: the
// caller's own account is accepted (what DSM clients call right after
// auth), a session may move to another account of its principal, and any
// other account is refused (the rules are in vault.SelectAccount).
func (h *handlers) selectAccount(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	var q struct {
		AcctID *string `json:"acct_id"`
	}
	if _, err := h.readJSON(r, &q, true); err != nil {
		return err
	}
	if q.AcctID == nil {
		return invalid("acct_id is required")
	}
	if !vault.ValidUUID(*q.AcctID) {
		return invalid("acct_id must be a UUID")
	}
	if err := h.svc.SelectAccount(r.Context(), id, strings.ToLower(*q.AcctID)); err != nil {
		return err
	}
	writeJSON(w, map[string]any{})
	return nil
}

// ---- groups ----

type groupRequest struct {
	Name           *string            `json:"name"`
	Description    *string            `json:"description"`
	CustomMetadata *map[string]string `json:"custom_metadata"`
}

func (q *groupRequest) input() (vault.GroupInput, error) {
	return vault.GroupInput{Name: q.Name, Description: q.Description, CustomMetadata: metadataOf(q.CustomMetadata)}, nil
}

func (h *handlers) listGroups(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	limit, offset := q.int("limit"), q.int("offset")
	if q.v.Get("filter") != "" {
		return invalid("filter is not supported for groups")
	}
	if q.err != nil {
		return q.err
	}
	gs, err := h.svc.ListGroups(r.Context(), id)
	if err != nil {
		return err
	}
	return writePage(w, q, httpx.Wire(gs, toGroup), offset, limit, func(g *groupWire) string { return g.GroupID })
}

// writePage writes the page of items a listing request
// asks for: a bare array, or with continuation_token an object with items
// and metadata (see continued).
func writePage[T any](w http.ResponseWriter, q *query, items []T, offset, limit int, idOf func(*T) string) error {
	if !q.v.Has("continuation_token") {
		writeJSON(w, page(items, offset, limit))
		return nil
	}
	items, md, err := continued(q, items, offset, limit, idOf)
	if err != nil {
		return err
	}
	writeJSON(w, map[string]any{"items": items, "metadata": md})
	return nil
}

// continued pages a listing (ordered by id, as the store returns it) for a
// request that carries continuation_token. An empty token starts at offset;
// otherwise the token is the id of the last item of the previous page. When
// the limit cuts the page short, its metadata carries the next token — DSM
// clients treat a response without one as complete.
func continued[T any](q *query, items []T, offset, limit int, idOf func(*T) string) ([]T, map[string]any, error) {
	md := collectionMetadata(len(items))
	if tok := q.v.Get("continuation_token"); tok != "" {
		if !vault.ValidUUID(tok) {
			return nil, nil, invalid("continuation_token must be empty or a token returned by a previous call")
		}
		tok = strings.ToLower(tok)
		offset = len(items)
		for i := range items {
			if idOf(&items[i]) > tok {
				offset = i
				break
			}
		}
	}
	out := page(items, offset, limit)
	if limit > 0 && len(out) == limit && offset+limit < len(items) {
		md["continuation_token"] = idOf(&out[len(out)-1])
	}
	return out, md, nil
}

// collectionMetadata is DSM's CollectionMetadata: the count of every match
// (the caller adds continuation_token when the page is cut short).
func collectionMetadata(count int) map[string]any {
	return map[string]any{"count": count, "count_accuracy": map[string]string{"$type": "Exact"}}
}

func page[T any](items []T, offset, limit int) []T {
	if offset >= len(items) {
		return items[:0]
	}
	items = items[offset:]
	if limit > 0 && limit < len(items) {
		items = items[:limit]
	}
	return items
}

// ---- apps ----

// appGroups decodes AppGroups: a uuid array or a map uuid → permissions.
func appGroups(field string, raw json.RawMessage) ([]vault.AppGroup, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		out := make([]vault.AppGroup, len(list))
		for i, g := range list {
			out[i] = vault.AppGroup{GroupID: strings.ToLower(g)}
		}
		return out, nil
	}
	var m map[string][]string
	if json.Unmarshal(raw, &m) != nil {
		return nil, invalid("%s must be an array of group ids or an object mapping group ids to permission arrays", field)
	}
	out := make([]vault.AppGroup, 0, len(m))
	for g, p := range m {
		if p == nil {
			p = []string{}
		}
		out = append(out, vault.AppGroup{GroupID: strings.ToLower(g), Permissions: p})
	}
	// A JSON object has no order; sort so that the first group (the
	// default group when none is named) does not depend on map order.
	slices.SortFunc(out, func(a, b vault.AppGroup) int { return strings.Compare(a.GroupID, b.GroupID) })
	return out, nil
}

type appRequest struct {
	Name         *string         `json:"name"`
	Description  *string         `json:"description"`
	AppType      *string         `json:"app_type"`
	Role         *string         `json:"role"`
	Enabled      *bool           `json:"enabled"`
	DefaultGroup *string         `json:"default_group"`
	AddGroups    json.RawMessage `json:"add_groups"`
	ModGroups    json.RawMessage `json:"mod_groups"`
	DelGroups    *[]string       `json:"del_groups"`
	Credential   json.RawMessage `json:"credential"`
}

func (q *appRequest) input() (vault.AppInput, error) {
	in := vault.AppInput{Name: q.Name, Description: q.Description, AppType: q.AppType, Enabled: q.Enabled, DefaultGroup: q.DefaultGroup}
	if q.Role != nil {
		role := vault.DSMRole(*q.Role)
		if role != vault.DSMRoleAdmin && role != vault.DSMRoleCrypto {
			return in, invalid("role must be admin or crypto")
		}
		in.Role = &role
	}
	var err error
	if in.AddGroups, err = appGroups("add_groups", q.AddGroups); err != nil {
		return in, err
	}
	if in.ModGroups, err = appGroups("mod_groups", q.ModGroups); err != nil {
		return in, err
	}
	if q.DelGroups != nil {
		for _, g := range *q.DelGroups {
			in.DelGroups = append(in.DelGroups, strings.ToLower(g))
		}
	}
	if len(q.Credential) > 0 && string(q.Credential) != "null" {
		var c map[string]json.RawMessage
		if json.Unmarshal(q.Credential, &c) != nil || len(c) != 1 || c["secret"] == nil {
			return in, invalid("credential: only secret authentication is supported ({\"secret\": {}} or omit it)")
		}
	}
	return in, nil
}

func (h *handlers) appView(r *http.Request) bool {
	q := &query{v: r.URL.Query()}
	return q.bool("group_permissions")
}

func (h *handlers) listApps(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	limit, offset := q.int("limit"), q.int("offset")
	groupID := q.uuid("group_id")
	perms := q.bool("group_permissions")
	role := q.v.Get("role")
	if role != "" && role != "admin" && role != "crypto" {
		return invalid("role must be admin or crypto")
	}
	if q.v.Get("filter") != "" {
		return invalid("filter is not supported for apps")
	}
	sortBy, desc := q.sort("sort", "app_id", "app_name")
	start := q.v.Get("start")
	if q.err != nil {
		return q.err
	}
	lq := vault.AppListQuery{Role: vault.DSMRole(role), GroupID: groupID, Desc: desc, Offset: offset, Limit: limit}
	// start keeps the apps after it in the order of sort=app_id|app_name
	// (exclusive, as DSM pages: the Go client's ListApps loop passes the
	// last id of a page as the next start and stops on an empty page); it
	// applies only with a sort.
	if sortBy != "" {
		lq.SortBy, lq.Start = map[string]string{"app_id": "id", "app_name": "name"}[sortBy], start
	}
	token := q.v.Has("continuation_token")
	if token {
		tok := q.v.Get("continuation_token")
		if tok != "" && !vault.ValidUUID(tok) {
			return invalid("continuation_token must be empty or a token returned by a previous call")
		}
		lq.From, lq.Count = strings.ToLower(tok), true
	}
	p, err := h.svc.ListAppsPage(r.Context(), id, lq)
	if err != nil {
		return err
	}
	items := make([]appWire, len(p.Items))
	for i := range p.Items {
		items[i] = toApp(&p.Items[i], perms)
	}
	if !token {
		writeJSON(w, items)
		return nil
	}
	md := collectionMetadata(p.Count)
	if limit > 0 && len(items) == limit && p.More {
		md["continuation_token"] = items[len(items)-1].AppID
	}
	writeJSON(w, map[string]any{"items": items, "metadata": md})
	return nil
}

func (h *handlers) getAppCredential(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	aid, err := pathUUID(r, "app_id")
	if err != nil {
		return err
	}
	secret, err := h.svc.GetAppCredential(r.Context(), id, aid)
	if errors.Is(err, vault.ErrLegacySecret) {
		return vault.Errorf(vault.KindConflict, "this app's secret was issued before credvault kept app secrets and cannot be shown again; "+
			"call POST /sys/v1/apps/%s/reset_secret to issue one that can", aid)
	}
	if err != nil {
		return err
	}
	// As DSM: the secret alone; clients build the API key themselves as
	// base64(app_id:secret).
	httpx.WriteSecretJSON(w, http.StatusOK, map[string]any{"app_id": aid, "credential": map[string]string{"secret": secret}})
	return nil
}

func (h *handlers) resetAppSecret(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	aid, err := pathUUID(r, "app_id")
	if err != nil {
		return err
	}
	var q struct {
		SecretSize                *int `json:"secret_size"`
		CredentialMigrationPeriod *int `json:"credential_migration_period"`
	}
	if _, err := h.readJSON(r, &q, false); err != nil {
		return err
	}
	var period time.Duration
	if p := q.CredentialMigrationPeriod; p != nil {
		if *p < 0 || *p > vault.MaxCredentialMigrationPeriod {
			return invalid("credential_migration_period must be between 0 and %d seconds", vault.MaxCredentialMigrationPeriod)
		}
		period = time.Duration(*p) * time.Second
	}
	a, err := h.svc.ResetAppSecret(r.Context(), id, aid, period)
	if err != nil {
		return err
	}
	writeJSON(w, toApp(a, h.appView(r)))
	return nil
}

// ---- security objects ----

func (h *handlers) readDescriptor(r *http.Request) (vault.SobjectDescriptor, error) {
	var d descriptor
	if _, err := h.readJSON(r, &d, true); err != nil {
		return vault.SobjectDescriptor{}, err
	}
	return d.resolve("the security object descriptor")
}

func (h *handlers) getSobject(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	showPub, err := infoQuery(r)
	if err != nil {
		return err
	}
	d, err := h.readDescriptor(r)
	if err != nil {
		return err
	}
	return h.sobjectValue(w, r, id, h.svc.GetSobject, d, showPub)
}

// getSobjectByID answers GET /crypto/v1/keys/{key_id}, DSM's lookup of
// one object by kid (the Terraform provider reads its dsm_sobject and
// dsm_secret resources so): the answer of POST /crypto/v1/keys/info for
// {"kid": key_id}. show_deleted and show_destroyed are accepted and change
// nothing: a deleted object is gone here, and none is ever destroyed
// without being deleted.
func (h *handlers) getSobjectByID(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	kid, err := pathUUID(r, "key_id")
	if err != nil {
		return err
	}
	showPub, err := infoQuery(r, "show_deleted", "show_destroyed")
	if err != nil {
		return err
	}
	return h.sobjectValue(w, r, id, h.svc.GetSobject, vault.SobjectDescriptor{KID: kid}, showPub)
}

// infoQuery checks the query of an object lookup: view (json only),
// show_pub_key (default true) and the boolean flags named.
func infoQuery(r *http.Request, flags ...string) (showPub bool, err error) {
	q := &query{v: r.URL.Query()}
	showPub = !q.v.Has("show_pub_key") || q.bool("show_pub_key")
	for _, f := range flags {
		q.bool(f)
	}
	if v := q.v.Get("view"); v != "" && v != "json" {
		return false, invalid("view=%s is not supported (json only)", "value")
	}
	return showPub, q.err
}

func (h *handlers) exportSobject(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	d, err := h.readDescriptor(r)
	if err != nil {
		return err
	}
	return h.sobjectValue(w, r, id, h.svc.ExportSobject, d, true)
}

// sobjectValue answers with the security object that get (the core's
// GetSobject or ExportSobject) finds by d, and with its
// value where get returns one: always on export (there is no object
// without key material), on info for OPAQUE and CERTIFICATE objects, as in
// DSM. An answer with a value is secret (no cache may keep it); the value
// is cleared once written.
func (h *handlers) sobjectValue(w http.ResponseWriter, r *http.Request, id *vault.Identity,
	get func(context.Context, *vault.Identity, vault.SobjectDescriptor) (*vault.Sobject, []byte, error), d vault.SobjectDescriptor, showPub bool) error {
	o, value, err := get(r.Context(), id, d)
	if err != nil {
		return err
	}
	wire := toSobject(o, h.svc.Now(), showPub)
	if value == nil {
		writeJSON(w, wire)
		return nil
	}
	wire.Value = value
	httpx.WriteSecretJSON(w, http.StatusOK, wire)
	clear(value)
	return nil
}

func (h *handlers) listSobjects(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	lq := vault.SobjectListQuery{GroupID: q.uuid("group_id"), Creator: q.uuid("creator"), Name: q.v.Get("name"), ObjType: q.v.Get("obj_type"),
		Limit: q.int("limit"), Offset: q.int("offset"), Start: q.v.Get("start")}
	lq.SortBy, lq.Desc = q.sort("sort", "kid", "name")
	if lq.SortBy != "name" {
		lq.Start = strings.ToLower(lq.Start) // kids are lowercase
	}
	withMeta := q.bool("with_metadata")
	lq.Count = withMeta
	showPub := q.bool("show_pub_key")
	q.bool("show_value")
	q.bool("show_deleted")
	q.bool("show_destroyed")
	if q.err != nil {
		return q.err
	}
	if lq.ObjType != "" && !slices.Contains(objectTypes, lq.ObjType) {
		return invalid("unknown obj_type")
	}
	if q.v.Get("filter") != "" {
		return invalid("filter is not supported; use group_id, name, obj_type, creator and custom_metadata.<key>=<value>")
	}
	for k, vs := range q.v {
		if name, ok := strings.CutPrefix(k, "custom_metadata."); ok && len(vs) > 0 {
			if lq.CustomMetadata == nil {
				lq.CustomMetadata = map[string]string{}
			}
			lq.CustomMetadata[name] = vs[0]
		}
	}
	p, err := h.svc.ListSobjects(r.Context(), id, lq)
	if err != nil {
		return err
	}
	now := h.svc.Now()
	items := httpx.Wire(p.Items, func(o *vault.Sobject) sobjectWire { return toSobject(o, now, showPub) })
	if withMeta {
		writeJSON(w, map[string]any{"items": items, "metadata": metadataWire{TotalCount: p.TotalCount, FilteredCount: p.FilteredCount}})
		return nil
	}
	writeJSON(w, items)
	return nil
}

// signing serves POST /crypto/v1/sign (verify false) and
// /crypto/v1/verify, whose bodies differ only in the signature to check:
// it calls op, the core's Sign or Verify, with the body's input and
// answers {"kid": …, result: op's result}.
func signing[R any](h *handlers, verify bool, op func(context.Context, *vault.Identity, vault.SignInput) (string, R, error), result string) handlerFunc {
	input := body(h, func(q *signRequest) (vault.SignInput, error) { return q.input(verify) })
	return func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
		in, err := input(r)
		if err != nil {
			return err
		}
		kid, out, err := op(r.Context(), id, in)
		if err != nil {
			return err
		}
		writeJSON(w, withKid(map[string]any{result: out}, in.Key, kid))
		return nil
	}
}

// withKid adds the kid of the key that d named to a cryptographic
// operation's answer; as in DSM, a transient key's answer has none.
func withKid(resp map[string]any, d vault.SobjectDescriptor, kid string) map[string]any {
	if d.Transient == nil {
		resp["kid"] = kid
	}
	return resp
}

func (h *handlers) encrypt(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	in, err := body(h, func(q *cryptRequest) (vault.CryptInput, error) { return q.input(false) })(r)
	if err != nil {
		return err
	}
	out, err := h.svc.Encrypt(r.Context(), id, in)
	if err != nil {
		return err
	}
	resp := withKid(map[string]any{"cipher": out.Cipher}, in.Key, out.KID)
	if out.IV != nil {
		resp["iv"] = out.IV
	}
	if out.Tag != nil {
		resp["tag"] = out.Tag
	}
	writeJSON(w, resp)
	return nil
}

func (h *handlers) decrypt(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	in, err := body(h, func(q *cryptRequest) (vault.CryptInput, error) { return q.input(true) })(r)
	if err != nil {
		return err
	}
	kid, plain, err := h.svc.Decrypt(r.Context(), id, in)
	if err != nil {
		return err
	}
	httpx.WriteSecretJSON(w, http.StatusOK, withKid(map[string]any{"plain": orEmpty(plain)}, in.Key, kid))
	clear(plain)
	return nil
}

// ---- integration credentials ----

func (h *handlers) listCredentials(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	// start (exclusive, in the sort order) is credvault's addition: a page
	// after start costs the same wherever it is, unlike a deep offset.
	lq := vault.CredentialListQuery{Limit: q.int("limit"), Offset: q.int("offset"), Start: q.v.Get("start")}
	sortBy, desc := q.sort("sort_by", "credential_id", "credential_name")
	lq.SortBy, lq.Desc = strings.TrimPrefix(sortBy, "credential_"), desc
	if lq.SortBy != "name" {
		lq.Start = strings.ToLower(lq.Start) // ids are lowercase
	}
	if q.err != nil {
		return q.err
	}
	f, err := credentialFilter(q.v.Get("filter"))
	if err != nil {
		return err
	}
	lq.Filter = f
	if q.v.Has("limit") && lq.Limit == 0 {
		return invalid("limit must be between 1 and %d", vault.MaxCredentialListLimit)
	}
	p, err := h.svc.ListIntegrationCredentials(r.Context(), id, lq)
	if err != nil {
		return err
	}
	writeJSON(w, map[string]any{"items": httpx.Wire(p.Items, toCredential), "metadata": metadataWire{TotalCount: p.TotalCount, FilteredCount: p.FilteredCount}})
	return nil
}

func (h *handlers) rotateCredential(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	cid, err := pathUUID(r, "cred_id")
	if err != nil {
		return err
	}
	method, err := body(h, (*rotateRequest).method)(r)
	if err != nil {
		return err
	}
	c, err := h.svc.RotateIntegrationCredential(r.Context(), id, cid, method, retiredName)
	if err != nil {
		return err
	}
	writeJSON(w, toCredential(c))
	return nil
}

// ---- audit log ----

const zeroUUID = "00000000-0000-0000-0000-000000000000"

func (h *handlers) logs(w http.ResponseWriter, r *http.Request, id *vault.Identity) error {
	q := &query{v: r.URL.Query()}
	aq := vault.AuditQuery{Limit: q.int("size"), Offset: q.int("from"), ObjectID: q.uuid("object_id"), PrincipalID: q.uuid("actor_id")}
	if from := q.int("range_from"); from > 0 {
		t := time.Unix(int64(from), 0).UTC()
		aq.Since = &t
	}
	if to := q.int("range_to"); to > 0 {
		t := time.Unix(int64(to), 0).UTC()
		aq.Until = &t
	}
	if prev := q.uuid("previous_id"); prev != "" {
		seq, ok := vault.AuditSeqOfID(prev)
		if !ok {
			return vault.FieldError("previous_id", "previous_id is not the id of an audit record")
		}
		aq.BeforeSeq = seq
	}
	if q.err != nil {
		return q.err
	}
	recs, err := h.svc.AuditLogs(r.Context(), id, aq)
	if err != nil {
		return err
	}
	hits := make([]esAuditLog, 0, len(recs))
	for _, rec := range recs {
		var e esAuditLog
		e.ID = rec.ID
		if !vault.ValidUUID(e.ID) {
			e.ID = uuidOf(rec.ID)
		}
		s := &e.Source
		s.ActionType = actionType(rec.Action)
		s.ActorType = map[vault.PrincipalKind]string{vault.PrincipalApp: "App"}[rec.PrincipalKind]
		if s.ActorType == "" {
			s.ActorType = "User"
		}
		s.Message = fmt.Sprintf("%s %s: %s", rec.Action, rec.ObjectType, rec.Outcome)
		s.Severity = "INFO"
		if rec.Outcome != "success" {
			s.Severity = "WARNING"
		}
		s.Time = rec.Time.UTC().Format("2006-01-02T15:04:05Z")
		s.AcctID, s.ActorID, s.ObjectID = orZero(rec.AccountID), orZero(rec.PrincipalID), orZero(rec.ObjectID)
		s.GroupIDs = []string{}
		hits = append(hits, e)
	}
	writeJSON(w, map[string]any{"hits": hits})
	return nil
}

func orZero(s string) string {
	if vault.ValidUUID(s) {
		return s
	}
	return zeroUUID
}

// uuidOf derives a stable UUID-shaped id from s.
func uuidOf(s string) string {
	b := sha256.Sum256([]byte(s))
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func actionType(action string) string {
	switch {
	case strings.HasPrefix(action, "auth.") || strings.HasPrefix(action, "session."):
		return "AUTH"
	case strings.HasSuffix(action, ".sign") || strings.HasSuffix(action, ".verify") || strings.HasSuffix(action, ".export"):
		return "CRYPTOOPERATION"
	case strings.HasPrefix(action, "sobject.") || strings.HasPrefix(action, "group.") || strings.HasPrefix(action, "app.") ||
		strings.HasPrefix(action, "integration_credential.") || strings.HasPrefix(action, "credential."):
		return "ADMINISTRATIVE"
	}
	return "OTHER"
}
