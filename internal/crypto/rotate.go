package crypto

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
)

// AddPrimary returns a copy of the master keyset with a new AES-256-GCM key
// (from crypto/rand) as its primary. The old keys stay, so everything they
// wrapped still opens.
func AddPrimary(h *keyset.Handle) (*keyset.Handle, uint32, error) {
	m := keyset.NewManagerFromHandle(h)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, 0, fmt.Errorf("rotate master key: %w", err)
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, 0, fmt.Errorf("rotate master key: %w", err)
	}
	nh, err := m.Handle()
	if err != nil {
		return nil, 0, fmt.Errorf("rotate master key: %w", err)
	}
	return nh, id, nil
}

// RemoveKeys returns a copy of the keyset without the given (non-primary)
// keys.
func RemoveKeys(h *keyset.Handle, ids []uint32) (*keyset.Handle, error) {
	m := keyset.NewManagerFromHandle(h)
	for _, id := range ids {
		if id == h.KeysetInfo().GetPrimaryKeyId() {
			return nil, fmt.Errorf("retire master key %d: it is the primary", id)
		}
		if err := m.Delete(id); err != nil {
			return nil, fmt.Errorf("retire master key %d: %w", id, err)
		}
	}
	return m.Handle()
}

// Save writes the keyset to the provider's file atomically (temporary file,
// fsync, rename, fsync of the directory), with 0600 permissions.
func (p *FileProvider) Save(h *keyset.Handle) error {
	data, err := MarshalKEK(h)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p.Path)
	f, err := os.CreateTemp(dir, ".master-key-*")
	if err != nil {
		return fmt.Errorf("save master key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save master key: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("save master key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("save master key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save master key: %w", err)
	}
	if err := os.Rename(tmp, p.Path); err != nil {
		return fmt.Errorf("save master key: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
