// Package app composes credvault from its parts: store, master key,
// keyring, core service and HTTP handler. cmd/credvault and the tests build
// the vault through it, so tests run exactly what the binary runs.
package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/tink-crypto/tink-go/v2/keyset"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/credvault/credvault/internal/audit"
	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/server"
	"github.com/credvault/credvault/internal/store"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/vault"
	"github.com/credvault/credvault/internal/webhook"
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

	// MasterKeyURI names a root key outside the process (an HSM key:
	// pkcs11:…). With it the data-key keyset is kept in the database,
	// encrypted under that key, and no key file is used (see rootkey.go).
	MasterKeyURI string

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

	// HTTP edge (see server.Config).
	TrustedProxies   []netip.Prefix
	MetricsToken     string
	MetricsElsewhere bool

	// AuditCheckpointInterval is how often the server writes a signed
	// checkpoint of the audit trail's head (audit.Checkpoint) to its log,
	// and to AuditAnchorFile if set, when the head moved. 0 disables them.
	AuditCheckpointInterval time.Duration
	AuditAnchorFile         string
	// AuditAnchorWebhook, if set, receives each checkpoint as a JSON POST
	// (best effort: a failure is logged, the next checkpoint is sent anyway).
	AuditAnchorWebhook string

	// Lifecycle configures versions, the trash, expiry and webhooks (lifecycle.go).
	Lifecycle LifecycleConfig

	// Clock is the vault's clock (the service's, the store's and the
	// webhook worker's); time.Now if nil. Tests pass a clock they move
	// instead of sleeping.
	Clock func() time.Time
	// RekeyHook is vault.Options.RekeyHook: tests inject a failure inside a
	// rotation's transaction with it. Nil in production.
	RekeyHook func(step int) error
	// NoAudit builds a service that records no audit events, for
	// credvault-bench --no-audit only (to measure the audit trail's cost).
	NoAudit bool

	// OIDC configures the verification of workload tokens at
	// /oauth/token (allowed non-public issuer hosts, timeouts).
	OIDC oidc.Options
}

// App is an assembled vault.
type App struct {
	Store    store.Engine
	Trail    *audit.Trail
	Keyring  *crypto.Keyring
	Service  *vault.Service
	Handler  *server.Server
	Registry *prometheus.Registry
	Webhooks *webhook.Worker // lifecycle.go

	// KeySource describes where the master key came from; KeyGenerated is
	// true when it was generated into the data directory just now.
	KeySource    string
	KeyGenerated bool
	// RootKeyGenerated is true when the root key named by MasterKeyURI was
	// generated inside the HSM just now (a new vault).
	RootKeyGenerated bool

	stopRekey       func()
	stopWatch       func()
	stopPurge       func()
	stopCheckpoints func()
	stopLifecycle   func()
	root            crypto.RootKey
	closeOnce       sync.Once
	closeErr        error
}

// databaseURL is cfg.DatabaseURL, or the SQLite file in cfg.DataDir.
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
func OpenStore(ctx context.Context, cfg Config) (store.Engine, error) {
	db, err := sqlstore.Open(ctx, cfg.databaseURL())
	if err != nil {
		return nil, err // not a nil *sqlstore.DB in a non-nil interface
	}
	return db, nil
}

