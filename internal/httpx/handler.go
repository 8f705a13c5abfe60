package httpx

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/credvault/credvault/internal/vault"
)

// Deps are what an API package (a dialect, the admin or the trust-policy
// API) needs from the server: the core, the logger of errors at the edge
// and the request body limit.
type Deps struct {
	Service *vault.Service
	Logger  *slog.Logger
	MaxBody int64
}

// HandlerFunc is an API handler that runs as the authenticated identity id
// and returns its error, which the API package renders in its own shape.
type HandlerFunc func(w http.ResponseWriter, r *http.Request, id *vault.Identity) error

// Authenticated returns the handler that authenticates a request with
// authenticate, records the identity for the access log (SetIdentity),
// runs fn and renders the error of either with render.
func Authenticated(authenticate func(*http.Request) (*vault.Identity, error), render func(http.ResponseWriter, *http.Request, error), fn HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := authenticate(r)
		if err == nil {
			SetIdentity(r.Context(), id)
			err = fn(w, r, id)
		}
		if err != nil {
			render(w, r, err)
		}
	})
}

// Public returns the handler that runs fn without authentication (fn
// authenticates itself if it needs to) and renders its error with render.
func Public(render func(http.ResponseWriter, *http.Request, error), fn func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := fn(w, r); err != nil {
			render(w, r, err)
		}
	})
}

// APIKey is the API key a request carries: the x-api-key header, else
// Authorization: Basic <key> (as DSM clients send it).
func APIKey(r *http.Request) string {
	if key := r.Header.Get("x-api-key"); key != "" {
		return key
	}
	if k, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Basic "); ok {
		return strings.TrimSpace(k)
	}
	return ""
}

// Reply is the last step of a handler that called the core: it returns
// err, the call's error, for the handler's caller to render, or writes
// the wire form of v, the call's result, as JSON with status.
func Reply[T, W any](w http.ResponseWriter, status int, wire func(T) W, v T, err error) error {
	if err != nil {
		return err
	}
	WriteJSON(w, status, wire(v))
	return nil
}

// NoContent is Reply for a call without a result: err, or 204 No Content.
func NoContent(w http.ResponseWriter, err error) error {
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// Wire is the wire form of each of items (passed to wire by pointer: the
// core's types are large).
func Wire[T, W any](items []T, wire func(*T) W) []W {
	out := make([]W, len(items))
	for i := range items {
		out[i] = wire(&items[i])
	}
	return out
}
