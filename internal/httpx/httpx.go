// Package httpx holds the HTTP plumbing shared by the API packages (both
// dialects, the admin and the trust-policy API): their dependencies, the
// authenticating handler wrapper, request identity in the context, body
// reading with a size limit, JSON writing and the error log at the edge.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/credvault/credvault/internal/vault"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	infoKey
)

// Info is per-request state that middleware and handlers fill in and the
// access log reads: who the caller turned out to be.
type Info struct {
	PrincipalID string
	AccountID   string
}

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithInfo returns ctx carrying a fresh Info.
func WithInfo(ctx context.Context) (context.Context, *Info) {
	i := &Info{}
	return context.WithValue(ctx, infoKey, i), i
}

// InfoFrom returns the request's Info (a throwaway one if there is none).
func InfoFrom(ctx context.Context) *Info {
	if i, ok := ctx.Value(infoKey).(*Info); ok {
		return i
	}
	return &Info{}
}

// SetIdentity records the authenticated identity for the access log.
func SetIdentity(ctx context.Context, id *vault.Identity) {
	if id == nil {
		return
	}
	i := InfoFrom(ctx)
	i.PrincipalID, i.AccountID = id.Principal.ID, id.AccountID
}

// ReadBody reads the whole request body, at most limit bytes, as both
// dialects' JSON bodies are read. A larger body is a TooLarge error; nothing
// of it is kept. A body that is not text exactly as sent is Invalid (see
// CheckText).
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, vault.Errorf(vault.KindTooLarge, "request body exceeds the limit of %d bytes", limit)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, vault.Errorf(vault.KindTooLarge, "request body exceeds the limit of %d bytes", mbe.Limit)
		}
		return nil, vault.Wrap(vault.KindInvalid, err, "could not read the request body")
	}
	if int64(len(b)) > limit {
		return nil, vault.Errorf(vault.KindTooLarge, "request body exceeds the limit of %d bytes", limit)
	}
	if err := CheckText(b); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckText refuses a JSON body that encoding/json would silently change
// while decoding: bytes that are not valid UTF-8 (each becomes U+FFFD) and
// \u escapes of unpaired UTF-16 surrogates (likewise). Checking the raw
// bytes before decoding is the only place this can be seen; afterwards the
// replacement characters are indistinguishable from ones the client sent.
// A stored secret is thus byte for byte what was sent, or refused.
func CheckText(body []byte) error {
	if !utf8.Valid(body) {
		return vault.Errorf(vault.KindInvalid, "the request body must be valid UTF-8")
	}
	inString := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString:
			if i+1 < len(body) && body[i+1] == 'u' {
				r, ok := hex4(body, i+2)
				switch {
				case !ok: // malformed escape: the JSON parser refuses it
				case utf16.IsSurrogate(r) && r < 0xdc00:
					low, lok := rune(0), false
					if i+7 < len(body) && body[i+6] == '\\' && body[i+7] == 'u' {
						low, lok = hex4(body, i+8)
					}
					if !lok || low < 0xdc00 || low > 0xdfff {
						return errSurrogate
					}
					i += 11
					continue
				case utf16.IsSurrogate(r):
					return errSurrogate
				}
			}
			i++ // skip the escaped character
		}
	}
	return nil
}

var errSurrogate = vault.Errorf(vault.KindInvalid, "strings in the request body must not contain unpaired UTF-16 surrogate escapes (\\ud800-\\udfff)")

// hex4 parses the four hex digits at b[i:i+4].
func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"detail":"internal error"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// WriteSecretJSON is WriteJSON for a response that carries secret
// material (a payload, a key, an app or webhook secret): no cache may keep
// it (Cache-Control: no-store).
func WriteSecretJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, status, v)
}

// LogError logs a failed request's error once, at the edge, with the
// request id. Client errors are logged at debug level, server errors at
// error level. Errors never carry secret material (see vault.Error).
func LogError(ctx context.Context, logger *slog.Logger, err error) {
	kind := vault.KindOf(err)
	level := slog.LevelDebug
	if kind == vault.KindInternal || kind == vault.KindUnavailable || kind == vault.KindIntegrity {
		level = slog.LevelError
	}
	logger.Log(ctx, level, "request failed", "request_id", RequestID(ctx), "kind", kind.String(), "err", err.Error())
}