// Open builds the whole vault. The caller must Close it.
func Open(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	// A root key is opened before the database, so that a missing token,
	// a wrong PIN or a missing key fails before anything is written.
	var root crypto.RootKey
	var rootGenerated bool
	if cfg.MasterKeyURI != "" {
		if cfg.MasterKey != "" || cfg.MasterKeyFile != "" {
			return nil, errors.New("master key: give either --master-key-uri or a key file/$CREDVAULT_MASTER_KEY, not both (to move a vault from one to the other, use `credvault rekey --to-master-key-uri`)")
		}
		var err error
		if root, rootGenerated, err = openRootKey(ctx, cfg, true); err != nil {
			return nil, err
		}
	}
	// A server checks the SQLite file's pages before it serves from it.
	// The store wakes the webhook worker when a commit wrote deliveries.
	hooks := storeHooks{
		wake: newWakeup(),
		writeBatches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credvault_db_write_batch_size",
			Help:    "Writes (requests) per group-committed database transaction (SQLite).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
	}
	db, err := sqlstore.OpenWith(ctx, cfg.databaseURL(), sqlstore.Options{Timeout: cfg.DBTimeout, QuickCheck: true, Logger: cfg.Logger, Now: cfg.Clock,
		OnDeliveries: hooks.wake.wake, OnWriteBatch: func(n int) { hooks.writeBatches.Observe(float64(n)) }})
	if err != nil {
		if root != nil {
			root.Close()
		}
		return nil, err
	}
	a, err := build(ctx, cfg, db, root, hooks)
	if err != nil {
		db.Close()
		if root != nil {
			root.Close()
		}
		return nil, err
	}
	a.RootKeyGenerated = rootGenerated
	return a, nil
}

// storeHooks are what the store reports to the rest of the vault, made
// before the store is opened.
type storeHooks struct {
	wake         wakeup               // the webhook worker's wake-up (lifecycle.go)
	writeBatches prometheus.Histogram // group commit sizes
}

func build(ctx context.Context, cfg Config, db store.Engine, root crypto.RootKey, hooks storeHooks) (*App, error) {
	var (
		h      *keyset.Handle
		keys   *dbKeys
		source string
		err    error
		prov   = cfg.KeyProvider()
	)
	if root != nil {
		if h, keys, err = rootKeyset(ctx, db, root); err != nil {
			return nil, err
		}
		source = keys.name()
	} else {
		if err := refuseFileKeyForRootVault(ctx, db); err != nil {
			return nil, err
		}
		if err := refuseNewKeyForExistingDB(ctx, prov, db); err != nil {
			return nil, err
		}
		if h, err = prov.Load(ctx); err != nil {
			return nil, err
		}
		source = prov.Name()
	}
	kr, err := crypto.NewKeyring(h)
	if err != nil {
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
	trail := audit.New(db, auditFailures.Inc)
	trail.SetKeys(kr)
	batchSizes := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "credvault_audit_batch_size",
		Help:    "Audit events per group-committed transaction.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	reg.MustRegister(batchSizes)
	trail.ObserveBatches(func(n int) { batchSizes.Observe(float64(n)) })
	reg.MustRegister(hooks.writeBatches)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "credvault_db_writes_queued",
		Help: "Writes waiting for the group commit (SQLite; always 0 on PostgreSQL).",
	}, func() float64 { return float64(db.QueuedWrites()) }))
	var auditor vault.Auditor = trail
	if cfg.NoAudit {
		auditor = nil
	}
	svc := vault.NewService(db, kr, vault.Options{
		MaxPayload:          cfg.MaxPayload,
		Now:                 cfg.Clock,
		FailedAuthPerMinute: cfg.FailedAuthPerMinute,
		FailedAuthBurst:     cfg.FailedAuthBurst,
		PrincipalRPS:        cfg.PrincipalRPS,
		PrincipalBurst:      cfg.PrincipalBurst,
		Auditor:             auditor,
		OnAuthFailure:       authFailures.Inc,
		OnSecretAccess:      func(op string) { secretAccesses.WithLabelValues(op).Inc() },
		RekeyHook:           cfg.RekeyHook,
		Lifecycle:           cfg.Lifecycle.serviceOptions(),
	})
	if err := svc.CheckMasterKey(ctx); err != nil {
		trail.Close()
		return nil, err
	}
	if err := trail.CheckHead(ctx); err != nil {
		cfg.Logger.Error("the audit trail's head does not authenticate: every change will be refused (503) until an operator checks the trail "+
			"(credvault audit verify --expect-head/--anchor-file) and runs credvault audit seal-head; see docs/operations.md", "err", err.Error())
	}
	a := &App{
		Trail:     trail,
		Store:     db,
		Keyring:   kr,
		Service:   svc,
		Registry:  reg,
		KeySource: source,
		root:      root,
	}
	scfg := server.Config{Ready: db.Ping, Logger: cfg.Logger, MaxBodyBytes: cfg.MaxBodyBytes, Registry: reg,
		TrustedProxies: cfg.TrustedProxies, MetricsToken: cfg.MetricsToken, MetricsElsewhere: cfg.MetricsElsewhere, Console: db, OIDC: cfg.OIDC}
	if fp, ok := prov.(*crypto.FileProvider); root != nil || ok && fp.Path != "" {
		newKeys := func() keyStore { return fileKeys{&crypto.FileProvider{Path: fp.Path}} }
		if root != nil {
			newKeys = func() keyStore { return &dbKeys{db: db, root: root} }
		}
		jobs := newRekeyJobs(db, newKeys, kr, cfg.RekeyGrace, cfg.Logger)
		scfg.Rekey = jobs
		a.stopRekey = jobs.stop
	}
	a.Handler = server.New(svc, scfg)
	if root != nil {
		a.stopWatch = watchRootKeyset(keys, kr, cfg.Logger)
	} else if fp, ok := prov.(*crypto.FileProvider); ok {
		a.KeyGenerated = fp.Generated
		a.stopWatch = watchKeyFile(fp.Path, kr, cfg.Logger)
	}
	a.stopPurge = purgeTombstones(db, cfg.Logger, tombstonePurgeInterval)
	if cfg.AuditCheckpointInterval > 0 {
		a.stopCheckpoints = runCheckpoints(trail, cfg)
	}
	if err := a.startLifecycle(cfg, hooks.wake); err != nil {
		for _, stop := range []func(){a.stopWatch, a.stopPurge, a.stopCheckpoints} {
			if stop != nil {
				stop()
			}
		}
		a.Trail.Close()
		return nil, err
	}
	return a, nil
}

