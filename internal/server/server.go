// Package server assembles credvault's HTTP handler: both API dialects on one
// mux over one core, with the middleware every request passes through
// (request id, recovery, access log, metrics, body limit) and the health
// endpoints.
package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credvault/credvault/internal/console"
	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/vault"
)

// Config configures the handler.
type Config struct {
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes int64
	Logger       *slog.Logger
	Registry     *prometheus.Registry
	// Ready reports whether the database answers and takes writes (the
	// store's Ping); GET /readyz answers 503 with its client-safe message
	// while it fails. Nil: always ready.
	Ready func(ctx context.Context) error
	// Rekey, if set, runs online master-key rotations for the admin API.
	Rekey RekeyJobs
	// TrustedProxies are the reverse proxies whose X-Forwarded-For header
	// is believed (see clientAddr); empty: the header is ignored.
	TrustedProxies []netip.Prefix
	// MetricsToken, if set, is the bearer token GET /metrics requires.
	MetricsToken string
	// MetricsElsewhere removes /metrics from this handler: it is served
	// only by MetricsHandler, mounted on a separate listener.
	MetricsElsewhere bool
	// OIDC configures the verification of workload tokens (POST /oauth/token).
	OIDC oidc.Options
	// Console is the storage the web console under /ui/ keeps its sessions
	// in and reads (the vault's store.Engine); nil: /ui/ answers 503.
	Console console.Store
}

// Server is credvault's HTTP handler.
type Server struct {
	svc     *vault.Service
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
}

// New returns the handler for svc.
func New(svc *vault.Service, cfg Config) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = int64(2*svc.MaxPayload() + 64<<10)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	s := &Server{svc: svc, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: newMetrics(cfg.Registry)}
	s.routes()
	s.handler = s.middleware(s.mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// MetricsHandler serves the Prometheus metrics, behind the bearer token
// if one is configured. The metrics carry no secrets and no user-supplied
// values, but they do show traffic and error rates per route; keep them
// off the public listener (Config.MetricsElsewhere) or behind a token.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
	if s.cfg.MetricsToken == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.cfg.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
		if !ok || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="credvault-metrics"`)
			httpx.WriteJSON(w, http.StatusUnauthorized, map[string]string{"detail": "a valid metrics bearer token is required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (s *Server) handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// handleReadyz reports ready only when the database answers and takes
// writes: it is not ready while writes fail (disk full) or once the
// database was found damaged. The reason is the store's client-safe message.
func (s *Server) handleReadyz() http.Handler {
	if s.cfg.Ready == nil {
		s.cfg.Ready = func(context.Context) error { return nil }
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.cfg.Ready(ctx); err != nil {
			reason := "database unavailable"
			var ve *vault.Error
			if errors.As(err, &ve) && ve.Kind == vault.KindUnavailable {
				reason = ve.Msg
			}
			httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
			return
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// statusWriter records the status and size of a response.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// middleware wraps every request: a request id (a client's X-Request-Id is
// kept if it is short and printable), panic recovery, the body limit, one
// access-log line and metrics. It never logs bodies, query strings or
// headers, which may carry secrets.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rid := r.Header.Get("X-Request-Id")
		if !validRequestID(rid) {
			rid = newRequestID()
		}
		ctx := httpx.WithRequestID(r.Context(), rid)
		client := s.clientAddr(r)
		ctx = vault.WithRequestMeta(ctx, vault.RequestMeta{RequestID: rid, ClientAddr: client})
		ctx, info := httpx.WithInfo(ctx)
		r = r.WithContext(ctx)
		w.Header().Set("X-Request-Id", rid)
		r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		sw := &statusWriter{ResponseWriter: w}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic in handler", "request_id", rid, "panic", fmt.Sprint(p))
				if sw.status == 0 {
					httpx.WriteJSON(sw, http.StatusInternalServerError, map[string]string{"detail": "internal error"})
				}
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			d := time.Since(start)
			s.metrics.observe(route, r.Method, status, d)
			s.log.LogAttrs(ctx, slog.LevelInfo, "request",
				slog.String("request_id", rid),
				slog.String("method", r.Method),
				slog.String("route", route),
				slog.Int("status", status),
				slog.Int("bytes", sw.bytes),
				slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.String("remote", r.RemoteAddr),
				slog.String("client", client),
				slog.String("principal", info.PrincipalID),
				slog.String("account", info.AccountID),
			)
		}()
		next.ServeHTTP(sw, r)
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credvault_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credvault_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// observe records one request. Labels are route patterns (never raw paths,
// which contain ids and names) and known methods only.
func (m *metrics) observe(route, method string, status int, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
	default:
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

// clientAddr is the client's IP address (without port): the peer's,
// unless the peer is one of the configured trusted proxies. Then it is the
// right-most address in X-Forwarded-For that is not itself a trusted proxy:
// each proxy appends the address it received the request from, so entries
// to the right of it were written by trusted proxies and entries to the
// left by the client, who may write anything there.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.trusted(peer) {
		return host
	}
	return ForwardedClient(r.Header.Values("X-Forwarded-For"), peer, s.trusted).String()
}

func (s *Server) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ForwardedClient walks the X-Forwarded-For values (one or more header
// lines of comma-separated addresses) from the right, starting from the
// trusted peer, and returns the first address that is not trusted. A
// malformed entry stops the walk: the last trusted hop is returned, since
// nothing left of it can be believed.
func ForwardedClient(xff []string, peer netip.Addr, trusted func(netip.Addr) bool) netip.Addr {
	client := peer.Unmap()
	for i := len(xff) - 1; i >= 0; i-- {
		parts := strings.Split(xff[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return client
			}
			client = a.Unmap().WithZone("")
			if !trusted(client) {
				return client
			}
		}
	}
	return client
}
