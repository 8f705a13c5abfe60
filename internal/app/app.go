// Package app composes credvault from its parts: store, master key,
// keyring, core service and HTTP handler. cmd/credvault and the tests build
// the vault through it, so tests run exactly what the binary runs.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/server"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/vault"
)

// Config is everything needed to build a vault. cmd/credvault fills it from
// flags and the environment.
type Config struct {
	DataDir     string // holds the SQLite database and, in development, the generated master key
	DatabaseURL string // postgres://… or a SQLite path; default DataDir/credvault.db
	// Master key: MasterKey (the value of $CREDVAULT_MASTER_KEY) wins over
	// MasterKeyFile; with neither, DataDir/master-key.json is used and
	// generated if missing (development only).
	MasterKey     string
	MasterKeyFile string
	MaxPayload    int
	MaxBodyBytes  int64
	Logger        *slog.Logger

	// Abuse limits (see vault.Options).
	FailedAuthPerMinute float64
	FailedAuthBurst     int
	PrincipalRPS        float64
	PrincipalBurst      int

	// DBTimeout bounds the database's waits (see sqlstore.Options.Timeout);
	// zero leaves them unbounded. The server also bounds each request's
	// context with it.
	DBTimeout time.Duration

	// RekeyGrace is the wait of an admin-API master-key rotation (see
	// RekeyOptions.Grace).
	RekeyGrace time.Duration
}

// App is an assembled vault.
type App struct {
	Store    *sqlstore.DB
	Trail    *audit.Trail
	Keyring  *crypto.Keyring
	Service  *vault.Service
	Handler  *server.Server
	Registry *prometheus.Registry

	// KeySource describes where the master key came from; KeyGenerated is
	// true when it was generated into the data directory just now.
	KeySource    string
	KeyGenerated bool

	stopWatch func()
}

// DatabaseURL resolves the database URL of cfg.
func (cfg Config) databaseURL() string {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL
	}
	return filepath.Join(cfg.DataDir, "credvault.db")
}

// KeyProvider returns the master key provider cfg selects.
func (cfg Config) KeyProvider() crypto.Provider {
	switch {
	case cfg.MasterKey != "":
		return crypto.EnvProvider{Var: "CREDVAULT_MASTER_KEY", Value: cfg.MasterKey}
	case cfg.MasterKeyFile != "":
		return &crypto.FileProvider{Path: cfg.MasterKeyFile}
	default:
		return &crypto.FileProvider{Path: filepath.Join(cfg.DataDir, "master-key.json"), Generate: true}
	}
}

// OpenStore opens (and migrates) the database only.
func OpenStore(ctx context.Context, cfg Config) (*sqlstore.DB, error) {
	return sqlstore.Open(ctx, cfg.databaseURL())
}

// Open builds the whole vault. The caller must Close it.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// A server checks the SQLite file's pages before it serves from it.
	db, err := sqlstore.OpenWith(ctx, cfg.databaseURL(), sqlstore.Options{Timeout: cfg.DBTimeout, QuickCheck: true, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	a, err := build(ctx, cfg, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

func build(ctx context.Context, cfg Config, db *sqlstore.DB) (*App, error) {
	prov := cfg.KeyProvider()
	h, err := prov.Load(ctx)
	if err != nil {
		return nil, err
	}
	kr, err := crypto.NewKeyring(h)
	if err != nil {
		return nil, err
	}
	svc := vault.NewService(db, kr, vault.Options{
		MaxPayload:          cfg.MaxPayload,
		FailedAuthPerMinute: cfg.FailedAuthPerMinute,
		FailedAuthBurst:     cfg.FailedAuthBurst,
		PrincipalRPS:        cfg.PrincipalRPS,
		PrincipalBurst:      cfg.PrincipalBurst,
	})
	if err := svc.CheckMasterKey(ctx); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	auditFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "credvault_audit_write_failures_total",
		Help: "Audit events that could not be written (the operations they belonged to were refused).",
	})
	reg.MustRegister(auditFailures, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, pool := range db.Pools() {
		reg.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	authFailures := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "credvault_auth_failures_total",
		Help: "Failed authentications (unknown, revoked or expired keys and tokens, wrong account).",
	})
	secretAccesses := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "credvault_secret_accesses_total",
		Help: "Plaintext secrets served, by operation (credential.decrypt, sobject.export, …).",
	}, []string{"op"})
	reg.MustRegister(authFailures, secretAccesses)
	svc.OnAuthFailure(authFailures.Inc)
	svc.OnSecretAccess(func(op string) { secretAccesses.WithLabelValues(op).Inc() })
	trail := audit.New(db, auditFailures.Inc)
	batchSizes := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "credvault_audit_batch_size",
		Help:    "Audit events per group-committed transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	reg.MustRegister(batchSizes)
	trail.ObserveBatches(func(n int) { batchSizes.Observe(float64(n)) })
	svc.SetAuditor(trail)
	a := &App{
		Trail:     trail,
		Store:     db,
		Keyring:   kr,
		Service:   svc,
		Registry:  reg,
		KeySource: prov.Name(),
	}
	scfg := server.Config{Logger: cfg.Logger, MaxBodyBytes: cfg.MaxBodyBytes, Registry: reg}
	if fp, ok := prov.(*crypto.FileProvider); ok && fp.Path != "" {
		scfg.Rekey = func(ctx context.Context) (any, error) {
			return Rekey(ctx, cfg, RekeyOptions{Grace: cfg.RekeyGrace, Keyring: kr, Log: func(msg string, args ...any) { cfg.Logger.Info(msg, args...) }})
		}
	}
	a.Handler = server.New(svc, scfg)
	if fp, ok := prov.(*crypto.FileProvider); ok {
		a.KeyGenerated = fp.Generated
		a.stopWatch = watchKeyFile(fp.Path, kr, cfg.Logger)
	}
	return a, nil
}

// watchKeyFile makes the keyring follow a master key file that `credvault
// rekey` rotates while the server runs: it re-reads the file when its
// modification time changes (polled every 2s), and the keyring re-reads it
// on demand when it meets a data key wrapped by a key it does not have.
func watchKeyFile(path string, kr *crypto.Keyring, log *slog.Logger) (stop func()) {
	load := func() (*keyset.Handle, error) {
		return (&crypto.FileProvider{Path: path}).Load(context.Background())
	}
	kr.SetReloader(load)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		var last time.Time
		if fi, err := os.Stat(path); err == nil {
			last = fi.ModTime()
		}
		t := time.NewTicker(2 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			fi, err := os.Stat(path)
			if err != nil || fi.ModTime().Equal(last) {
				continue
			}
			last = fi.ModTime()
			if changed, err := kr.Reload(); err != nil {
				log.Error("master key file changed but cannot be loaded; keeping the current keys", "err", err.Error())
			} else if changed {
				log.Info("master keyset reloaded", "primary_key_id", kr.PrimaryKeyID())
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// Close releases the vault's resources.
func (a *App) Close() error {
	if a.stopWatch != nil {
		a.stopWatch()
	}
	a.Trail.Close()
	if err := a.Store.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Bootstrap bootstraps an empty database (see vault.Service.Bootstrap)
// under the database-wide start-up lock, so that replicas starting at once
// on an empty PostgreSQL database bootstrap it exactly once.
func (a *App) Bootstrap(ctx context.Context, suppliedKey string) (*vault.BootstrapResult, error) {
	var boot *vault.BootstrapResult
	err := a.Store.Exclusive(ctx, func() error {
		var err error
		boot, err = a.Service.Bootstrap(ctx, suppliedKey)
		return err
	})
	return boot, err
}
