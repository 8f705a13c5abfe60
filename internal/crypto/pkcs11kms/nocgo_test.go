//go:build !cgo

package pkcs11kms_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/credvault/credvault/internal/crypto/pkcs11kms"
	"github.com/credvault/credvault/internal/crypto/pkcs11kms/softhsmtest"
)

// TestNoCgo: a pure-Go build refuses a pkcs11: URI with a clear error — and
// where the PKCS#11 tests are required, building them without cgo (which
// would silently drop them) is a failure.
func TestNoCgo(t *testing.T) {
	// scripts/test.sh runs this package once more with CGO_ENABLED=0 on
	// purpose (CREDVAULT_PURE_GO_CHECK=1), after the cgo run.
	if softhsmtest.Required() && os.Getenv("CREDVAULT_PURE_GO_CHECK") != "1" {
		t.Fatal("the PKCS#11 tests are required (CI=true or CREDVAULT_REQUIRE_SOFTHSM=1) but this test binary was built without cgo, which leaves them out: build with CGO_ENABLED=1 and a C compiler")
	}
	u, err := pkcs11kms.ParseURI("pkcs11:token=t;object=k?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pkcs11kms.Open(context.Background(), u, pkcs11kms.Options{}); !errors.Is(err, pkcs11kms.ErrNoCgo) {
		t.Fatalf("Open without cgo: %v, want ErrNoCgo", err)
	}
}
