//go:build !cgo

package pkcs11kms

import (
	"context"
	"errors"
)

// ErrNoCgo is returned by Open in a binary built with CGO_ENABLED=0: loading
// a PKCS#11 library needs cgo (dlopen).
var ErrNoCgo = errors.New("pkcs11: this credvault binary was built without cgo (CGO_ENABLED=0) and cannot load a PKCS#11 library; use a cgo build for an HSM master key")

// KEK is unavailable without cgo.
type KEK struct{}

// Open always fails without cgo.
func Open(context.Context, URI, Options) (*KEK, error) { return nil, ErrNoCgo }

func (*KEK) Encrypt([]byte, []byte) ([]byte, error) { return nil, ErrNoCgo }
func (*KEK) Decrypt([]byte, []byte) ([]byte, error) { return nil, ErrNoCgo }
func (*KEK) Close() error                           { return nil }
func (*KEK) String() string                         { return "pkcs11 (unavailable)" }
func (*KEK) Generated() bool                        { return false }
