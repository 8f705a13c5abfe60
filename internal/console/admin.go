package console

import (
	"bytes"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/vault"
)

// auditShown is the largest number of audit records the page shows.
const auditShown = 200

type auditData struct {
	Title                                   string
	Actor, Action, Credential, Since, Until string
	Records                                 []vault.AuditRecord
	// Verified: every shown record's content matches its hash, and each
	// shown record links to the shown record just before it in the chain.
	Verified bool
	Problems []string
	// Full is the result of a whole-trail verify (operators only, on request).
	Full      *audit.Report
	CanVerify bool
	Names     map[string]string
	// Older is the query string of the next (older) page, "" if none.
	Older string
}

const formTime = "2006-01-02T15:04"

func parseFormTime(field, v string) (*time.Time, error) {
	if v == "" {
		return nil, nil
	}
	t, err := time.ParseInLocation(formTime, v, time.UTC)
	if err != nil {
		t, err = time.ParseInLocation(formTime+":05", v, time.UTC)
	}
	if err != nil {
		return nil, vault.FieldError(field, "%s must be a date and time like 2026-12-01T09:30 (UTC)", field)
	}
	return &t, nil
}

// auditPage shows the account's audit trail (admins only, as the DSM logs
// endpoint), filtered, and whether the shown records verify.
func (c *console) auditPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := s.id.Require(vault.ActAdmin); err != nil {
		return err
	}
	ctx := r.Context()
	q := r.URL.Query()
	d := auditData{Title: "Audit trail", Actor: strings.TrimSpace(q.Get("actor")), Action: strings.TrimSpace(q.Get("action")),
		Credential: strings.TrimSpace(q.Get("credential")), Since: q.Get("since"), Until: q.Get("until"), Names: map[string]string{}}
	aq := vault.AuditQuery{PrincipalID: d.Actor, Limit: vault.MaxAuditQueryLimit}
	var err error
	if b := q.Get("before"); b != "" {
		if aq.BeforeSeq, err = strconv.ParseInt(b, 10, 64); err != nil || aq.BeforeSeq < 1 {
			return vault.FieldError("before", "before must be a record number")
		}
	}
	if aq.Since, err = parseFormTime("since", d.Since); err != nil {
		return err
	}
	if aq.Until, err = parseFormTime("until", d.Until); err != nil {
		return err
	}
	if d.Credential != "" {
		aq.ObjectID = d.Credential
		if cr, err := c.svc.GetCredentialByName(ctx, s.id, d.Credential); err == nil {
			aq.ObjectID = cr.ID
		}
	}
	recs, err := c.svc.AuditLogs(ctx, s.id, aq)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if d.Action != "" && !strings.HasPrefix(rec.Action, d.Action) {
			continue
		}
		d.Records = append(d.Records, rec)
		if len(d.Records) == auditShown {
			break
		}
	}
	if len(d.Records) == auditShown || (len(recs) == vault.MaxAuditQueryLimit && len(d.Records) > 0) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(d.Records[len(d.Records)-1].Seq, 10))
		next.Del("verify")
		d.Older = "?" + next.Encode()
	}
	d.Verified, d.Problems = verifyShown(d.Records)
	for _, rec := range d.Records {
		if _, ok := d.Names[rec.PrincipalID]; !ok {
			d.Names[rec.PrincipalID] = ""
			if p, err := c.dir.GetPrincipal(ctx, rec.PrincipalID); err == nil {
				d.Names[rec.PrincipalID] = p.Name
			}
		}
	}
	d.CanVerify = c.svc.RequireOperator(ctx, s.id) == nil
	if d.CanVerify && q.Get("verify") == "all" {
		if d.Full, err = audit.Verify(ctx, c.trail, audit.VerifyOptions{}); err != nil {
			return err
		}
	}
	c.render(w, r, http.StatusOK, "audit", s, d)
	return nil
}

// verifyShown checks the shown records as `credvault audit verify` checks
// the whole trail: each record's content matches its hash, and a record
// whose predecessor in the chain is also shown links to it.
func verifyShown(recs []vault.AuditRecord) (bool, []string) {
	var problems []string
	bySeq := map[int64]*vault.AuditRecord{}
	for i := range recs {
		bySeq[recs[i].Seq] = &recs[i]
	}
	for i := range recs {
		rec := &recs[i]
		if !bytes.Equal(audit.Hash(rec), rec.Hash) {
			problems = append(problems, "record "+rec.ID+": content does not match its hash (edited)")
		}
		if prev, ok := bySeq[rec.Seq-1]; ok && !bytes.Equal(prev.Hash, rec.PrevHash) {
			problems = append(problems, "record "+rec.ID+": link to the previous record is broken")
		}
	}
	return len(problems) == 0, problems
}

type member struct {
	Principal vault.Principal
	Role      vault.Role
	Keys      []vault.APIKey
	// Manageable: this admin may change its role and keys (a user or
	// service account whose every membership is in an account this admin
	// administers, so that a key made here reaches nothing more).
	Manageable bool
	Self       bool
	// Memberships lists every account the principal is in, shown only
	// when Manageable (all of them are accounts this admin administers).
	Memberships []accountChoice
}

