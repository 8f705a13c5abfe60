package oapi

import (
	"sync"
	"testing"

	"github.com/credvault/credvault/api"
)

var (
	trustOnce sync.Once
	trustV    *Validator
	trustErr  error
)

// Trust returns the validator for the workload identity endpoints (trust
// policies and the token exchange).
func Trust(tb testing.TB) *Validator {
	tb.Helper()
	trustOnce.Do(func() {
		trustV, trustErr = load("Trust", api.TrustOpenAPI)
		if trustV != nil {
			trustV.undeclaredMustBeJSON = true
		}
	})
	if trustErr != nil {
		tb.Fatalf("oapi: loading the trust contract: %v", trustErr)
	}
	return trustV
}
