package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels an [*Error] matches with errors.Is, by status.
var (
	ErrInvalid          = errors.New("invalid request")     // 422 (and 400)
	ErrUnauthenticated  = errors.New("unauthenticated")     // 401: missing, unknown, revoked or expired key
	ErrPermissionDenied = errors.New("permission denied")   // 403: key not allowed in the account, or role lacks the permission
	ErrNotFound         = errors.New("not found")           // 404: also another account's object
	ErrConflict         = errors.New("conflict")            // 409: duplicate name, or an integrity failure
	ErrTooLarge         = errors.New("too large")           // 413
	ErrRateLimited      = errors.New("rate limited")        // 429
	ErrUnavailable      = errors.New("service unavailable") // 503
	ErrServer           = errors.New("server error")        // any other 5xx
)

// Error is an error answer from the API.
type Error struct {
	StatusCode int
	// Detail is the API's message ({"detail": "…"}); for a validation
	// error (422) the issues joined by "; ".
	Detail string
	// Issues are a validation error's items (422), each naming the field.
	Issues []Issue
	// RequestID is the X-Request-Id the server logged the request under.
	RequestID string
	// Attempts is how many times the request was sent.
	Attempts int
}

// Issue is one item of a validation error.
type Issue struct {
	Loc  []any  `json:"loc"`
	Msg  string `json:"msg"`
	Type string `json:"type"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("credvault: %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.RequestID != "" {
		s += " (request id " + e.RequestID + ")"
	}
	return s
}

// sentinelStatus is the status each sentinel matches (besides these,
// ErrInvalid matches 400 and ErrServer every 5xx).
var sentinelStatus = map[error]int{
	ErrInvalid:          http.StatusUnprocessableEntity,
	ErrUnauthenticated:  http.StatusUnauthorized,
	ErrPermissionDenied: http.StatusForbidden,
	ErrNotFound:         http.StatusNotFound,
	ErrConflict:         http.StatusConflict,
	ErrTooLarge:         http.StatusRequestEntityTooLarge,
	ErrRateLimited:      http.StatusTooManyRequests,
	ErrUnavailable:      http.StatusServiceUnavailable,
}

// Is matches the sentinel for e's status.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalid:
		if e.StatusCode == http.StatusBadRequest {
			return true
		}
	case ErrServer:
		return e.StatusCode >= 500
	}
	status, ok := sentinelStatus[target]
	return ok && e.StatusCode == status
}

func newError(resp *http.Response, body []byte, rid string, attempts int) *Error {
	e := &Error{StatusCode: resp.StatusCode, RequestID: resp.Header.Get("X-Request-Id"), Attempts: attempts}
	if e.RequestID == "" {
		e.RequestID = rid
	}
	var b struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(body, &b) == nil && len(b.Detail) > 0 {
		var s string
		if json.Unmarshal(b.Detail, &s) == nil {
			e.Detail = s
		} else if json.Unmarshal(b.Detail, &e.Issues) == nil {
			parts := make([]string, len(e.Issues))
			for i, it := range e.Issues {
				loc := make([]string, len(it.Loc))
				for j, l := range it.Loc {
					loc[j] = fmt.Sprint(l)
				}
				parts[i] = strings.Join(loc, ".") + ": " + it.Msg
			}
			e.Detail = strings.Join(parts, "; ")
		}
	} else if ct := resp.Header.Get("Content-Type"); strings.HasPrefix(ct, "text/plain") && len(body) < 512 {
		e.Detail = strings.TrimSpace(string(body))
	}
	return e
}

// ConnectionError is a call that got no answer from the server: it could
// not connect, or the connection broke.
type ConnectionError struct {
	URL       string
	RequestID string
	Err       error
}

func (e *ConnectionError) Error() string {
	return fmt.Sprintf("credvault: cannot reach %s: %v", e.URL, e.Err)
}

func (e *ConnectionError) Unwrap() error { return e.Err }
