package server

import (
	"net/http"
	"strings"

	"github.com/credvault/credvault/api"
	"github.com/credvault/credvault/internal/api/dsm"
	"github.com/credvault/credvault/internal/api/sgp"
)

// routes mounts every endpoint. Each dialect registers its own routes over
// the same core.
func (s *Server) routes() {
	s.mux.Handle("GET /healthz", s.handleHealthz())
	s.mux.Handle("GET /readyz", s.handleReadyz())
	s.mux.Handle("GET /metrics", s.metricsHandler())
	s.mux.Handle("POST /admin/v1/rekey", s.handleRekeyStart())
	s.mux.Handle("GET /admin/v1/rekey", s.handleRekeyStatus())
	s.mux.Handle("GET /openapi/sgp-v5-credentials.openapi.yaml", staticDoc("application/yaml", api.SGPOpenAPI))
	s.mux.Handle("GET /openapi/dsm-subset.openapi.json", staticDoc("application/json", api.DSMOpenAPI))

	sgp.Register(s.mux, sgp.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})
	dsm.Register(s.mux, dsm.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})

	// Anything else is 404 in the shape of the dialect the path belongs to:
	// DSM errors are plain text, everything else FastAPI-style JSON.
	s.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/sys/") || strings.HasPrefix(r.URL.Path, "/crypto/") {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("not found: no endpoint matches this method and path\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"detail":"Not Found"}`))
	}))
}

func staticDoc(contentType string, b []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(b)
	})
}
