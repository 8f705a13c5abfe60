// Package oauth serves POST /oauth/token: OAuth 2.0 Token Exchange
// (RFC 8693) of a workload's JWT for a short-lived credvault API key, with
// errors in the shape of RFC 6749 §5.2.
package oauth

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// The RFC 8693 identifiers this endpoint speaks.
const (
	GrantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeIDToken     = "urn:ietf:params:oauth:token-type:id_token"
)

// maxForm bounds the request body (a JWT is a few KiB).
const maxForm = 64 << 10

// Deps are the endpoint's dependencies.
type Deps struct {
	Service  *vault.Service
	Verifier vault.TokenVerifier
	Logger   *slog.Logger
}

// Register mounts POST /oauth/token on mux.
func Register(mux *http.ServeMux, d Deps) {
	mux.Handle("POST /oauth/token", handler(d))
}

// Response is a successful token exchange (RFC 8693 §2.2.1).
type Response struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// ErrorResponse is an RFC 6749 §5.2 error.
type ErrorResponse struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func handler(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The response carries a key: it must not be cached (RFC 6749 §5.1).
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		form, err := readForm(r)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		switch gt := form.Get("grant_type"); gt {
		case "":
			writeError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
			return
		case GrantTokenExchange:
		default:
			writeError(w, http.StatusBadRequest, "unsupported_grant_type", "only grant_type "+GrantTokenExchange+" is supported")
			return
		}
		token := form.Get("subject_token")
		if token == "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "subject_token is required")
			return
		}
		if tt := form.Get("subject_token_type"); tt != TokenTypeJWT && tt != TokenTypeIDToken {
			writeError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+TokenTypeJWT)
			return
		}
		if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken {
			writeError(w, http.StatusBadRequest, "invalid_request", "requested_token_type must be "+TokenTypeAccessToken)
			return
		}
		if form.Get("actor_token") != "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "actor_token is not supported")
			return
		}
		wk, err := d.Service.ExchangeWorkloadToken(r.Context(), d.Verifier, token, strings.TrimSpace(form.Get("resource")))
		if err != nil {
			renderError(w, r, d.Logger, err)
			return
		}
		httpx.SetIdentity(r.Context(), &vault.Identity{Principal: vault.Principal{ID: wk.Policy.ID}, AccountID: wk.Policy.AccountID})
		expiresIn := int64(math.Floor(wk.ExpiresAt.Sub(d.Service.Now()).Seconds()))
		httpx.WriteJSON(w, http.StatusOK, Response{AccessToken: wk.Key, IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", ExpiresIn: expiresIn})
	})
}

func readForm(r *http.Request) (url.Values, error) {
	ct := r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/x-www-form-urlencoded") {
		return nil, errors.New("the request body must be application/x-www-form-urlencoded")
	}
	b, err := httpx.ReadBody(r, maxForm)
	if err != nil {
		return nil, errors.New(vault.Message(err))
	}
	form, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, errors.New("the request body is not a valid form")
	}
	for k, v := range form {
		if len(v) > 1 {
			// RFC 6749 §3.2: parameters must not be included more than once.
			return nil, errors.New("parameter " + strconv.Quote(k) + " is repeated")
		}
	}
	return form, nil
}

func renderError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	httpx.LogError(r.Context(), log, err)
	msg := vault.Message(err)
	switch vault.KindOf(err) {
	case vault.KindInvalid:
		writeError(w, http.StatusBadRequest, "invalid_request", msg)
	case vault.KindUnauthenticated, vault.KindPermissionDenied, vault.KindNotFound:
		writeError(w, http.StatusBadRequest, "invalid_grant", msg)
	case vault.KindRateLimited:
		var rl interface{ RetryAfter() time.Duration }
		if errors.As(err, &rl) {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.RetryAfter().Seconds()))))
		}
		writeError(w, http.StatusTooManyRequests, "slow_down", msg)
	case vault.KindUnavailable:
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", msg)
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "internal error")
	}
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	httpx.WriteJSON(w, status, ErrorResponse{Error: code, Description: desc})
}
