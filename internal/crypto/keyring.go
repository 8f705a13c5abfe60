// Package crypto is credvault's encryption layer: envelope encryption of
// payloads and key material with Tink, under a master key (the
// key-encryption key, KEK) that is never stored in the database.
//
// Every Seal generates a fresh AES-256-GCM data key (DEK), encrypts the
// plaintext with it, wraps the DEK with the master keyset's primary key and
// returns Tink's KMS envelope format:
//
//	uint32 len(wrapped DEK) || wrapped DEK || AES-GCM ciphertext of the payload
//
// The wrapped DEK carries Tink's 5-byte key prefix, so a master keyset can hold
// several keys: new data keys are wrapped by the primary, old ones still
// open, and Rewrap moves a ciphertext to the primary without touching the
// payload ciphertext.
package crypto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// Keyring seals and opens payloads under a master keyset. It is safe for
// concurrent use, and its keyset can be swapped at run time (master key
// rotation) without stopping.
type Keyring struct {
	state atomic.Pointer[keyringState]

	// reload, if set, re-reads the master keyset; Open calls it (at most
	// once a second) when a ciphertext does not open, so that a server picks
	// up a rotated keyset as soon as it meets data wrapped by the new key.
	reload     func() (*keyset.Handle, error)
	lastReload atomic.Int64
}

type keyringState struct {
	handle   *keyset.Handle
	kek      tink.AEAD
	envelope tink.AEAD
}

func newState(h *keyset.Handle) (*keyringState, error) {
	kek, err := aead.New(h)
	if err != nil {
		return nil, fmt.Errorf("keyring: master keyset is not an AEAD keyset: %w", err)
	}
	return &keyringState{handle: h, kek: kek, envelope: aead.NewKMSEnvelopeAEAD2(aead.AES256GCMKeyTemplate(), kek)}, nil
}

// NewKeyring returns a Keyring whose KEK is the AEAD keyset h.
func NewKeyring(h *keyset.Handle) (*Keyring, error) {
	st, err := newState(h)
	if err != nil {
		return nil, err
	}
	k := &Keyring{}
	k.state.Store(st)
	return k, nil
}

// Swap replaces the master keyset. New seals use its primary key; every
// ciphertext wrapped by any of its keys opens.
func (k *Keyring) Swap(h *keyset.Handle) error {
	st, err := newState(h)
	if err != nil {
		return err
	}
	k.state.Store(st)
	return nil
}

// SetReloader installs the function Open uses to re-read the keyset.
func (k *Keyring) SetReloader(fn func() (*keyset.Handle, error)) { k.reload = fn }

// Reload re-reads the keyset through the reloader and swaps it in. It
// reports whether the key ids changed.
func (k *Keyring) Reload() (bool, error) {
	if k.reload == nil {
		return false, nil
	}
	h, err := k.reload()
	if err != nil {
		return false, err
	}
	if sameKeys(h, k.state.Load().handle) {
		return false, nil
	}
	return true, k.Swap(h)
}

func sameKeys(a, b *keyset.Handle) bool {
	ai, bi := a.KeysetInfo(), b.KeysetInfo()
	if ai.GetPrimaryKeyId() != bi.GetPrimaryKeyId() || len(ai.GetKeyInfo()) != len(bi.GetKeyInfo()) {
		return false
	}
	for i, x := range ai.GetKeyInfo() {
		y := bi.GetKeyInfo()[i]
		if x.GetKeyId() != y.GetKeyId() || x.GetStatus() != y.GetStatus() {
			return false
		}
	}
	return true
}

// KeyIDs returns the ids of the enabled master keys and the primary's.
func (k *Keyring) KeyIDs() (ids []uint32, primary uint32) {
	info := k.state.Load().handle.KeysetInfo()
	for _, ki := range info.GetKeyInfo() {
		ids = append(ids, ki.GetKeyId())
	}
	return ids, info.GetPrimaryKeyId()
}

// NewKEK returns a new master keyset with one AES-256-GCM key, generated
// from crypto/rand by Tink.
func NewKEK() (*keyset.Handle, error) {
	h, err := keyset.NewHandle(aead.AES256GCMKeyTemplate())
	if err != nil {
		return nil, fmt.Errorf("generate master key: %w", err)
	}
	return h, nil
}

