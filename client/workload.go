package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// Workload identity: instead of a stored API key, a workload proves who it
// is with the token its platform gives it (a Kubernetes projected
// service-account token, a GitHub Actions OIDC token) and trades it at the
// server's /oauth/token (RFC 8693 token exchange) for a short-lived key.

// WorkloadIdentity configures [WithWorkloadIdentity].
type WorkloadIdentity struct {
	// Token returns the platform's current token (a JWT). It is called for
	// every exchange, so a token file rotated on disk is picked up: see
	// [TokenFile].
	Token func(ctx context.Context) (string, error)
	// Now is the clock deciding when to re-exchange; time.Now if nil.
	Now func() time.Time
}

// TokenFile returns a token source that reads path on every exchange
// (Kubernetes rewrites projected tokens in place before they expire).
func TokenFile(path string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("client: read workload token: %w", err)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("client: workload token file %s is empty", path)
		}
		return tok, nil
	}
}

// WithWorkloadIdentity authenticates with keys obtained by exchanging the
// workload's platform token at the server (POST /oauth/token) instead of a
// fixed API key (pass "" as the key to New). A key is re-exchanged when
// three quarters of its lifetime have passed, so calls never carry a key
// about to expire. With [WithAccount], only that account's trust policies
// are tried (RFC 8693 resource).
func WithWorkloadIdentity(w WorkloadIdentity) Option {
	return func(c *Client) error {
		if w.Token == nil {
			return errors.New("client: WithWorkloadIdentity without a Token source")
		}
		if w.Now == nil {
			w.Now = time.Now
		}
		c.workload = &workloadKeys{w: w}
		return nil
	}
}

type workloadKeys struct {
	w         WorkloadIdentity
	mu        sync.Mutex
	key       string
	refreshAt time.Time
}

// keyError carries a failed token exchange through send to do, which
// returns it as is (it is not a connection failure of the call).
type keyError struct{ err error }

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// key returns the API key to send: the fixed one, or a current key from
// the token exchange.
func (c *Client) key(ctx context.Context) (string, error) {
	wk := c.workload
	if wk == nil {
		return c.apiKey, nil
	}
	wk.mu.Lock()
	defer wk.mu.Unlock()
	if wk.key != "" && wk.w.Now().Before(wk.refreshAt) {
		return wk.key, nil
	}
	tok, err := wk.w.Token(ctx)
	if err != nil {
		return "", &keyError{err}
	}
	start := wk.w.Now()
	at, err := c.ExchangeToken(ctx, tok)
	if err != nil {
		return "", &keyError{err}
	}
	wk.key = at.AccessToken
	wk.refreshAt = start.Add(time.Duration(at.ExpiresIn) * time.Second * 3 / 4)
	return wk.key, nil
}

// AccessToken is the answer of a token exchange: AccessToken is a
// credvault API key valid for ExpiresIn seconds.
type AccessToken struct {
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
}

// String redacts the key.
func (t AccessToken) String() string {
	return fmt.Sprintf("AccessToken{expires_in: %d, access_token: [redacted]}", t.ExpiresIn)
}

// ExchangeToken trades a workload's JWT for a short-lived API key (RFC 8693
// token exchange at POST /oauth/token). A refusal is an [*Error] with
// StatusCode 400 whose Detail is the OAuth error code and description
// (e.g. "invalid_grant: the token has expired"); it matches ErrInvalid.
// It is tried once (the server creates a key each time).
func (c *Client) ExchangeToken(ctx context.Context, subjectToken string) (*AccessToken, error) {
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {subjectToken},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
	}
	if c.account != "" {
		form.Set("resource", c.account)
	}
	rid := newRequestID()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("X-Request-Id", rid)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, &ConnectionError{URL: c.base.String(), RequestID: rid, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &ConnectionError{URL: c.base.String(), RequestID: rid, Err: fmt.Errorf("read response: %w", err)}
	}
	if resp.StatusCode != http.StatusOK {
		e := newError(resp, b, rid, 1)
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(b, &oe) == nil && oe.Error != "" {
			e.Detail = oe.Error
			if oe.Description != "" {
				e.Detail += ": " + oe.Description
			}
		}
		return nil, e
	}
	var at AccessToken
	if err := json.Unmarshal(b, &at); err != nil || at.AccessToken == "" {
		return nil, fmt.Errorf("credvault: POST /oauth/token: decode response: %v", err)
	}
	return &at, nil
}
