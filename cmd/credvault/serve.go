package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
)

type serveOptions struct {
	addr              string
	readHeaderTimeout time.Duration
	readTimeout       time.Duration
	writeTimeout      time.Duration
	idleTimeout       time.Duration
	shutdownTimeout   time.Duration
	dbTimeout         time.Duration
	maxHeaderBytes    int

	tlsCert, tlsKey string
	tlsSelfSigned   bool

	failedAuthPerMinute float64
	failedAuthBurst     int
	principalRPS        float64
	principalBurst      int

	trustedProxies          string
	metricsAddr             string
	metricsToken            string
	auditCheckpointInterval time.Duration
	auditAnchorFile         string
	auditAnchorWebhook      string
	oidcAllowHosts          string
	oidcCAFile              string

	lifecycle lifecycleFlags // serve_lifecycle.go
}

func newServeCmd(o *options, stdout, stderr io.Writer) *cobra.Command {
	so := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the vault's HTTP server",
		Long: `Run the vault's HTTP server.

On an empty database, serve bootstraps a default account, an admin principal
and one API key, and prints the key once to stderr. Set
CREDVAULT_BOOTSTRAP_API_KEY to supply that key instead, for unattended
deployments (it must have the form of a generated key: base64 of
"<uuid>:<secret>" with a 256-bit random base64url secret; see the README);
it is used only when the store is empty.
With no master key configured, serve generates a development key in the data
directory for a new database, and refuses to start on an existing one ("no
master key configured for an existing database").
With --master-key-uri (an HSM key) the data keyset is kept in the database,
encrypted under that key: the first start of a new vault creates both (the
HSM key inside the token if it is missing), later starts and every replica
only read it, and a missing token, a wrong PIN or a missing key stop the
start before anything is written.

SIGINT or SIGTERM stops the server gracefully: in-flight requests finish.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), o, so, stdout, stderr)
		},
	}
	f := cmd.Flags()
	so.lifecycle.register(f, o)
	f.StringVar(&so.addr, "addr", o.env("CREDVAULT_ADDR", "127.0.0.1:8080"), "listen address ($CREDVAULT_ADDR)")
	f.DurationVar(&so.readHeaderTimeout, "read-header-timeout", o.envDuration("CREDVAULT_READ_HEADER_TIMEOUT", 5*time.Second), "time allowed to read request headers ($CREDVAULT_READ_HEADER_TIMEOUT)")
	f.DurationVar(&so.readTimeout, "read-timeout", o.envDuration("CREDVAULT_READ_TIMEOUT", 15*time.Second), "time allowed to read a whole request ($CREDVAULT_READ_TIMEOUT)")
	f.DurationVar(&so.writeTimeout, "write-timeout", o.envDuration("CREDVAULT_WRITE_TIMEOUT", 30*time.Second), "time allowed to write a response ($CREDVAULT_WRITE_TIMEOUT)")
	f.DurationVar(&so.idleTimeout, "idle-timeout", o.envDuration("CREDVAULT_IDLE_TIMEOUT", 120*time.Second), "keep-alive idle timeout ($CREDVAULT_IDLE_TIMEOUT)")
	f.DurationVar(&so.shutdownTimeout, "shutdown-timeout", o.envDuration("CREDVAULT_SHUTDOWN_TIMEOUT", 30*time.Second), "how long graceful shutdown waits for in-flight requests ($CREDVAULT_SHUTDOWN_TIMEOUT)")
	f.DurationVar(&so.dbTimeout, "db-timeout", o.envDuration("CREDVAULT_DB_TIMEOUT", 10*time.Second), "deadline for a request's database work, for each connection attempt and, on PostgreSQL, each statement; must be below --write-timeout; past it the request is answered 503 ($CREDVAULT_DB_TIMEOUT)")
	f.IntVar(&so.maxHeaderBytes, "max-header-bytes", o.envInt("CREDVAULT_MAX_HEADER_BYTES", 16<<10), "largest request header block ($CREDVAULT_MAX_HEADER_BYTES)")
	f.StringVar(&so.tlsCert, "tls-cert", o.env("CREDVAULT_TLS_CERT", ""), "serve HTTPS with this PEM certificate chain ($CREDVAULT_TLS_CERT)")
	f.StringVar(&so.tlsKey, "tls-key", o.env("CREDVAULT_TLS_KEY", ""), "PEM private key for --tls-cert ($CREDVAULT_TLS_KEY)")
	f.BoolVar(&so.tlsSelfSigned, "tls-self-signed", o.env("CREDVAULT_TLS_SELF_SIGNED", "") == "true", "serve HTTPS with a throwaway self-signed certificate (development only) ($CREDVAULT_TLS_SELF_SIGNED=true)")
	f.Float64Var(&so.failedAuthPerMinute, "failed-auth-per-minute", o.envFloat("CREDVAULT_FAILED_AUTH_PER_MINUTE", 30), "failed authentications allowed per client address per minute, after the burst; per key id half of it; negative disables ($CREDVAULT_FAILED_AUTH_PER_MINUTE)")
	f.IntVar(&so.failedAuthBurst, "failed-auth-burst", o.envInt("CREDVAULT_FAILED_AUTH_BURST", 30), "failed authentications allowed in a burst per client address ($CREDVAULT_FAILED_AUTH_BURST)")
	f.Float64Var(&so.principalRPS, "principal-rate-limit", o.envFloat("CREDVAULT_PRINCIPAL_RATE_LIMIT", 0), "requests per second allowed per principal; 0 = unlimited ($CREDVAULT_PRINCIPAL_RATE_LIMIT)")
	f.IntVar(&so.principalBurst, "principal-rate-burst", o.envInt("CREDVAULT_PRINCIPAL_RATE_BURST", 0), "burst for --principal-rate-limit: at least the rate and at least 1; a smaller value (0 included) is raised to it ($CREDVAULT_PRINCIPAL_RATE_BURST)")
	f.StringVar(&so.trustedProxies, "trusted-proxies", o.env("CREDVAULT_TRUSTED_PROXIES", ""), "comma-separated CIDRs (or addresses) of reverse proxies whose X-Forwarded-For is believed; the client address is the right-most untrusted entry ($CREDVAULT_TRUSTED_PROXIES)")
	f.StringVar(&so.metricsAddr, "metrics-addr", o.env("CREDVAULT_METRICS_ADDR", ""), "serve /metrics only on this separate listen address (plain HTTP), not on --addr ($CREDVAULT_METRICS_ADDR)")
	f.StringVar(&so.metricsToken, "metrics-token", "", "bearer token GET /metrics requires; prefer $CREDVAULT_METRICS_TOKEN, which is not visible in the process list")
	f.DurationVar(&so.auditCheckpointInterval, "audit-checkpoint-interval", o.envDuration("CREDVAULT_AUDIT_CHECKPOINT_INTERVAL", time.Minute), "how often to log a signed checkpoint of the audit trail's head (when it moved); 0 disables ($CREDVAULT_AUDIT_CHECKPOINT_INTERVAL)")
	f.StringVar(&so.auditAnchorFile, "audit-anchor-file", o.env("CREDVAULT_AUDIT_ANCHOR_FILE", ""), "also append each checkpoint to this file, kept away from the database; check with \"credvault audit verify --anchor-file\" ($CREDVAULT_AUDIT_ANCHOR_FILE)")
	f.StringVar(&so.auditAnchorWebhook, "audit-anchor-webhook", o.env("CREDVAULT_AUDIT_ANCHOR_WEBHOOK", ""), "also POST each checkpoint as JSON to this URL, best effort ($CREDVAULT_AUDIT_ANCHOR_WEBHOOK)")
	f.StringVar(&so.oidcAllowHosts, "oidc-allow-hosts", o.env("CREDVAULT_OIDC_ALLOW_HOSTS", ""), "comma-separated hosts, addresses and CIDRs of workload-identity issuers that may be fetched although they are not public (loopback, private, link-local); others are refused ($CREDVAULT_OIDC_ALLOW_HOSTS)")
	f.StringVar(&so.oidcCAFile, "oidc-ca-file", o.env("CREDVAULT_OIDC_CA_FILE", ""), "PEM certificates trusted, besides the system roots, for workload-identity issuers, e.g. a cluster's CA ($CREDVAULT_OIDC_CA_FILE)")
	return cmd
}

// parsePrefixes parses a comma-separated list of CIDRs or bare addresses
// (a bare address is a /32 or /128).
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither a CIDR nor an IP address", f)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

func serve(ctx context.Context, o *options, so *serveOptions, stdout, stderr io.Writer) error {
	logger := o.logger(stdout)
	tlsCfg, fingerprint, err := tlsConfig(so.tlsCert, so.tlsKey, so.tlsSelfSigned)
	if err != nil {
		return err
	}
	if so.dbTimeout <= 0 || (so.writeTimeout > 0 && so.dbTimeout >= so.writeTimeout) {
		return fmt.Errorf("--db-timeout (%s) must be positive and below --write-timeout (%s), so that a request whose database does not answer still gets its 503", so.dbTimeout, so.writeTimeout)
	}
	cfg := o.appConfig(logger)
	cfg.DBTimeout = so.dbTimeout
	cfg.FailedAuthPerMinute, cfg.FailedAuthBurst = so.failedAuthPerMinute, so.failedAuthBurst
	cfg.PrincipalRPS, cfg.PrincipalBurst = so.principalRPS, so.principalBurst
	if cfg.TrustedProxies, err = parsePrefixes(so.trustedProxies); err != nil {
		return err
	}
	cfg.MetricsToken = so.metricsToken
	if cfg.MetricsToken == "" {
		cfg.MetricsToken = o.getenv("CREDVAULT_METRICS_TOKEN")
	}
	cfg.MetricsElsewhere = so.metricsAddr != ""
	cfg.AuditCheckpointInterval, cfg.AuditAnchorFile, cfg.AuditAnchorWebhook = so.auditCheckpointInterval, so.auditAnchorFile, so.auditAnchorWebhook
	if cfg.OIDC, err = oidcOptions(so.oidcAllowHosts, so.oidcCAFile); err != nil {
		return err
	}
	if err := so.lifecycle.apply(&cfg); err != nil {
		return err
	}
	a, err := app.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer a.Close()
	if a.KeyGenerated {
		logger.Warn("GENERATED A NEW MASTER KEY IN THE DATA DIRECTORY: this is for development only. "+
			"In production supply the master key through CREDVAULT_MASTER_KEY or --master-key-file, kept apart from the database and its backups.",
			"source", a.KeySource)
	}
	if a.RootKeyGenerated {
		logger.Info("generated the root key inside the HSM", "source", a.KeySource)
	}
	// Replicas starting at once on an empty PostgreSQL database must not
	// bootstrap it twice: App.Bootstrap holds the database-wide start-up lock.
	boot, err := a.Bootstrap(ctx, o.getenv("CREDVAULT_BOOTSTRAP_API_KEY"))
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", so.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
		ln = tls.NewListener(ln, tlsCfg)
		if fingerprint != "" {
			logger.Warn("serving HTTPS with a throwaway self-signed certificate: development only", "sha256_fingerprint", fingerprint)
		}
	}
	if boot != nil {
		printBootstrap(stderr, boot.APIKey, o.getenv("CREDVAULT_BOOTSTRAP_API_KEY") != "", boot.Account.ID, boot.Principal.ID, scheme+"://"+ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           withDeadline(a.Handler, so.dbTimeout),
		ReadHeaderTimeout: so.readHeaderTimeout,
		ReadTimeout:       so.readTimeout,
		WriteTimeout:      so.writeTimeout,
		IdleTimeout:       so.idleTimeout,
		MaxHeaderBytes:    so.maxHeaderBytes,
		ErrorLog:          nil,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 2)
	var msrv *http.Server
	if so.metricsAddr != "" {
		mln, err := net.Listen("tcp", so.metricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen (metrics): %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Handler.MetricsHandler())
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: so.readHeaderTimeout, ReadTimeout: so.readTimeout,
			WriteTimeout: so.writeTimeout, IdleTimeout: so.idleTimeout, MaxHeaderBytes: so.maxHeaderBytes}
		logger.Info("metrics listening", "metrics_addr", mln.Addr().String(), "token_required", cfg.MetricsToken != "")
		go func() {
			if err := msrv.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("metrics: %w", err)
			}
		}()
	}
	if so.metricsAddr == "" && cfg.MetricsToken == "" {
		logger.Warn("/metrics is served on the API address without authentication; set --metrics-addr or CREDVAULT_METRICS_TOKEN to keep it private")
	}
	logger.Info("credvault listening", "addr", ln.Addr().String(), "scheme", scheme, "engine", a.Store.Engine(), "master_key", a.KeySource)

	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down: finishing in-flight requests", "timeout", so.shutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), so.shutdownTimeout)
	defer cancel()
	if msrv != nil {
		_ = msrv.Shutdown(sctx)
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// printBootstrap shows the bootstrap key once. It goes to stderr, never
// through the logger, so no log pipeline captures it.
func printBootstrap(w io.Writer, key string, supplied bool, accountID, principalID, addr string) {
	fmt.Fprintln(w, "================================================================================")
	fmt.Fprintln(w, "credvault: bootstrapped a new vault")
	fmt.Fprintf(w, "  default account:  %s\n", accountID)
	fmt.Fprintf(w, "  admin principal:  %s\n", principalID)
	if supplied {
		fmt.Fprintln(w, "  admin API key:    (the one supplied in CREDVAULT_BOOTSTRAP_API_KEY)")
	} else {
		fmt.Fprintf(w, "  admin API key:    %s\n", key)
		fmt.Fprintln(w, "  This key is shown ONCE and stored only as a hash. Keep it somewhere safe.")
	}
	fmt.Fprintln(w, "")
	fmt.Fprintln(w, "  SGP API:  curl -H 'x-api-key: <key>' "+addr+"/v5/credentials")
	fmt.Fprintln(w, "  DSM API:  curl -X POST -H 'Authorization: Basic <key>' "+addr+"/sys/v1/session/auth")
	fmt.Fprintln(w, "            (the key is already base64(app_id:secret), as DSM clients expect;")
	fmt.Fprintln(w, "             use it as a DSM app API key, e.g. with the official Go client's APIKey auth)")
	fmt.Fprintln(w, "================================================================================")
}

// withDeadline bounds each request's context, and so every database call
// made for it (waiting for a pooled connection included): a database that
// does not answer turns into a 503 before the write timeout cuts the
// connection.
func withDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
