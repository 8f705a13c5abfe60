// Package client is the Go SDK for a credvault server: typed calls for the
// SGP v5 credentials API (/v5/credentials…), used by the credvault CLI
// itself.
//
//	c, err := client.New("https://vault.example:8080", os.Getenv("CREDVAULT_API_KEY"))
//	secret, err := c.Credentials.DecryptByName(ctx, "openai-prod")
//	use(string(secret))
//
// Every call takes a context. Failed calls are retried with jittered
// exponential backoff (see [WithRetries] for exactly when); errors from the
// API are [*Error] values carrying the status, the API's detail and the
// request id, and match sentinels such as [ErrNotFound] with errors.Is.
// Operations are grouped by API area in services hanging off [Client]
// ([Client.Credentials], [Client.Trust], [Client.Admin]).
package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// modulePath is the module this package belongs to; its version names the
// SDK in the User-Agent.
const modulePath = "github.com/credvault/credvault"

// Defaults for the retry policy.
const (
	DefaultMaxRetries    = 2
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 8 * time.Second
	DefaultMaxRetryAfter = 60 * time.Second
)

// maxResponseBytes bounds how much of a response body is read.
const maxResponseBytes = 64 << 20

// Client talks to one credvault server with one API key. It is safe for
// concurrent use.
type Client struct {
	// Credentials is the SGP v5 credentials API.
	Credentials *CredentialsService
	// Trust manages workload-identity trust policies (admin API).
	Trust *TrustService
	// Admin is the management API: accounts, principals, memberships, API
	// keys and passwords.
	Admin *AdminService

	base      *url.URL
	apiKey    string
	workload  *workloadKeys // set by WithWorkloadIdentity: keys come from token exchange
	account   string
	userAgent string

	hc        *http.Client
	tlsConfig *tls.Config // set by the TLS options; nil for WithHTTPClient

	maxRetries    int
	minBackoff    time.Duration
	maxBackoff    time.Duration
	maxRetryAfter time.Duration
}

// Option configures a Client.
type Option func(*Client) error

// New returns a client for the server at baseURL (e.g.
// "https://vault.example:8080") authenticating with apiKey (sent as
// x-api-key).
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: server URL %q must be http://host[:port] or https://host[:port]", baseURL)
	}
	c := &Client{
		base: u, apiKey: apiKey,
		userAgent:     "credvault-go/" + Version() + " (" + runtime.GOOS + "/" + runtime.GOARCH + "; " + runtime.Version() + ")",
		tlsConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		maxRetries:    DefaultMaxRetries,
		minBackoff:    DefaultMinBackoff,
		maxBackoff:    DefaultMaxBackoff,
		maxRetryAfter: DefaultMaxRetryAfter,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if apiKey == "" && c.workload == nil {
		return nil, errors.New("client: no API key")
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.tlsConfig
		c.hc = &http.Client{Transport: tr}
	}
	c.Credentials = &CredentialsService{c: c}
	c.Trust = &TrustService{c: c}
	c.Admin = &AdminService{c: c}
	return c, nil
}

// WithAccount selects the account every call acts in
// (x-selected-account-id); without it the key's principal's default account
// is used.
func WithAccount(id string) Option {
	return func(c *Client) error { c.account = id; return nil }
}

// WithHTTPClient sends requests through hc (its transport, proxy, TLS and
// timeouts). It cannot be combined with the TLS options.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error {
		if hc == nil {
			return errors.New("client: WithHTTPClient(nil)")
		}
		c.hc, c.tlsConfig = hc, nil
		return nil
	}
}

// WithRootCAs trusts the certificates in pool (instead of the system's)
// for the server's certificate.
func WithRootCAs(pool *x509.CertPool) Option {
	return func(c *Client) error {
		if c.tlsConfig == nil {
			return errors.New("client: TLS options cannot be combined with WithHTTPClient")
		}
		c.tlsConfig.RootCAs = pool
		return nil
	}
}

// WithCAFile trusts the PEM certificates in file (instead of the system's)
// for the server's certificate, e.g. a private CA's or a development
// server's self-signed certificate.
func WithCAFile(file string) Option {
	return func(c *Client) error {
		pem, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("client: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("client: CA file %s holds no PEM certificate", file)
		}
		return WithRootCAs(pool)(c)
	}
}

// WithTLSConfig uses cfg (cloned) for HTTPS, e.g. for client certificates.
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) error {
		if c.tlsConfig == nil {
			return errors.New("client: TLS options cannot be combined with WithHTTPClient")
		}
		c.tlsConfig = cfg.Clone()
		return nil
	}
}

// WithUserAgent puts product (e.g. "myapp/1.2") in front of the SDK's own
// User-Agent, which names credvault-go and its version.
func WithUserAgent(product string) Option {
	return func(c *Client) error {
		if product != "" {
			c.userAgent = product + " " + c.userAgent
		}
		return nil
	}
}

// WithRetries sets how often a failed call is retried (0 disables retries)
// and the backoff bounds: before retry n the client waits a random duration
// between half and all of min·2ⁿ (at most max), or exactly what the
// server's Retry-After (or retry-after-ms) asks for. A server asking for
// more than DefaultMaxRetryAfter is not retried.
//
// What is retried:
//   - a response with x-should-retry: true; never one with x-should-retry: false;
//   - otherwise 408, 429 and 5xx, and connection errors, for every call
//     except Create;
//   - Create (the only call that is not idempotent) only on 429 and 503 —
//     refusals before anything is written — and on connection errors that
//     happened before the request was sent. Names are unique per account,
//     so even a retried create can never make a second credential: at worst
//     it answers 409 for the one the first attempt made.
//
// All attempts of one call carry the same X-Request-Id.
func WithRetries(maxRetries int, minBackoff, maxBackoff time.Duration) Option {
	return func(c *Client) error {
		if maxRetries < 0 || minBackoff < 0 || maxBackoff < minBackoff {
			return errors.New("client: WithRetries: need maxRetries ≥ 0 and 0 ≤ minBackoff ≤ maxBackoff")
		}
		c.maxRetries, c.minBackoff, c.maxBackoff = maxRetries, minBackoff, maxBackoff
		return nil
	}
}

