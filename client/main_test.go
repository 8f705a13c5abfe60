package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/testutil/pgtest"
)

// TestMain starts one real credvault (SQLite in a temp dir, loopback HTTP)
// for the Examples, which read its address and admin key from
// CREDVAULT_URL and CREDVAULT_API_KEY as a program would.
func TestMain(m *testing.M) {
	stop, err := startExampleServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "client: example server:", err)
		os.Exit(1)
	}
	code := m.Run()
	stop()
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping the shared PostgreSQL cluster: %v\n", err)
	}
	os.Exit(code)
}

func startExampleServer() (stop func(), err error) {
	dir, err := os.MkdirTemp("", "credvault-client-example-")
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	a, err := app.Open(ctx, app.Config{DataDir: dir, DatabaseURL: filepath.Join(dir, "credvault.db"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	boot, err := a.Bootstrap(ctx, "")
	if err != nil {
		a.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		a.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	srv := &http.Server{Handler: a.Handler}
	go srv.Serve(ln)
	os.Setenv("CREDVAULT_URL", "http://"+ln.Addr().String())
	os.Setenv("CREDVAULT_API_KEY", boot.APIKey)
	return func() {
		srv.Close()
		a.Close()
		os.RemoveAll(dir)
	}, nil
}
