package pkcs11kms

import "errors"

// Options tunes Open.
type Options struct {
	// Generate creates the key inside the token when no key with the URI's
	// label exists (otherwise that is ErrKeyNotFound).
	Generate bool
	// MaxIdleSessions bounds the session pool (default 8).
	MaxIdleSessions int
}

// Errors Open returns for the start-up failures an operator must fix; each
// is wrapped with the token and key name.
var (
	ErrTokenNotFound = errors.New("no token with this label is present")
	ErrWrongPIN      = errors.New("the token refused the PIN")
	ErrKeyNotFound   = errors.New("the token holds no secret key with this label (create it with `credvault keygen --master-key-uri …`)")
	ErrOpen          = errors.New("pkcs11: ciphertext does not open under this key")
)
