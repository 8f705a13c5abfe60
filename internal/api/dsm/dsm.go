// Package dsm is the Fortanix DSM dialect of credvault: sessions, groups,
// apps, security objects and integration credentials, as a thin adapter over
// the core in internal/vault.
package dsm

import (
	"log/slog"
	"net/http"

	"github.com/credvault/credvault/internal/vault"
)

// Deps are the dialect's dependencies.
type Deps struct {
	Service *vault.Service
	Logger  *slog.Logger
	MaxBody int64
}

// Register mounts the DSM routes on mux.
func Register(mux *http.ServeMux, d Deps) {}
