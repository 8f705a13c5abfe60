package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

var pageNames = []string{"login", "error", "credentials", "credential", "credential_new", "credential_delete", "audit", "access", "dsm"}

var funcs = template.FuncMap{
	"time": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return ""
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return ""
	},
	"json": func(m json.RawMessage) string {
		if len(m) == 0 {
			return "{}"
		}
		var b bytes.Buffer
		if json.Indent(&b, m, "", "  ") != nil {
			return string(m)
		}
		return b.String()
	},
	"can": func(role vault.Role, what string) bool {
		switch what {
		case "read_secret":
			return role.Allows(vault.ActReadSecret)
		case "write":
			return role.Allows(vault.ActWrite)
		case "admin":
			return role.Allows(vault.ActAdmin)
		}
		return false
	},
}

func parseTemplates() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, p := range pageNames {
		out[p] = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+p+".html"))
	}
	return out
}

// view is what every page template receives.
type view struct {
	Title    string
	Nav      string
	Signed   bool
	Name     string
	Kind     vault.PrincipalKind
	Role     vault.Role
	Account  string
	Accounts []accountChoice
	CSRF     string
	Notice   string
	Data     any
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, page string, s *session, data any) {
	v := view{Title: page, Nav: page, Data: data}
	if s != nil {
		v.Signed, v.Name, v.Kind, v.Role, v.CSRF, v.Accounts = true, s.id.Principal.Name, s.id.Principal.Kind, s.id.Role, s.csrf, s.accounts
		for _, a := range s.accounts {
			if a.Current {
				v.Account = a.Name
			}
		}
	}
	if m, ok := data.(map[string]any); ok {
		if t, ok := m["Title"].(string); ok {
			v.Title = t
		}
	} else if rv := reflect.Indirect(reflect.ValueOf(data)); rv.Kind() == reflect.Struct {
		if f := rv.FieldByName("Title"); f.IsValid() && f.Kind() == reflect.String {
			v.Title = f.String()
		}
		if f := rv.FieldByName("Notice"); f.IsValid() && f.Kind() == reflect.String {
			v.Notice = f.String()
		}
	}
	var buf bytes.Buffer
	if err := c.pages[page].Execute(&buf, v); err != nil {
		httpx.LogError(r.Context(), c.log, fmt.Errorf("console: render %s: %w", page, err))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// statusOf is the HTTP status of err: the shared kind→status table.
func statusOf(err error) int { return httpx.Status(err, nil) }

// message is the client-safe text of err (never a cause's text).
func message(err error) string {
	if vault.KindOf(err) == vault.KindInternal {
		return "An internal error occurred; the server log has the details (look up the request id)."
	}
	msg := vault.Message(err)
	if msg == "" {
		return "The request failed."
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

func (c *console) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status := statusOf(err)
	if status >= 500 {
		httpx.LogError(r.Context(), c.log, err)
	}
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(httpx.RetryAfter(err)))
	}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		httpx.WriteJSON(w, status, map[string]string{"error": message(err)})
		return
	}
	c.render(w, r, status, "error", s, map[string]any{"Title": "Error", "Message": message(err), "Status": status, "RequestID": httpx.RequestID(r.Context())})
}