type accessData struct {
	Title   string
	Members []member
	Roles   []vault.Role
	NewKey  string
	KeyFor  string
	Notice  string
	// SessionKey is the API key of the viewer's own session.
	SessionKey string
}

// manageable reports whether s may manage principal p's keys and role.
func (c *console) manageable(r *http.Request, s *session, p *vault.Principal) (bool, vault.Role, error) {
	if p.Kind != vault.PrincipalUser && p.Kind != vault.PrincipalServiceAccount {
		return false, "", nil
	}
	ms, err := c.dir.ListMemberships(r.Context(), p.ID)
	if err != nil {
		return false, "", err
	}
	admin := map[string]bool{}
	for _, a := range s.accounts {
		admin[a.ID] = a.Role == vault.RoleAdmin
	}
	ok, role := len(ms) > 0, vault.Role("")
	for _, m := range ms {
		ok = ok && admin[m.AccountID]
		if m.AccountID == s.id.AccountID {
			role = m.Role
		}
	}
	return ok && role != "", role, nil
}

func (c *console) accessData(r *http.Request, s *session) (*accessData, error) {
	ctx := r.Context()
	ps, err := c.dir.ListPrincipals(ctx)
	if err != nil {
		return nil, err
	}
	d := &accessData{Title: "Access", SessionKey: s.id.KeyID, Roles: []vault.Role{vault.RoleReader, vault.RoleSecretReader, vault.RoleWriter, vault.RoleAdmin}}
	for i := range ps {
		p := &ps[i]
		ms, err := c.dir.ListMemberships(ctx, p.ID)
		if err != nil {
			return nil, err
		}
		m := member{Principal: *p, Self: p.ID == s.id.Principal.ID}
		for _, x := range ms {
			if x.AccountID == s.id.AccountID {
				m.Role = x.Role
			}
		}
		if m.Role == "" {
			continue
		}
		if m.Manageable, _, err = c.manageable(r, s, p); err != nil {
			return nil, err
		}
		if m.Manageable {
			names := map[string]string{}
			for _, a := range s.accounts {
				names[a.ID] = a.Name
			}
			for _, x := range ms {
				m.Memberships = append(m.Memberships, accountChoice{ID: x.AccountID, Name: names[x.AccountID], Role: x.Role, Current: x.AccountID == s.id.AccountID})
			}
		}
		if m.Keys, err = c.dir.ListAPIKeys(ctx, p.ID); err != nil {
			return nil, err
		}
		d.Members = append(d.Members, m)
	}
	sort.Slice(d.Members, func(i, j int) bool { return d.Members[i].Principal.Name < d.Members[j].Principal.Name })
	return d, nil
}

func (c *console) accessPage(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := s.id.Require(vault.ActAdmin); err != nil {
		return err
	}
	d, err := c.accessData(r, s)
	if err != nil {
		return err
	}
	d.Notice = map[string]string{"revoked": "The key was revoked.", "role": "The role was changed.", "principal": "The principal was created."}[r.URL.Query().Get("notice")]
	c.render(w, r, http.StatusOK, "access", s, d)
	return nil
}

// target loads the principal a form names and checks that s may manage it.
func (c *console) target(r *http.Request, s *session, principalID string) (*vault.Principal, error) {
	if err := s.id.Require(vault.ActAdmin); err != nil {
		return nil, err
	}
	p, err := c.dir.GetPrincipal(r.Context(), principalID)
	if err != nil {
		if vault.KindOf(err) == vault.KindNotFound {
			return nil, vault.Errorf(vault.KindNotFound, "principal not found")
		}
		return nil, err
	}
	ok, _, err := c.manageable(r, s, p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, vault.Errorf(vault.KindPermissionDenied, "you may manage only users and service accounts whose every account you administer")
	}
	return p, nil
}

// formRole is the role the form's role field chooses.
func formRole(r *http.Request) (vault.Role, error) {
	role, ok := vault.ParseRole(r.PostFormValue("role"))
	if !ok {
		return "", vault.FieldError("role", "choose a role")
	}
	return role, nil
}

