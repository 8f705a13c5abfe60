package sgp_test

import (
	"testing"

	"github.com/credvault/credvault/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
