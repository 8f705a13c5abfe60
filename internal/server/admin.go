package server

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// RekeyJobs runs online master-key rotations (internal/app implements it
// on the database, so that every replica reports the same job).
type RekeyJobs interface {
	// Start starts a rotation in the background and returns its status at
	// once. audit is called, after the check that no rotation is running
	// and before the job starts: if it fails, nothing starts (a rotation
	// nobody can see in the audit trail does not run). KindConflict if a
	// rotation is running on any replica.
	Start(ctx context.Context, audit func() error) (RekeyStatus, error)
	// Status reports the most recent rotation (Status "idle" if none).
	Status(ctx context.Context) (RekeyStatus, error)
}

// RekeyStatus is the body of the rekey endpoints.
type RekeyStatus struct {
	ID     string `json:"id,omitempty"`
	Status string `json:"status"` // idle, running, done, failed, interrupted
	Resume bool   `json:"resume,omitempty"`
	// NewPrimary is the new primary master key id once it was added.
	NewPrimary uint32          `json:"new_primary_key_id,omitempty"`
	Started    string          `json:"started_at,omitempty"`
	Finished   string          `json:"finished_at,omitempty"`
	Report     json.RawMessage `json:"report,omitempty"`
	Error      string          `json:"error,omitempty"`
}

// adminAuth authenticates an admin API request (x-api-key, or
// Authorization: Basic <key> as DSM clients send) and requires an operator
// (an admin of the system account; see vault.Service.RequireOperator).
func (s *Server) adminAuth(r *http.Request) (*vault.Identity, error) {
	key := r.Header.Get("x-api-key")
	if key == "" {
		if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic "); ok {
			key = strings.TrimSpace(k)
		}
	}
	id, err := s.svc.Authenticate(r.Context(), key, strings.TrimSpace(r.Header.Get("x-selected-account-id")))
	if err != nil {
		return nil, err
	}
	httpx.SetIdentity(r.Context(), id)
	return id, s.svc.RequireOperator(r.Context(), id)
}

func (s *Server) adminError(w http.ResponseWriter, r *http.Request, err error) {
	httpx.LogError(r.Context(), s.log, err)
	httpx.WriteJSON(w, httpx.Status(err, nil), map[string]string{"detail": vault.Message(err)})
}

// handleRekeyStart starts an online master-key rotation (the same work as
// `credvault rekey`, or `credvault rekey --resume` after an interrupted
// one) and answers 202 at once; GET reports progress.
func (s *Server) handleRekeyStart() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.adminAuth(r)
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		if s.cfg.Rekey == nil {
			s.adminError(w, r, vault.Errorf(vault.KindInvalid, "master-key rotation is not available on this server (the master key does not come from a file)"))
			return
		}
		st, err := s.cfg.Rekey.Start(r.Context(), func() error {
			return s.svc.Audit(r.Context(), id, "master_key.rotate", "master_key", "", nil)
		})
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusAccepted, st)
	})
}

func (s *Server) handleRekeyStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.adminAuth(r); err != nil {
			s.adminError(w, r, err)
			return
		}
		if s.cfg.Rekey == nil {
			httpx.WriteJSON(w, http.StatusOK, RekeyStatus{Status: "idle"})
			return
		}
		st, err := s.cfg.Rekey.Status(r.Context())
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, st)
	})
}