var version = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := ""
	if bi.Main.Path == modulePath {
		v = bi.Main.Version
	}
	for _, d := range bi.Deps {
		if d.Path == modulePath {
			v = d.Version
		}
	}
	if v == "" || v == "(devel)" {
		return "devel"
	}
	return v
})

// Version is the version of the credvault module this SDK was built from
// ("devel" in a build from a working tree).
func Version() string { return version() }

// idempotency says which failures a request may be retried after.
type idempotency int

const (
	idempotent idempotency = iota
	// createOnce is a request that must not be repeated once the server
	// may have acted on it.
	createOnce
)

// request is one API call.
type request struct {
	method string
	path   string // already escaped
	query  url.Values
	body   any
	idem   idempotency
}

// setIf sets body[key] to *v when v is not nil: a PATCH body of the
// fields the caller changes.
func setIf[T any](body map[string]any, key string, v *T) {
	if v != nil {
		body[key] = *v
	}
}

// queryOf is the query of the parameters that are set: those with a
// non-empty value.
func queryOf(params map[string]string) url.Values {
	q := url.Values{}
	for k, v := range params {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// itoa is n in decimal, or "" (not set) for 0.
func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// call sends req and decodes a successful answer into a new T.
func call[T any](ctx context.Context, c *Client, req request) (*T, error) {
	var out T
	if err := c.do(ctx, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// do performs r with retries and decodes a 2xx JSON body into out.
func (c *Client) do(ctx context.Context, r request, out any) error {
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("client: encode request: %w", err)
		}
	}
	u := c.base.String() + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	rid := newRequestID()
	for attempt := 0; ; attempt++ {
		resp, sent, err := c.send(ctx, r.method, u, body, rid)
		if ke := (*keyError)(nil); errors.As(err, &ke) {
			return ke.err // the token exchange failed (and was retried by itself)
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("credvault: %s %s: %w", r.method, r.path, ctx.Err())
			}
			cerr := &ConnectionError{URL: c.base.String(), RequestID: rid, Err: err}
			if attempt >= c.maxRetries || (r.idem == createOnce && sent) {
				return cerr
			}
			if err := sleep(ctx, c.backoff(attempt)); err != nil {
				return cerr
			}
			continue
		}
		b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		if rerr != nil {
			return &ConnectionError{URL: c.base.String(), RequestID: rid, Err: fmt.Errorf("read response: %w", rerr)}
		}
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			if out == nil {
				return nil
			}
			if err := json.Unmarshal(b, out); err != nil {
				return fmt.Errorf("credvault: %s %s: decode response: %w", r.method, r.path, err)
			}
			return nil
		}
		apiErr := newError(resp, b, rid, attempt+1)
		if attempt >= c.maxRetries || !retryable(resp, r.idem) {
			return apiErr
		}
		wait, ok := c.retryAfter(resp.Header)
		if !ok {
			return apiErr
		}
		if wait < 0 {
			wait = c.backoff(attempt)
		}
		if err := sleep(ctx, wait); err != nil {
			return apiErr
		}
	}
}

// send performs one attempt. sent reports whether the request headers were
// written to a connection, i.e. whether the server may have seen it.
func (c *Client) send(ctx context.Context, method, u string, body []byte, rid string) (*http.Response, bool, error) {
	var sent atomic.Bool // set on the transport's writing goroutine
	trace := &httptrace.ClientTrace{WroteHeaders: func() { sent.Store(true) }}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), method, u, rd)
	if err != nil {
		return nil, false, err
	}
	key, err := c.key(ctx)
	if err != nil {
		return nil, false, err
	}
	req.Header.Set("x-api-key", key)
	if c.account != "" {
		req.Header.Set("x-selected-account-id", c.account)
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-Request-Id", rid)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	return resp, sent.Load(), err
}

// retryable decides from the response whether the call may be repeated.
func retryable(resp *http.Response, idem idempotency) bool {
	switch resp.Header.Get("x-should-retry") {
	case "false":
		return false
	case "true":
		return true
	}
	s := resp.StatusCode
	if idem == createOnce {
		return s == http.StatusTooManyRequests || s == http.StatusServiceUnavailable
	}
	return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500
}

// retryAfter reads the server's requested wait: (d, true) for a wait the
// client honours, (-1, true) when the server asked for none, (0, false)
// when it asked for more than the client waits.
func (c *Client) retryAfter(h http.Header) (time.Duration, bool) {
	var d time.Duration = -1
	if ms, err := strconv.ParseFloat(h.Get("retry-after-ms"), 64); err == nil && ms >= 0 {
		d = time.Duration(ms * float64(time.Millisecond))
	} else if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
			d = time.Duration(s) * time.Second
		} else if t, err := http.ParseTime(v); err == nil {
			d = max(time.Until(t), 0)
		}
	}
	if d > c.maxRetryAfter {
		return 0, false
	}
	return d, true
}

// backoff is the jittered wait before retry attempt+1: uniform in
// [b/2, b] with b = min·2^attempt capped at max.
func (c *Client) backoff(attempt int) time.Duration {
	b := c.minBackoff << min(attempt, 30)
	if b > c.maxBackoff || b <= 0 {
		b = c.maxBackoff
	}
	if b <= 1 {
		return b
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(b/2)+1))
	if err != nil {
		return b
	}
	return b/2 + time.Duration(n.Int64())
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
