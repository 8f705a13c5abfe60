// Package cryptotest builds real keyrings for tests: a fresh master keyset
// (crypto.NewKEK) behind a crypto.Keyring, as the server builds one.
package cryptotest

import (
	"testing"

	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/credvault/credvault/internal/crypto"
)

// NewKeyring returns a keyring over a fresh master keyset, and the keyset.
func NewKeyring(t testing.TB) (*crypto.Keyring, *keyset.Handle) {
	t.Helper()
	h, err := crypto.NewKEK()
	if err != nil {
		t.Fatal(err)
	}
	return KeyringOf(t, h), h
}

// KeyringOf returns a keyring over the master keyset h.
func KeyringOf(t testing.TB, h *keyset.Handle) *crypto.Keyring {
	t.Helper()
	kr, err := crypto.NewKeyring(h)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}