// refuseNewKeyForExistingDB refuses to generate a development master key
// for a database that already holds data sealed under another key: the new
// key could open nothing, and writing it would leave a misleading file.
func refuseNewKeyForExistingDB(ctx context.Context, prov crypto.Provider, db vault.MetaStore) error {
	fp, ok := prov.(*crypto.FileProvider)
	if !ok || !fp.Generate {
		return nil
	}
	if _, err := os.Stat(fp.Path); !errors.Is(err, fs.ErrNotExist) {
		return nil // the file exists (or cannot be read: Load says why)
	}
	_, err := db.GetMeta(ctx, vault.MasterKeyCheckMeta)
	if err == nil {
		return fmt.Errorf("no master key configured for an existing database: supply the key it was created with through --master-key-file or $CREDVAULT_MASTER_KEY (a development vault keeps it in %s); nothing was written", fp.Path)
	}
	if vault.KindOf(err) == vault.KindNotFound {
		return nil // a new database: generating a development key is fine
	}
	return fmt.Errorf("master key check: %w", err)
}

// runCheckpoints writes a signed checkpoint of the audit head every
// cfg.AuditCheckpointInterval (when it moved): to the log, where a log
// shipper takes it out of the database's reach, and to the anchor file.
// `credvault audit verify --anchor-file` checks the trail against them.
func runCheckpoints(trail *audit.Trail, cfg Config) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		trail.RunCheckpoints(ctx, cfg.AuditCheckpointInterval, time.Now, func(c audit.Checkpoint, err error) {
			if err != nil {
				cfg.Logger.Error("audit checkpoint failed", "err", err.Error())
				return
			}
			cfg.Logger.Info("audit checkpoint", "seq", c.Seq, "hash", c.Hash, "time", c.Time.Format(time.RFC3339Nano), "key_id", c.KeyID, "mac", c.MAC)
			if cfg.AuditAnchorFile != "" {
				if err := audit.AppendCheckpoint(cfg.AuditAnchorFile, c); err != nil {
					cfg.Logger.Error("audit checkpoint not written to the anchor file", "err", err.Error())
				}
			}
			if cfg.AuditAnchorWebhook != "" {
				if err := postCheckpoint(ctx, cfg.AuditAnchorWebhook, c); err != nil {
					cfg.Logger.Error("audit checkpoint not delivered to the webhook", "err", err.Error())
				}
			}
		})
	}()
	return func() { cancel(); <-done }
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
	var last time.Time
	if fi, err := os.Stat(path); err == nil {
		last = fi.ModTime()
	}
	return every(context.Background(), 2*time.Second, false, func(context.Context) {
		fi, err := os.Stat(path)
		if err != nil || fi.ModTime().Equal(last) {
			return
		}
		last = fi.ModTime()
		if changed, err := kr.Reload(); err != nil {
			log.Error("master key file changed but cannot be loaded; keeping the current keys", "err", err.Error())
		} else if changed {
			log.Info("master keyset reloaded", "primary_key_id", kr.PrimaryKeyID())
		}
	})
}

