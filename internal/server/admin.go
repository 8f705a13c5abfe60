package server

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// rekeyJob runs at most one master-key rotation at a time in the
// background and remembers the last outcome.
type rekeyJob struct {
	run func(ctx context.Context) (any, error)

	mu       sync.Mutex
	state    string // idle, running, done, failed
	started  time.Time
	finished time.Time
	report   any
	err      string
}

type rekeyStatus struct {
	Status   string `json:"status"`
	Started  string `json:"started_at,omitempty"`
	Finished string `json:"finished_at,omitempty"`
	Report   any    `json:"report,omitempty"`
	Error    string `json:"error,omitempty"`
}

func (j *rekeyJob) status() rekeyStatus {
	j.mu.Lock()
	defer j.mu.Unlock()
	st := rekeyStatus{Status: j.state, Report: j.report, Error: j.err}
	if st.Status == "" {
		st.Status = "idle"
	}
	if !j.started.IsZero() {
		st.Started = j.started.UTC().Format(time.RFC3339)
	}
	if !j.finished.IsZero() {
		st.Finished = j.finished.UTC().Format(time.RFC3339)
	}
	return st
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
// `credvault rekey`) and answers 202 at once; GET reports progress.
func (s *Server) handleRekeyStart() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := s.adminAuth(r)
		if err != nil {
			s.adminError(w, r, err)
			return
		}
		j := s.rekey
		if j.run == nil {
			s.adminError(w, r, vault.Errorf(vault.KindInvalid, "master-key rotation is not available on this server (the master key does not come from a file)"))
			return
		}
		j.mu.Lock()
		if j.state == "running" {
			j.mu.Unlock()
			s.adminError(w, r, vault.Errorf(vault.KindConflict, "a master-key rotation is already running"))
			return
		}
		// Fail closed: a rotation nobody can see in the audit trail does not start.
		if err := s.svc.Audit(r.Context(), id, "master_key.rotate", "master_key", "", nil); err != nil {
			j.mu.Unlock()
			s.adminError(w, r, err)
			return
		}
		j.state, j.started, j.finished, j.report, j.err = "running", time.Now(), time.Time{}, nil, ""
		j.mu.Unlock()
		go func() {
			rep, err := j.run(context.Background())
			j.mu.Lock()
			defer j.mu.Unlock()
			j.finished, j.report = time.Now(), rep
			if err != nil {
				j.state, j.err = "failed", err.Error()
				s.log.Error("master-key rotation failed", "err", err.Error())
				return
			}
			j.state = "done"
			s.log.Info("master-key rotation finished")
		}()
		httpx.WriteJSON(w, http.StatusAccepted, j.status())
	})
}

func (s *Server) handleRekeyStatus() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.adminAuth(r); err != nil {
			s.adminError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, s.rekey.status())
	})
}