// MarshalKEK serialises a master keyset as Tink's JSON keyset format. The
// result is secret.
func MarshalKEK(h *keyset.Handle) ([]byte, error) {
	var buf bytes.Buffer
	if err := insecurecleartextkeyset.Write(h, keyset.NewJSONWriter(&buf)); err != nil {
		return nil, fmt.Errorf("marshal master key: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseKEK parses a master keyset in Tink's JSON keyset format, or the
// base64 encoding of it (convenient for environment variables).
func ParseKEK(b []byte) (*keyset.Handle, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] != '{' {
		dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, errors.New("master key is neither a Tink JSON keyset nor base64 of one")
		}
		b = dec
	}
	h, err := insecurecleartextkeyset.Read(keyset.NewJSONReader(bytes.NewReader(b)))
	if err != nil {
		// Tink's error does not contain key material, but keep ours generic anyway.
		return nil, errors.New("master key is not a valid Tink JSON keyset")
	}
	return h, nil
}

// Seal encrypts plaintext bound to associatedData.
func (k *Keyring) Seal(plaintext, associatedData []byte) ([]byte, error) {
	ct, err := k.state.Load().envelope.Encrypt(plaintext, associatedData)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return ct, nil
}

// ErrOpen is returned when a ciphertext does not open: it was changed, moved
// to another row, or sealed under a master key this keyring does not have.
var ErrOpen = errors.New("ciphertext does not open under this master key and associated data")

// Open decrypts a ciphertext produced by Seal with the same associated data.
func (k *Keyring) Open(ciphertext, associatedData []byte) ([]byte, error) {
	pt, err := k.state.Load().envelope.Decrypt(ciphertext, associatedData)
	if err == nil {
		return pt, nil
	}
	// Perhaps the master keyset was rotated by another process: re-read it
	// (at most once a second) and try again.
	if now := time.Now().Unix(); k.reload != nil && k.lastReload.Swap(now) != now {
		if changed, rerr := k.Reload(); rerr == nil && changed {
			if pt, err := k.state.Load().envelope.Decrypt(ciphertext, associatedData); err == nil {
				return pt, nil
			}
		}
	}
	return nil, ErrOpen
}

// PrimaryKeyID is the id of the master key that wraps new data keys.
func (k *Keyring) PrimaryKeyID() uint32 { return k.state.Load().handle.KeysetInfo().GetPrimaryKeyId() }

// WrappingKeyID returns the id of the master key that wrapped the data key
// of ciphertext (from Tink's output prefix of the wrapped DEK).
func WrappingKeyID(ciphertext []byte) (uint32, error) {
	wrapped, _, err := splitEnvelope(ciphertext)
	if err != nil {
		return 0, err
	}
	if len(wrapped) < 5 || wrapped[0] != 1 {
		return 0, errors.New("envelope: wrapped data key has no Tink key prefix")
	}
	return binary.BigEndian.Uint32(wrapped[1:5]), nil
}

// Rewrap re-wraps the data key of ciphertext under the current primary master
// key. The payload ciphertext (and so its associated data) is unchanged.
func (k *Keyring) Rewrap(ciphertext []byte) ([]byte, error) {
	wrapped, payload, err := splitEnvelope(ciphertext)
	if err != nil {
		return nil, err
	}
	st := k.state.Load()
	dek, err := st.kek.Decrypt(wrapped, nil)
	if err != nil {
		return nil, ErrOpen
	}
	rewrapped, err := st.kek.Encrypt(dek, nil)
	if err != nil {
		return nil, fmt.Errorf("rewrap: %w", err)
	}
	out := make([]byte, 0, 4+len(rewrapped)+len(payload))
	out = binary.BigEndian.AppendUint32(out, uint32(len(rewrapped)))
	out = append(out, rewrapped...)
	return append(out, payload...), nil
}

// maxWrappedDEK mirrors Tink's own bound on the wrapped DEK length.
const maxWrappedDEK = 4096

// splitEnvelope parses Tink's KMS envelope format without trusting any length.
func splitEnvelope(ct []byte) (wrapped, payload []byte, err error) {
	if len(ct) <= 4 {
		return nil, nil, errors.New("envelope: too short")
	}
	n := binary.BigEndian.Uint32(ct[:4])
	if n == 0 || n > maxWrappedDEK || int(n) > len(ct)-4 {
		return nil, nil, errors.New("envelope: bad wrapped key length")
	}
	return ct[4 : 4+n], ct[4+n:], nil
}

// Handle returns the keyring's current keyset (secret: for storing it
// encrypted, never for printing).
func (k *Keyring) Handle() *keyset.Handle { return k.state.Load().handle }
