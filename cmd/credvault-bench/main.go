// Command credvault-bench measures credvault over real loopback HTTP against
// a bare net/http handler measured in the same run.
//
// It starts, in this process, a bare handler (writes a small fixed JSON body)
// and a real credvault (internal/app on a temporary data directory, or on
// --database-url), each behind its own http.Server on a 127.0.0.1 listener,
// preloads --rows credentials through the core's bulk path, and then drives
// each operation at each concurrency for --duration (after --warmup) with a
// keep-alive client pool. Every operation cell is preceded by a bare cell at
// the same concurrency, so that the noise of a shared machine hits both, and
// the ratio column divides the operation's ops/s by that adjacent bare cell.
//
// The result is a Markdown table on stdout; progress goes to stderr. The
// program only talks to 127.0.0.1, and stops by itself.
//
//	go run ./cmd/credvault-bench -rows 100000
//	go run ./cmd/credvault-bench -rows 10000 -database-url postgres://…
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/vault"
)

type config struct {
	rows        int
	duration    time.Duration
	warmup      time.Duration
	concs       []int
	ops         []string
	databaseURL string
	dataDir     string
	payloadSize int
	batch       int
	cpuProfile  string
	memProfile  string
	keep        bool
	sample      int
	noAudit     bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "credvault-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var cfg config
	var concs, ops string
	fs := flag.NewFlagSet("credvault-bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `credvault-bench: ops/s and p50/p99 latency of credvault over loopback HTTP,
with the ratio to a bare net/http handler measured in the same run.

Usage: go run ./cmd/credvault-bench [flags]

Operations (-ops): %s

Flags:
`, strings.Join(opNames(), ", "))
		fs.PrintDefaults()
	}
	fs.IntVar(&cfg.rows, "rows", 100000, "credentials preloaded (through the core's bulk path) before measuring")
	fs.DurationVar(&cfg.duration, "duration", 3*time.Second, "measured time per cell")
	fs.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each cell")
	fs.StringVar(&concs, "concurrency", "1,16,64", "comma-separated client concurrencies")
	fs.StringVar(&ops, "ops", "all", "comma-separated operations, or all")
	fs.StringVar(&cfg.databaseURL, "database-url", "", "postgres://… to benchmark on PostgreSQL; default: SQLite in a temporary data directory. Use a new, empty database: a database already used needs the master key it was written with (the same -data-dir), and the run then works in a new account")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "data directory (default: a new temporary directory, removed at the end)")
	fs.IntVar(&cfg.payloadSize, "payload-bytes", 40, "payload size of preloaded and created credentials")
	fs.IntVar(&cfg.batch, "batch", 5000, "preload batch size (one transaction each)")
	fs.IntVar(&cfg.sample, "sample", 10000, "how many preloaded ids get/decrypt pick from (spread evenly over the rows)")
	fs.StringVar(&cfg.cpuProfile, "cpuprofile", "", "write a CPU profile of each credvault cell's measured window to <file>.<op>-c<conc>")
	fs.StringVar(&cfg.memProfile, "memprofile", "", "write a heap profile at the end to this file")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary data directory")
	fs.BoolVar(&cfg.noAudit, "no-audit", false, "diagnosis only: run the vault without its audit trail, to measure what the trail costs (not a supported configuration)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	for _, s := range strings.Split(concs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("bad -concurrency %q", s)
		}
		cfg.concs = append(cfg.concs, n)
	}
	if ops == "all" {
		cfg.ops = opNames()
	} else {
		for _, s := range strings.Split(ops, ",") {
			s = strings.TrimSpace(s)
			if findOp(s) == nil {
				return fmt.Errorf("unknown operation %q (known: %s)", s, strings.Join(opNames(), ", "))
			}
			cfg.ops = append(cfg.ops, s)
		}
	}
	if cfg.rows < 200 {
		return errors.New("-rows must be at least 200 (the deep-page cursor needs room)")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench(ctx, cfg)
}

func bench(ctx context.Context, cfg config) error {
	logf := func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	memStart := readMem()

	// The vault.
	dataDir := cfg.dataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "credvault-bench-")
		if err != nil {
			return err
		}
		dataDir = d
		if !cfg.keep {
			defer os.RemoveAll(d)
		} else {
			logf("data directory: %s", d)
		}
	}
	acfg := app.Config{DataDir: dataDir, DatabaseURL: cfg.databaseURL, Logger: slog.New(slog.DiscardHandler), NoAudit: cfg.noAudit}
	acfg.Lifecycle.WebhookAllowHosts = []string{"127.0.0.1"} // create-webhooks delivers to the local bare handler
	if cfg.databaseURL == "" {
		acfg.DatabaseURL = filepath.Join(dataDir, "credvault.db")
	}
	a, err := app.Open(ctx, acfg)
	if err != nil {
		return err
	}
	defer a.Close()
	key, id, err := benchIdentity(ctx, a.Service)
	if err != nil {
		return err
	}

	vaultURL, stopVault, err := listen(a.Handler)
	if err != nil {
		return err
	}
	defer stopVault()
	bareURL, stopBare, err := listen(bareHandler())
	if err != nil {
		return err
	}
	defer stopBare()

	// Preload.
	logf("preloading %d credentials (engine %s)…", cfg.rows, a.Store.Engine())
	t0 := time.Now()
	sample, deep, err := preload(ctx, a.Service, a.Store, id, cfg)
	if err != nil {
		return fmt.Errorf("preload: %w", err)
	}
	loadTime := time.Since(t0)
	logf("preloaded in %s (%.0f credentials/s)", loadTime.Round(time.Millisecond), float64(cfg.rows)/loadTime.Seconds())
	runtime.GC()
	debug.FreeOSMemory()
	memLoaded := readMem()

	maxC := slices.Max(cfg.concs)
	e := &env{
		ctx:        ctx,
		vaultURL:   vaultURL,
		bareURL:    bareURL,
		apiKey:     key,
		identity:   id,
		svc:        a.Service,
		ids:        sample,
		deepCursor: deep.id,
		vault:      newClient(maxC),
		bare:       newClient(maxC),
		payload:    make([]byte, cfg.payloadSize),
		runID:      strconv.FormatInt(time.Now().UnixNano()%1e9, 36),
	}
	for i := range e.payload {
		e.payload[i] = 'a' + byte(i%26)
	}

	// Prepare the operations (some need objects first; some may be skipped
	// because the server does not have them yet).
	type prepared struct {
		op    *opSpec
		build builder
	}
	var (
		plan    []prepared
		skipped []string
	)
	for _, name := range cfg.ops {
		op := findOp(name)
		b, err := op.setup(e)
		if errors.Is(err, errSkip) {
			skipped = append(skipped, fmt.Sprintf("%s (%v)", name, err))
			logf("skipping %s: %v", name, err)
			continue
		}
		if err != nil {
			return fmt.Errorf("set up %s: %w", name, err)
		}
		if err := probe(e, op, b); err != nil {
			return fmt.Errorf("probe %s: %w", name, err)
		}
		plan = append(plan, prepared{op, b})
	}

	bareOp := findOp("bare")
	bareBuild, _ := bareOp.setup(e)
	var results []row
	for _, c := range cfg.concs {
		var bares []cellResult
		for _, p := range plan {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if p.op.name == "bare" {
				continue
			}
			logf("c=%d bare …", c)
			b := runCell(ctx, e.bare, c, cfg.warmup, cfg.duration, bareBuild, bareOp.status, nil)
			bares = append(bares, b)
			logf("c=%d %s …", c, p.op.name)
			r := runCell(ctx, e.vault, c, cfg.warmup, cfg.duration, p.build, p.op.status, cfg.profileHook(p.op.name, c))
			results = append(results, row{op: p.op.name, conc: c, res: r, bare: b})
		}
		if len(bares) == 0 { // only "bare" was asked for
			b := runCell(ctx, e.bare, c, cfg.warmup, cfg.duration, bareBuild, bareOp.status, cfg.profileHook("bare", c))
			bares = append(bares, b)
		}
		results = append(results, row{op: "bare", conc: c, res: medianCell(bares), bare: medianCell(bares), bareRuns: len(bares)})
	}
	memEnd := readMem()

	if cfg.memProfile != "" {
		f, err := os.Create(cfg.memProfile)
		if err != nil {
			return err
		}
		runtime.GC()
		if err := pprof.WriteHeapProfile(f); err != nil {
			return err
		}
		f.Close()
	}

	total, _ := countCredentials(ctx, a.Service, id)
	report(os.Stdout, cfg, reportInfo{
		engine:    a.Store.Engine(),
		loadTime:  loadTime,
		deepIndex: deep.index,
		rowsEnd:   total,
		memStart:  memStart,
		memLoaded: memLoaded,
		memEnd:    memEnd,
		skipped:   skipped,
	}, results)
	return nil
}

// profileHook returns the hook that writes the CPU profile of one cell's
// measured window to <-cpuprofile>.<op>-c<conc>, or nil.
func (cfg config) profileHook(op string, conc int) func(bool) {
	if cfg.cpuProfile == "" {
		return nil
	}
	var f *os.File
	return func(start bool) {
		if start {
			var err error
			if f, err = os.Create(fmt.Sprintf("%s.%s-c%d", cfg.cpuProfile, op, conc)); err == nil {
				if err := pprof.StartCPUProfile(f); err != nil {
					f.Close()
					f = nil
				}
			}
			return
		}
		if f != nil {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}

// benchIdentity returns an API key and the identity behind it. On an empty
// database the vault is bootstrapped (so the key is the admin key, usable on
// both dialects); otherwise the run gets a new account and an admin service
// account in it, so earlier data does not disturb totals or pages.
func benchIdentity(ctx context.Context, svc *vault.Service) (string, *vault.Identity, error) {
	boot, err := svc.Bootstrap(ctx, "")
	if err != nil {
		return "", nil, err
	}
	if boot != nil {
		return boot.APIKey, &vault.Identity{Principal: boot.Principal, AccountID: boot.Account.ID, Role: vault.RoleAdmin, KeyID: boot.KeyID}, nil
	}
	name := "bench-" + time.Now().UTC().Format("20060102T150405.000")
	acct, err := svc.CreateAccount(ctx, name, "")
	if err != nil {
		return "", nil, err
	}
	p, err := svc.CreatePrincipal(ctx, vault.PrincipalServiceAccount, name, acct.ID, vault.RoleAdmin)
	if err != nil {
		return "", nil, err
	}
	k, secret, err := svc.CreateAPIKey(ctx, p.ID, name, 0)
	if err != nil {
		return "", nil, err
	}
	return secret, &vault.Identity{Principal: *p, AccountID: acct.ID, Role: vault.RoleAdmin, KeyID: k.ID}, nil
}

// listen serves h on a new 127.0.0.1 listener with the server settings of
// credvault serve.
func listen(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          nil,
	}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// bareBody is about the size of a decrypt response.
var bareBody = []byte(`{"result":"abcdefghijklmnopqrstuvwxyzabcdefghijklmn","object":"credential_secret"}`)

func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(bareBody)))
		_, _ = w.Write(bareBody)
	})
}

func newClient(maxConc int) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2*maxConc + 16,
		MaxIdleConnsPerHost: 2*maxConc + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// mem is the process's memory as the kernel and the Go runtime see it.
type mem struct {
	rssKB, hwmKB uint64 // VmRSS, VmHWM from /proc/self/status
	heapInuse    uint64
}

func readMem() mem {
	var m mem
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			f := strings.Fields(v)
			if len(f) == 0 {
				continue
			}
			n, _ := strconv.ParseUint(f[0], 10, 64)
			switch k {
			case "VmRSS":
				m.rssKB = n
			case "VmHWM":
				m.hwmKB = n
			}
		}
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m.heapInuse = ms.HeapInuse
	return m
}

func countCredentials(ctx context.Context, svc *vault.Service, id *vault.Identity) (int, error) {
	p, err := svc.ListCredentials(ctx, id, vault.CredentialQuery{Limit: 1})
	if err != nil {
		return 0, err
	}
	return p.Total, nil
}
