package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/credvault/credvault/internal/vault"
)

// pageSize is the number of credentials per list page.
const pageSize = 25

// searchScan bounds how many credentials a substring search reads.
const searchScan = 2000

type listData struct {
	Title     string
	Query     string
	Sort      string
	Desc      bool
	Items     []vault.Credential
	Total     int
	Next      string // query string of the next page, "" if none
	Prev      string
	Searched  bool
	Truncated bool
	Sorts     []string
	Notice    string
}

// credentialList lists the account's credentials: sorted and paged by the
// store (keyset pagination); a search is an exact name match, or else a
// case-insensitive substring match over at most searchScan credentials.
func (c *console) credentialList(w http.ResponseWriter, r *http.Request, s *session) error {
	q := r.URL.Query()
	d := listData{Title: "Credentials", Query: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort"), Desc: q.Get("desc") == "1", Sorts: vault.SortFields, Notice: noticeText(q.Get("notice"))}
	if d.Sort == "" {
		d.Sort = vault.SortName
	}
	cq := vault.CredentialQuery{Limit: pageSize, SortBy: d.Sort, Desc: d.Desc, After: q.Get("after"), Before: q.Get("before")}
	ctx := r.Context()
	if d.Query != "" {
		d.Searched = true
		name := d.Query
		exact, err := c.svc.ListCredentials(ctx, s.id, vault.CredentialQuery{Name: &name, Limit: 1, SortBy: d.Sort})
		if err != nil {
			return err
		}
		d.Items = exact.Items
		needle := strings.ToLower(d.Query)
		scan := vault.CredentialQuery{Limit: 500, SortBy: d.Sort, Desc: d.Desc}
		for read := 0; read < searchScan; {
			page, err := c.svc.ListCredentials(ctx, s.id, scan)
			if err != nil {
				return err
			}
			for _, it := range page.Items {
				if it.Name != d.Query && strings.Contains(strings.ToLower(it.Name), needle) {
					d.Items = append(d.Items, it)
				}
			}
			read += len(page.Items)
			if !page.HasMore || len(page.Items) == 0 {
				break
			}
			if read >= searchScan {
				d.Truncated = true
			}
			scan.After = page.Items[len(page.Items)-1].ID
		}
		d.Total = len(d.Items)
		if len(d.Items) > 200 {
			d.Items, d.Truncated = d.Items[:200], true
		}
		c.render(w, r, http.StatusOK, "credentials", s, d)
		return nil
	}
	page, err := c.svc.ListCredentials(ctx, s.id, cq)
	if err != nil {
		return err
	}
	d.Items, d.Total = page.Items, page.Total
	link := func(k, v string) string {
		u := url.Values{"sort": {d.Sort}, k: {v}}
		if d.Desc {
			u.Set("desc", "1")
		}
		return "?" + u.Encode()
	}
	if len(page.Items) > 0 {
		first, last := page.Items[0].ID, page.Items[len(page.Items)-1].ID
		forward := cq.Before == ""
		if (forward && page.HasMore) || (!forward) {
			d.Next = link("after", last)
		}
		if (!forward && page.HasMore) || (forward && cq.After != "") {
			d.Prev = link("before", first)
		}
	}
	c.render(w, r, http.StatusOK, "credentials", s, d)
	return nil
}

func noticeText(code string) string {
	switch code {
	case "deleted":
		return "The credential was deleted."
	case "created":
		return "The credential was created."
	case "saved":
		return "Your changes were saved."
	case "payload":
		return "The payload was replaced (a new version)."
	}
	return ""
}

type detailData struct {
	Title     string
	Cred      *vault.Credential
	Creator   string
	Audit     []vault.AuditRecord
	AuditNote string
	Notice    string
}

func (c *console) credentialDetail(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx := r.Context()
	cr, err := c.svc.GetCredential(ctx, s.id, r.PathValue("id"))
	if err != nil {
		return err
	}
	d := detailData{Title: cr.Name, Cred: cr, Creator: cr.CreatedBy, Notice: noticeText(r.URL.Query().Get("notice"))}
	if p, err := c.dir.GetPrincipal(ctx, cr.CreatedBy); err == nil {
		d.Creator = p.Name + " (" + string(p.Kind) + ", " + p.ID + ")"
	}
	// The audit trail is for account admins (as GET /sys/v1/logs).
	if s.id.Role.Allows(vault.ActAdmin) {
		recs, err := c.svc.AuditLogs(ctx, s.id, vault.AuditQuery{ObjectID: cr.ID, Limit: 20})
		if err != nil {
			return err
		}
		d.Audit = recs
	} else {
		d.AuditNote = "The audit trail is visible to account admins."
	}
	c.render(w, r, http.StatusOK, "credential", s, d)
	return nil
}

func (c *console) credentialNew(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := s.id.Require(vault.ActWrite); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "credential_new", s, map[string]any{"Title": "New credential", "Type": "secret"})
	return nil
}

