package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
)

// Purposes (HKDF info strings) of the keys derived from the master key. Each
// use has its own, so that a key derived for one purpose is useless for
// another.
const (
	// LabelBackupMAC derives the HMAC-SHA256 key that authenticates backups.
	LabelBackupMAC = "credvault backup mac v1"
)

// ErrNoSuchKey is returned by DeriveKey when the master keyset does not hold
// the requested key (another master key, or one retired by a rotation).
var ErrNoSuchKey = errors.New("the master keyset does not hold that key")

// DeriveKey returns a 32-byte key dedicated to purpose, derived with
// HKDF-SHA256 from the master key keyID (0 selects the primary), and the id
// of the master key it was derived from. Derived keys authenticate things
// the database or a backup holds (the audit trail's head and checkpoints,
// backups); they never encrypt data, and no data key is reused for them.
// Someone with the database but not the master key cannot compute them.
//
// A derived key depends on one master key: after a rotation retires that
// key, what it authenticated must have been re-authenticated under a newer
// one (the audit head is, on its next append).
func (k *Keyring) DeriveKey(keyID uint32, purpose string) (uint32, []byte, error) {
	if purpose == "" {
		return 0, nil, errors.New("derive key: empty purpose")
	}
	id, key, err := k.derive(keyID, purpose)
	if now := time.Now().Unix(); err != nil && keyID != 0 && k.reload != nil && k.lastReload.Swap(now) != now {
		// Perhaps another process rotated the keyset: re-read it (at most
		// once a second).
		if changed, rerr := k.Reload(); rerr == nil && changed {
			return k.derive(keyID, purpose)
		}
	}
	return id, key, err
}

func (k *Keyring) derive(keyID uint32, purpose string) (uint32, []byte, error) {
	ks := insecurecleartextkeyset.KeysetMaterial(k.state.Load().handle)
	if keyID == 0 {
		keyID = ks.GetPrimaryKeyId()
	}
	for _, key := range ks.GetKey() {
		if key.GetKeyId() != keyID {
			continue
		}
		ikm := key.GetKeyData().GetValue() // the serialised key, raw key bytes included
		if len(ikm) < 32 {
			return 0, nil, fmt.Errorf("derive key: master key %d has no usable key material", keyID)
		}
		out, err := hkdf.Key(sha256.New, ikm, []byte("credvault/derived-key/v1"), purpose, 32)
		if err != nil {
			return 0, nil, fmt.Errorf("derive key: %w", err)
		}
		return keyID, out, nil
	}
	return 0, nil, fmt.Errorf("derive key: master key %d: %w", keyID, ErrNoSuchKey)
}
