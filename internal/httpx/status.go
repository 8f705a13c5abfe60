package httpx

import (
	"errors"
	"net/http"

	"github.com/credvault/credvault/internal/vault"
)

// statuses is the one table from error kinds to HTTP status codes. Every
// dialect and the admin API use it; a dialect that answers a kind with
// another code says so in its overrides (see Status). A kind missing here
// is a bug, caught by TestStatus_EveryKind.
var statuses = map[vault.Kind]int{
	vault.KindInternal:         http.StatusInternalServerError,
	vault.KindInvalid:          http.StatusBadRequest,
	vault.KindNotFound:         http.StatusNotFound,
	vault.KindConflict:         http.StatusConflict,
	vault.KindUnauthenticated:  http.StatusUnauthorized,
	vault.KindPermissionDenied: http.StatusForbidden,
	vault.KindTooLarge:         http.StatusRequestEntityTooLarge,
	vault.KindUnavailable:      http.StatusServiceUnavailable,
	vault.KindRateLimited:      http.StatusTooManyRequests,
	vault.KindIntegrity:        http.StatusConflict, // retrying cannot help; the client must not see a 5xx it would retry
}

// Status returns the HTTP status code for err's kind: the dialect's
// override if it has one (SGP answers Invalid with 422, as FastAPI does),
// the shared table's otherwise.
func Status(err error, overrides map[vault.Kind]int) int {
	k := vault.KindOf(err)
	if s, ok := overrides[k]; ok {
		return s
	}
	if s, ok := statuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// RetryAfter returns the Retry-After value, in whole seconds, for an
// Unavailable or RateLimited error: the wait a *vault.RateLimitError asks
// for, rounded up, or 1.
func RetryAfter(err error) int {
	var rl *vault.RateLimitError
	if errors.As(err, &rl) {
		return int(rl.After.Seconds()) + 1
	}
	return 1
}