func metadataOf(text string) (json.RawMessage, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid([]byte(text)) {
		return nil, vault.FieldError("metadata", "metadata must be a JSON object, e.g. {\"team\": \"data\"}")
	}
	return json.RawMessage(text), nil
}

func (c *console) credentialCreate(w http.ResponseWriter, r *http.Request, s *session) error {
	in := vault.CredentialInput{
		Name:        strings.TrimSpace(r.PostFormValue("name")),
		Type:        strings.TrimSpace(r.PostFormValue("type")),
		Description: r.PostFormValue("description"),
		Payload:     []byte(r.PostFormValue("payload")),
	}
	meta, err := metadataOf(r.PostFormValue("metadata"))
	if err == nil {
		in.Metadata = meta
		var cr *vault.Credential
		if cr, err = c.svc.CreateCredential(r.Context(), s.id, in); err == nil {
			http.Redirect(w, r, "/ui/credentials/"+url.PathEscape(cr.ID)+"?notice=created", http.StatusSeeOther)
			return nil
		}
	}
	if vault.KindOf(err) != vault.KindInvalid && vault.KindOf(err) != vault.KindConflict && vault.KindOf(err) != vault.KindTooLarge {
		return err
	}
	// Show the form again with the error; the payload is not echoed back.
	c.render(w, r, statusOf(err), "credential_new", s, map[string]any{"Title": "New credential", "Error": message(err),
		"Name": in.Name, "Type": in.Type, "Description": in.Description, "Metadata": r.PostFormValue("metadata")})
	return nil
}

func (c *console) credentialEdit(w http.ResponseWriter, r *http.Request, s *session) error {
	desc := r.PostFormValue("description")
	meta, err := metadataOf(r.PostFormValue("metadata"))
	if err != nil {
		return err
	}
	cr, err := c.svc.UpdateCredential(r.Context(), s.id, r.PathValue("id"), vault.CredentialPatch{Description: &desc, Metadata: meta})
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/ui/credentials/"+url.PathEscape(cr.ID)+"?notice=saved", http.StatusSeeOther)
	return nil
}

func (c *console) credentialPayload(w http.ResponseWriter, r *http.Request, s *session) error {
	p := r.PostFormValue("payload")
	if p == "" {
		return vault.FieldError("payload", "the new payload must not be empty")
	}
	cr, err := c.svc.UpdateCredential(r.Context(), s.id, r.PathValue("id"), vault.CredentialPatch{Payload: []byte(p)})
	if err != nil {
		return err
	}
	http.Redirect(w, r, "/ui/credentials/"+url.PathEscape(cr.ID)+"?notice=payload", http.StatusSeeOther)
	return nil
}

// credentialReveal answers the reveal button's fetch with the payload, as
// JSON, never cached. It goes through DecryptCredential, the method the
// SGP decrypt endpoint uses, so it is audited as credential.decrypt and
// refused to roles without read_secret.
func (c *console) credentialReveal(w http.ResponseWriter, r *http.Request, s *session) error {
	r.Header.Set("Accept", "application/json") // errors as JSON for the script
	cr, pt, err := c.svc.DecryptCredential(r.Context(), s.id, r.PathValue("id"), "")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(map[string]string{"payload": string(pt), "version": strconv.FormatInt(cr.Version, 10)})
}

func (c *console) credentialDeleteConfirm(w http.ResponseWriter, r *http.Request, s *session) error {
	cr, err := c.svc.GetCredential(r.Context(), s.id, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := s.id.Require(vault.ActWrite); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "credential_delete", s, map[string]any{"Title": "Delete " + cr.Name, "Cred": cr})
	return nil
}

func (c *console) credentialDelete(w http.ResponseWriter, r *http.Request, s *session) error {
	cr, err := c.svc.GetCredential(r.Context(), s.id, r.PathValue("id"))
	if err != nil {
		return err
	}
	if r.PostFormValue("confirm_name") != cr.Name {
		return vault.FieldError("confirm_name", "type the credential's name exactly to confirm the deletion")
	}
	if err := c.svc.DeleteCredential(r.Context(), s.id, cr.ID); err != nil {
		return err
	}
	http.Redirect(w, r, "/ui/credentials?notice=deleted", http.StatusSeeOther)
	return nil
}
