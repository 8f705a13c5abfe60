// Package e2e runs the real credvault binary as separate processes: several
// replicas on one PostgreSQL database, SIGKILL crash rounds on both engines,
// the database going away under load, wrong database URLs, backup and
// restore while serving, and graceful shutdown.
//
// TestMain builds ./cmd/credvault once into a temp dir and generates one
// master key (credvault keygen) shared by every server the tests start.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/pgtest"
)

var (
	binPath   string // the credvault binary built for this test process
	masterKey string // a Tink keyset from `credvault keygen`
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "credvault-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if err := pgtest.StopShared(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stopping the shared PostgreSQL cluster: %v\n", err)
	}
	os.Exit(code)
}

func build(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	binPath = filepath.Join(dir, "credvault")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", binPath, "./cmd/credvault")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/credvault: %w\n%s", err, out)
	}
	key, err := exec.CommandContext(ctx, binPath, "keygen").Output()
	if err != nil {
		return fmt.Errorf("credvault keygen: %w", err)
	}
	masterKey = strings.TrimSpace(string(key))
	return nil
}
