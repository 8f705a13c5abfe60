// Package conformance_test holds cross-cutting tests that walk both API
// dialects at once: the role × operation × dialect matrix and the canaries
// written through every path that accepts a secret.
package conformance_test

import (
	"testing"

	"github.com/credvault/credvault/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
