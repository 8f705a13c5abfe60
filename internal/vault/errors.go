// Package vault is the core of credvault: accounts, principals, credentials
// and the service that enforces the rules between them. It knows nothing of
// HTTP or SQL; the API dialects (internal/api/...) translate wire formats into
// calls on Service, and storage engines implement Store.
package vault

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error so that each API dialect can map it to its own
// status code and body. Kinds are deliberately coarse.
type Kind int

const (
	KindInternal         Kind = iota // a bug or an unexpected failure; details are never shown to clients
	KindInvalid                      // the request is malformed or violates a rule
	KindNotFound                     // the object does not exist, or exists outside the caller's reach
	KindConflict                     // a uniqueness rule or a state precondition failed
	KindUnauthenticated              // no credentials, or credentials that do not identify anyone
	KindPermissionDenied             // the caller is known but may not do this
	KindTooLarge                     // a body or payload exceeds its limit
	KindUnavailable                  // a dependency (the database) is unavailable; retrying later may help
	KindRateLimited                  // too many requests or failed attempts
	KindIntegrity                    // stored data failed its integrity check (a ciphertext does not open); retrying cannot help
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindPermissionDenied:
		return "permission_denied"
	case KindTooLarge:
		return "too_large"
	case KindUnavailable:
		return "unavailable"
	case KindRateLimited:
		return "rate_limited"
	case KindIntegrity:
		return "integrity"
	default:
		return "internal"
	}
}

// Error is the one error type of credvault. Msg is safe to show to a client
// (it never contains secret material); Err is the wrapped cause, for logs.
type Error struct {
	Kind  Kind
	Msg   string
	Field string // optional: the request field the error is about, e.g. "payload"
	// Subject is, for NotFound and Conflict errors, the kind of object the
	// error is about ("security object", "group", …), so that a dialect
	// can word it as its clients expect (notFound, conflictName).
	Subject string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a client-safe error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// FieldError builds an Invalid error about one request field.
func FieldError(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of the given kind with a client-safe message that
// wraps cause.
func Wrap(kind Kind, cause error, msg string) *Error {
	return &Error{Kind: kind, Msg: msg, Err: cause}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain,
// or KindInternal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// Message returns the client-safe message of err. Errors that are not
// *Error (and Internal ones) get a generic message, so that driver or
// library errors never reach a client.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Kind != KindInternal {
		return e.Msg
	}
	return "internal error"
}

// IntegrityError reports that a stored ciphertext of what (e.g. "credential")
// does not open: it was changed or moved outside credvault, or sealed under
// a master key this process does not hold. cause is kept for the log.
func IntegrityError(what string, cause error) *Error {
	return Wrap(KindIntegrity, cause, "the stored "+what+" failed its integrity check (its ciphertext does not open under this vault's master key: it was changed outside credvault, or the master key is not the one it was sealed with); restore it from a backup")
}

// ErrNotFound is returned by Store methods when a row does not exist.
var ErrNotFound = &Error{Kind: KindNotFound, Msg: "not found"}

// ErrConflict is returned by Store methods when a uniqueness rule fails,
// alone or wrapping the driver's error: check it with errors.Is. Other
// conflicts (a state precondition) are KindConflict errors of their own.
var ErrConflict = &Error{Kind: KindConflict, Msg: "conflict"}

// conflictName turns a store's uniqueness violation (ErrConflict) on
// creating or renaming a what into a client-safe error about its name;
// any other error, including other conflicts, is returned as it is.
func conflictName(err error, what string) error {
	if errors.Is(err, ErrConflict) {
		article := "a "
		if strings.ContainsAny(what[:1], "aeiou") {
			article = "an "
		}
		return &Error{Kind: KindConflict, Field: "name", Subject: what, Msg: article + what + " with this name already exists in this account", Err: err}
	}
	return err
}
