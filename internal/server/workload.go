package server

import (
	"github.com/credvault/credvault/api"
	"github.com/credvault/credvault/internal/api/oauth"
	"github.com/credvault/credvault/internal/api/trust"
	"github.com/credvault/credvault/internal/oidc"
)

// mountWorkloadIdentity mounts the token exchange (POST /oauth/token), the
// trust-policy admin endpoints and their contract.
func (s *Server) mountWorkloadIdentity() {
	o := s.cfg.OIDC
	if o.Now == nil {
		o.Now = s.svc.Now
	}
	oauth.Register(s.mux, oauth.Deps{Service: s.svc, Verifier: oidc.New(o), Logger: s.log})
	trust.Register(s.mux, trust.Deps{Service: s.svc, Logger: s.log, MaxBody: s.cfg.MaxBodyBytes})
	s.mux.Handle("GET /openapi/trust-v1.openapi.yaml", staticDoc("application/yaml", api.TrustOpenAPI))
}
