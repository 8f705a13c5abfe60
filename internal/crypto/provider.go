package crypto

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/tink-crypto/tink-go/v2/keyset"
)

// A Provider supplies the master keyset. File and environment providers are
// built in; a KMS provider would return a keyset handle whose primitive is a
// remote AEAD (see docs/security.md).
type Provider interface {
	// Name describes the provider for logs, without secrets.
	Name() string
	Load(ctx context.Context) (*keyset.Handle, error)
}

// EnvProvider reads the master keyset from the value of an environment
// variable (Tink JSON keyset, or base64 of it).
type EnvProvider struct {
	Var   string
	Value string
}

func (p EnvProvider) Name() string { return "env:" + p.Var }

func (p EnvProvider) Load(context.Context) (*keyset.Handle, error) {
	h, err := ParseKEK([]byte(p.Value))
	if err != nil {
		return nil, fmt.Errorf("master key from $%s: %w", p.Var, err)
	}
	return h, nil
}

// FileProvider reads the master keyset from a file. With Generate set, a
// missing file is created with a new keyset and 0600 permissions (Generated
// reports it) — a development convenience only.
type FileProvider struct {
	Path     string
	Generate bool

	Generated bool
}

func (p *FileProvider) Name() string { return "file:" + p.Path }

func (p *FileProvider) Load(context.Context) (*keyset.Handle, error) {
	b, err := os.ReadFile(p.Path)
	if errors.Is(err, fs.ErrNotExist) && p.Generate {
		h, err := NewKEK()
		if err != nil {
			return nil, err
		}
		data, err := MarshalKEK(h)
		if err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p.Path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("create master key file: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return nil, fmt.Errorf("write master key file: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("sync master key file: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close master key file: %w", err)
		}
		p.Generated = true
		return h, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read master key file: %w", err)
	}
	h, err := ParseKEK(b)
	if err != nil {
		return nil, fmt.Errorf("master key file %s: %w", p.Path, err)
	}
	return h, nil
}
