package crypto_test

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/crypto"
)

func TestFileProvider(t *testing.T) {
	ctx := context.Background()

	t.Run("ok/generates-0600-file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "master-key.json")
		p := &crypto.FileProvider{Path: path, Generate: true}
		h, err := p.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Generated {
			t.Error("Generated = false for a new file")
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("permissions %v, want 0600", perm)
		}
		kr, err := crypto.NewKeyring(h)
		if err != nil {
			t.Fatal(err)
		}
		ct := seal(t, kr, "secret", "ad")

		// Loading again reads the same key and generates nothing.
		p2 := &crypto.FileProvider{Path: path, Generate: true}
		h2, err := p2.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p2.Generated {
			t.Error("Generated = true for an existing file")
		}
		kr2, err := crypto.NewKeyring(h2)
		if err != nil {
			t.Fatal(err)
		}
		wantOpen(t, kr2, ct, "ad", "secret")
		if strings.Contains(p.Name(), "{") {
			t.Errorf("Name() = %q looks like key material", p.Name())
		}
	})

	t.Run("ok/reads-base64-file", func(t *testing.T) {
		_, h := newKeyring(t)
		js, err := crypto.MarshalKEK(h)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "key.b64")
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(js)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := (&crypto.FileProvider{Path: path}).Load(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("err/missing-without-generate", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.json")
		p := &crypto.FileProvider{Path: path}
		if _, err := p.Load(ctx); err == nil {
			t.Fatal("a missing key file was accepted")
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("a key file was created without Generate: %v", err)
		}
	})

	t.Run("err/garbage-file-not-echoed", func(t *testing.T) {
		const secret = "SUPERSECRETGARBAGE"
		path := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(path, []byte(secret), 0o600); err != nil {
			t.Fatal(err)
		}
		p := &crypto.FileProvider{Path: path, Generate: true}
		_, err := p.Load(ctx)
		if err == nil {
			t.Fatal("a garbage key file was accepted")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error echoes the file: %v", err)
		}
		if p.Generated {
			t.Error("an existing (bad) file was replaced by a generated key")
		}
		if b, _ := os.ReadFile(path); string(b) != secret {
			t.Error("the bad key file was overwritten")
		}
	})
}

func TestEnvProvider(t *testing.T) {
	ctx := context.Background()
	_, h := newKeyring(t)
	js, err := crypto.MarshalKEK(h)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ok/json-and-base64", func(t *testing.T) {
		for _, val := range []string{string(js), base64.StdEncoding.EncodeToString(js)} {
			p := crypto.EnvProvider{Var: "CREDVAULT_MASTER_KEY", Value: val}
			if _, err := p.Load(ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(p.Name(), val) || p.Name() != "env:CREDVAULT_MASTER_KEY" {
				t.Errorf("Name() = %q", p.Name())
			}
		}
	})

	t.Run("err/garbage-not-echoed", func(t *testing.T) {
		const secret = "SUPERSECRETGARBAGE"
		_, err := crypto.EnvProvider{Var: "CREDVAULT_MASTER_KEY", Value: secret}.Load(ctx)
		if err == nil {
			t.Fatal("garbage accepted")
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error echoes the value: %v", err)
		}
		if !strings.Contains(err.Error(), "CREDVAULT_MASTER_KEY") {
			t.Errorf("error %q does not name the variable", err)
		}
	})
}
