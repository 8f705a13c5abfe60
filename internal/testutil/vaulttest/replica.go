package vaulttest

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/credvault/credvault/internal/app"
)

// Replica starts a second server on v's database and master key (another
// replica on PostgreSQL; a second process on the same file on SQLite),
// as credvault serve would.
func (v *Vault) Replica(t testing.TB) *Vault {
	t.Helper()
	logs := &syncBuffer{}
	cfg := v.Config
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("vaulttest: open replica: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	r := &Vault{
		URL: srv.URL, Engine: v.Engine, DatabaseURL: v.DatabaseURL, DataDir: v.DataDir, App: a, Config: cfg,
		AdminKey: v.AdminKey, AccountID: v.AccountID, PrincipalID: v.PrincipalID,
		logs: logs, server: srv, client: srv.Client(),
	}
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return r
}
