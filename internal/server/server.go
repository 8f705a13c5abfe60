// Package server assembles credvault's HTTP handler: both API dialects on one
// mux over one core, with the middleware every request passes through
// (request id, recovery, access log, metrics, body limit) and the health
// endpoints.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/credvault/credvault/internal/httpx"
	"github.com/credvault/credvault/internal/vault"
)

// Config configures the handler.
type Config struct {
	// MaxBodyBytes bounds every request body.
	MaxBodyBytes int64
	Logger       *slog.Logger
	Registry     *prometheus.Registry
	// Rekey, if set, runs an online master-key rotation for the admin API.
	Rekey func(ctx context.Context) (any, error)
}

// Server is credvault's HTTP handler.
type Server struct {
	svc     *vault.Service
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	metrics *metrics
	rekey   *rekeyJob
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
	s := &Server{svc: svc, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), metrics: newMetrics(cfg.Registry), rekey: &rekeyJob{run: cfg.Rekey}}
	s.routes()
	s.handler = s.middleware(s.mux)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{})
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
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := s.svc.Store().Ping(ctx); err != nil {
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
		ctx = vault.WithRequestMeta(ctx, vault.RequestMeta{RequestID: rid, ClientAddr: clientAddr(r)})
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

// clientAddr is the client's IP address (without port). X-Forwarded-For is
// not trusted: credvault does not know which proxies are in front of it.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
