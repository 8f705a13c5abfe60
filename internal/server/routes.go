package server

import (
	"context"
	"net/http"
	"strings"

	"github.com/credvault/credvault/api"
	"github.com/credvault/credvault/internal/api/admin"
	"github.com/credvault/credvault/internal/api/dsm"
	"github.com/credvault/credvault/internal/api/sgp"
	"github.com/credvault/credvault/internal/console"
	"github.com/credvault/credvault/internal/vault"
)

// routes mounts every endpoint. Each dialect registers its own routes over
// the same core.
func (s *Server) routes() {
	s.mux.Handle("GET /healthz", s.handleHealthz())
	s.mux.Handle("GET /readyz", s.handleReadyz())
	if !s.cfg.MetricsElsewhere {
		s.mux.Handle("GET /metrics", s.MetricsHandler())
	}
	s.mux.Handle("POST /admin/v1/rekey", s.handleRekeyStart())
	s.mux.Handle("GET /admin/v1/rekey", s.handleRekeyStatus())
	s.mux.Handle("GET /openapi/sgp-v5-credentials.openapi.yaml", staticDoc("application/yaml", api.SGPOpenAPI))
	s.mux.Handle("GET /openapi/dsm-subset.openapi.json", staticDoc("application/json", api.DSMOpenAPI))
	s.mux.Handle("GET /openapi/admin-v1.openapi.yaml", staticDoc("application/yaml", api.AdminOpenAPI))

	sgp.Register(s.mux, sgp.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})
	dsm.Register(s.mux, dsm.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})
	admin.Register(s.mux, admin.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})
	console.Register(s.mux, console.Deps{Service: s.svc, Logger: s.log, Sessions: s.cfg.Console, Directory: s.cfg.Console, Audit: s.cfg.Console,
		Passwords: passwordLogin{s.svc}})
	s.mountWorkloadIdentity()

	// Anything else is 405 (a known path, another method) or 404, in the
	// shape of the dialect the path belongs to: DSM errors are plain text,
	// everything else FastAPI-style JSON.
	s.mux.Handle("/", http.HandlerFunc(s.unmatched))
}

// passwordLogin signs console users in with the management plane's
// password login (vault.Service.AuthenticatePassword: argon2id, the
// verify-first failed-auth throttle, disabled users refused). The console
// session it opens has no API key; it ends at sign-out, on its own
// timeouts, and when the user's password changes or the user is disabled
// or deleted (the store ends every session of the principal).
type passwordLogin struct{ svc *vault.Service }

func (p passwordLogin) LoginPassword(ctx context.Context, email, password string) (*vault.Identity, error) {
	return p.svc.AuthenticatePassword(ctx, email, password)
}

// routeMethods are the methods tried to build a 405's Allow header.
var routeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// unmatched answers a request no route took. The catch-all "/" matches
// every method, so the mux's own 405 never fires: the methods that do have
// a route for this path are found by asking the mux once per method.
func (s *Server) unmatched(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range routeMethods {
		probe := &http.Request{Method: m, URL: r.URL, Host: r.Host, Header: http.Header{}}
		if _, p := s.mux.Handler(probe); p != "" && p != "/" {
			allow = append(allow, m)
		}
	}
	dsm := strings.HasPrefix(r.URL.Path, "/sys/") || strings.HasPrefix(r.URL.Path, "/crypto/")
	status, text, detail := http.StatusNotFound, "not found: no endpoint matches this method and path\n", `{"detail":"Not Found"}`
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		status, text, detail = http.StatusMethodNotAllowed, "method not allowed: this path accepts "+strings.Join(allow, ", ")+"\n", `{"detail":"Method Not Allowed"}`
	}
	if dsm {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(text))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(detail))
}

func staticDoc(contentType string, b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	})
}