// postCheckpoint POSTs c as JSON to url and expects a 2xx answer.
func postCheckpoint(ctx context.Context, url string, c audit.Checkpoint) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	body, _ := json.Marshal(c)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("audit anchor webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("audit anchor webhook: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("audit anchor webhook: answered %d", resp.StatusCode)
	}
	return nil
}

// Close releases the vault's resources. A master-key rotation running on
// this server is canceled first and recorded as interrupted (see
// rekeyJobs); Close waits for that. Calls after the first do nothing.
func (a *App) Close() error {
	a.closeOnce.Do(func() { a.closeErr = a.close() })
	return a.closeErr
}

func (a *App) close() error {
	if a.stopRekey != nil {
		a.stopRekey()
	}
	if a.stopWatch != nil {
		a.stopWatch()
	}
	if a.stopPurge != nil {
		a.stopPurge()
	}
	if a.stopCheckpoints != nil {
		a.stopCheckpoints()
	}
	if a.stopLifecycle != nil {
		a.stopLifecycle()
	}
	a.Trail.Close()
	err := a.Store.Close()
	if a.root != nil {
		a.root.Close()
	}
	if err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// Admin is what the CLI's administrative commands act through: the store,
// the master key (loaded, never generated) and a service whose changes are
// audited — in the change's own transaction, fail closed — as a named
// operator.
type Admin struct {
	Store   store.Engine
	Keyring *crypto.Keyring
	Trail   *audit.Trail
	Service *vault.Service
	// Actor is the operator the changes are recorded as (vault.OperatorIdentity).
	Actor *vault.Identity
}

// OpenAdmin opens the store and the master key for administrative commands
// acting as operator (recorded as principal "operator:<operator>"). The
// master key is needed because the audit trail's head is authenticated with
// a key derived from it.
func OpenAdmin(ctx context.Context, cfg Config, operator string) (*Admin, error) {
	// The database first: a mistyped --data-dir is named as such, not as a
	// missing key file, and never creates an empty vault.
	db, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	prov := cfg.KeyProvider()
	if fp, ok := prov.(*crypto.FileProvider); ok {
		fp.Generate = false
	}
	h, err := prov.Load(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("master key (%s): %w", prov.Name(), err)
	}
	kr, err := crypto.NewKeyring(h)
	if err != nil {
		db.Close()
		return nil, err
	}
	trail := audit.New(db, nil)
	trail.SetKeys(kr)
	svc := vault.NewService(db, kr, vault.Options{Auditor: trail})
	if err := svc.CheckMasterKey(ctx); err != nil {
		trail.Close()
		db.Close()
		return nil, err
	}
	return &Admin{Store: db, Keyring: kr, Trail: trail, Service: svc, Actor: vault.OperatorIdentity(operator)}, nil
}

// Context returns ctx acting as the operator.
func (a *Admin) Context(ctx context.Context) context.Context { return vault.WithActor(ctx, a.Actor) }

// Close releases the store.
func (a *Admin) Close() error {
	a.Trail.Close()
	return a.Store.Close()
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
