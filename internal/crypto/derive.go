package crypto

import (
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	tinkpb "github.com/tink-crypto/tink-go/v2/proto/tink_go_proto"
)

// Labels of the subkeys derived from the master key. Each use has its own
// label, so that a key derived for one purpose is useless for another.
const (
	// LabelBackupMAC derives the HMAC-SHA256 key that authenticates backups.
	LabelBackupMAC = "credvault backup mac v1"
)

// ErrNoSuchKey is returned by DeriveKey when the master keyset does not hold
// the requested key.
var ErrNoSuchKey = errors.New("the master keyset does not hold that key")

// DeriveKey returns a 32-byte subkey for label, derived with HKDF-SHA256
// from the secret material of one master key: keyID, or the primary key if
// keyID is 0. It also returns the id of the key it used, which the caller
// records beside whatever the subkey protects so that the same subkey can
// be derived again after the primary changes (a rotated keyset keeps the
// old key until nothing depends on it).
//
// The subkey never leaves the process and is never stored; whoever lacks
// the master key cannot compute it. Different labels give independent keys.
func (k *Keyring) DeriveKey(label string, keyID uint32) ([]byte, uint32, error) {
	if label == "" {
		return nil, 0, errors.New("derive key: empty label")
	}
	h := k.state.Load().handle
	if keyID == 0 {
		keyID = h.KeysetInfo().GetPrimaryKeyId()
	}
	ks := insecurecleartextkeyset.KeysetMaterial(h)
	for _, key := range ks.GetKey() {
		if key.GetKeyId() != keyID || key.GetStatus() != tinkpb.KeyStatusType_ENABLED {
			continue
		}
		// The serialized key proto (for AES-GCM: version and the 32 key
		// bytes) is the input keying material; its type URL is the salt,
		// so that keys of different types never share a subkey.
		ikm := key.GetKeyData().GetValue()
		if len(ikm) < 16 {
			return nil, 0, fmt.Errorf("derive key: master key %d has no usable secret material", keyID)
		}
		sub, err := hkdf.Key(sha256.New, ikm, []byte(key.GetKeyData().GetTypeUrl()), label, 32)
		if err != nil {
			return nil, 0, fmt.Errorf("derive key: %w", err)
		}
		return sub, keyID, nil
	}
	return nil, 0, fmt.Errorf("derive key: key %d: %w", keyID, ErrNoSuchKey)
}
