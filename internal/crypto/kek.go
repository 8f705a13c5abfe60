package crypto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/tink"

	"github.com/credvault/credvault/internal/crypto/pkcs11kms"
)

// A RootKey is a key-encryption key that lives outside the process (an HSM
// key, or a KMS key): it encrypts and decrypts the data-key keyset and
// nothing else, and its key material never enters credvault's memory.
//
// This is the seam for KMS backends: a Tink KMS client (aws-kms://,
// gcp-kms://, hcvault://) returns exactly such an AEAD. Only pkcs11: is
// implemented, because it is the only one this project can test against a
// real implementation (SoftHSM2); see docs/security.md.
type RootKey interface {
	tink.AEAD
	// String names the key (its URI without PIN or credentials).
	String() string
	Close() error
}

// RootKeyOptions tunes OpenRootKey.
type RootKeyOptions struct {
	// Generate creates the key in the HSM if it does not exist yet.
	Generate bool
}

// OpenRootKey opens the root key named by uri. It reports whether the key
// was generated just now.
func OpenRootKey(ctx context.Context, uri string, opts RootKeyOptions) (RootKey, bool, error) {
	scheme, _, _ := strings.Cut(uri, ":")
	switch scheme {
	case pkcs11kms.Scheme:
		u, err := pkcs11kms.ParseURI(uri)
		if err != nil {
			return nil, false, err
		}
		k, err := pkcs11kms.Open(ctx, u, pkcs11kms.Options{Generate: opts.Generate})
		if err != nil {
			return nil, false, err
		}
		return k, k.Generated(), nil
	case "aws-kms", "gcp-kms", "hcvault", "azure-keyvault":
		return nil, false, fmt.Errorf("master key uri: %s:// keys are not supported by this build (no KMS backend is shipped until it can be tested against a real server; see docs/security.md, \"Key hierarchy and HSM\")", scheme)
	default:
		return nil, false, errors.New("master key uri: unknown scheme (want pkcs11:token=…;object=…?module-path=…&pin-source=file:…)")
	}
}

// RootKeyName returns the printable name of a root-key URI (without PIN or
// credentials), or "" if it cannot be parsed.
func RootKeyName(uri string) string {
	if u, err := pkcs11kms.ParseURI(uri); err == nil {
		return u.String()
	}
	return ""
}

// keysetAD binds an encrypted data-key keyset to its purpose: a ciphertext
// of the root key made for anything else does not open as a keyset.
var keysetAD = []byte("credvault/data-keyset/v1")

// EncryptKeyset serialises the data-key keyset h encrypted under the root
// key (Tink's EncryptedKeyset: the whole keyset, encrypted with the root
// AEAD, plus the key ids and statuses in the clear). The result is safe to
// store beside the data: without the root key it reveals no key material.
func EncryptKeyset(h *keyset.Handle, root tink.AEAD) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), root, keysetAD); err != nil {
		return nil, fmt.Errorf("encrypt data keyset: %w", err)
	}
	return buf.Bytes(), nil
}

// DecryptKeyset is the inverse of EncryptKeyset.
func DecryptKeyset(b []byte, root tink.AEAD) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(b)), root, keysetAD)
	if err != nil {
		return nil, fmt.Errorf("decrypt data keyset (is this the root key the vault was created with?): %w", err)
	}
	return h, nil
}