// seeOther ends a form's POST: err, or a redirect to the page to (303 See
// Other).
func seeOther(w http.ResponseWriter, r *http.Request, to string, err error) error {
	if err != nil {
		return err
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

func (c *console) accessCreatePrincipal(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := s.id.Require(vault.ActAdmin); err != nil {
		return err
	}
	role, err := formRole(r)
	if err != nil {
		return err
	}
	ctx := vault.WithActor(r.Context(), s.id)
	_, err = c.svc.CreatePrincipal(ctx, vault.PrincipalKind(r.PostFormValue("kind")), strings.TrimSpace(r.PostFormValue("name")), s.id.AccountID, role)
	return seeOther(w, r, "/ui/access?notice=principal", err)
}

func (c *console) accessSetRole(w http.ResponseWriter, r *http.Request, s *session) error {
	p, err := c.target(r, s, r.PostFormValue("principal"))
	if err != nil {
		return err
	}
	role, err := formRole(r)
	if err != nil {
		return err
	}
	if p.ID == s.id.Principal.ID && role != vault.RoleAdmin {
		return vault.Errorf(vault.KindInvalid, "you cannot remove your own admin role here; ask another admin")
	}
	return seeOther(w, r, "/ui/access?notice=role", c.svc.AddMembership(vault.WithActor(r.Context(), s.id), p.ID, s.id.AccountID, role))
}

// accessCreateKey creates an API key and shows it once, in the POST's
// response (never in a URL, never cached).
func (c *console) accessCreateKey(w http.ResponseWriter, r *http.Request, s *session) error {
	p, err := c.target(r, s, r.PostFormValue("principal"))
	if err != nil {
		return err
	}
	var ttl time.Duration
	if days := r.PostFormValue("ttl_days"); days != "" && days != "0" {
		d, err := time.ParseDuration(days + "h")
		if err != nil || d <= 0 || d > 3650*time.Hour {
			return vault.FieldError("ttl_days", "expiry must be a number of days between 1 and 3650, or 0 for none")
		}
		ttl = d * 24
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "console"
	}
	_, secret, err := c.svc.CreateAPIKey(vault.WithActor(r.Context(), s.id), p.ID, name, ttl)
	if err != nil {
		return err
	}
	d, err := c.accessData(r, s)
	if err != nil {
		return err
	}
	d.NewKey, d.KeyFor = secret, p.Name
	c.render(w, r, http.StatusOK, "access", s, d)
	return nil
}

func (c *console) accessRevokeKey(w http.ResponseWriter, r *http.Request, s *session) error {
	keyID := r.PathValue("id")
	p, err := c.target(r, s, r.PostFormValue("principal"))
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm") != "yes" {
		return vault.FieldError("confirm", "tick the confirmation box to revoke the key")
	}
	keys, err := c.dir.ListAPIKeys(r.Context(), p.ID)
	if err != nil {
		return err
	}
	found := false
	for _, k := range keys {
		found = found || k.ID == keyID
	}
	if !found {
		return vault.Errorf(vault.KindNotFound, "API key not found")
	}
	return seeOther(w, r, "/ui/access?notice=revoked", c.svc.RevokeAPIKey(vault.WithActor(r.Context(), s.id), keyID))
}

type dsmCred struct {
	vault.IntegrationCredential
	Refs []vault.CredentialRef
}

type dsmData struct {
	Title       string
	Groups      []vault.Group
	Apps        []vault.App
	Sobjects    []vault.Sobject
	SobjTotal   int
	Credentials []dsmCred
	GroupNames  map[string]string
	Notice      string
}

// dsmPage shows the account's DSM objects: metadata only, never material.
func (c *console) dsmPage(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	d := dsmData{Title: "DSM", GroupNames: map[string]string{}}
	var err error
	if d.Groups, err = c.svc.ListGroups(ctx, s.id); err != nil {
		return err
	}
	for _, g := range d.Groups {
		d.GroupNames[g.ID] = g.Name
	}
	if d.Apps, err = c.svc.ListApps(ctx, s.id); err != nil {
		return err
	}
	page, err := c.svc.ListSobjects(ctx, s.id, vault.SobjectListQuery{SortBy: "name", Limit: 100})
	if err != nil {
		return err
	}
	for _, o := range page.Items {
		o.Ciphertext, o.PubKey = nil, nil // never material, not even in the page's data
		d.Sobjects = append(d.Sobjects, o)
	}
	d.SobjTotal = page.FilteredCount
	creds, err := c.svc.ListIntegrationCredentials(ctx, s.id, vault.CredentialListQuery{Limit: 100})
	if err != nil {
		return err
	}
	for _, ic := range creds.Items {
		d.Credentials = append(d.Credentials, dsmCred{IntegrationCredential: ic, Refs: ic.Details.Refs()})
	}
	if r.URL.Query().Get("notice") == "rotated" {
		d.Notice = "The integration credential was rotated: its keys were replaced by new ones."
	}
	c.render(w, r, http.StatusOK, "dsm", s, d)
	return nil
}

func (c *console) dsmRotate(w http.ResponseWriter, r *http.Request, s *session) error {
	_, err := c.svc.RotateIntegrationCredential(r.Context(), s.id, r.PathValue("id"), vault.RotationGenerate, dsmRetiredName)
	return seeOther(w, r, "/ui/dsm?notice=rotated#cred-"+url.PathEscape(r.PathValue("id")), err)
}

// dsmRetiredName names a security object replaced by a rotation as the DSM
// dialect does (internal/api/dsm's retiredName): the console's DSM page
// acts on DSM's objects, which DSM clients then list by these names.
func dsmRetiredName(name string, at time.Time) string {
	return name + " (rotated at " + at.UTC().Format("20060102T150405Z") + ")"
}
