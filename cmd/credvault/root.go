package main

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store"
)

// options are the settings shared by every subcommand. Each flag has an
// environment variable; the flag wins when both are given.
type options struct {
	getenv func(string) string

	dataDir       string
	databaseURL   string
	masterKeyFile string
	masterKeyURI  string
	maxPayload    int
	logLevel      string
}

func (o *options) env(name, def string) string {
	if v := o.getenv(name); v != "" {
		return v
	}
	return def
}

func (o *options) envInt(name string, def int) int {
	if v := o.getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func (o *options) envFloat(name string, def float64) float64 {
	if v := o.getenv(name); v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return def
}

func (o *options) envDuration(name string, def time.Duration) time.Duration {
	if v := o.getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}

// openStore opens (and migrates) the configured database only: the admin
// commands act on it directly and need neither the master key nor a server.
// The database must exist: only serve, restore (and load, which bootstraps
// like serve) create one, so that a command run in the wrong directory or
// with a mistyped --data-dir fails instead of starting an empty vault.
func (o *options) openStore(ctx context.Context) (store.Engine, error) {
	return app.OpenExistingStore(ctx, o.appConfig(slog.New(slog.DiscardHandler)))
}

// withStore is a command's RunE that opens the existing store, runs fn on
// it and closes it.
func (o *options) withStore(fn func(cmd *cobra.Command, args []string, db store.Engine) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		db, err := o.openStore(cmd.Context())
		if err != nil {
			return err
		}
		defer db.Close()
		return fn(cmd, args, db)
	}
}

func (o *options) appConfig(logger *slog.Logger) app.Config {
	return app.Config{
		DataDir:       o.dataDir,
		DatabaseURL:   o.databaseURL,
		MasterKey:     o.getenv("CREDVAULT_MASTER_KEY"),
		MasterKeyFile: o.masterKeyFile,
		MasterKeyURI:  o.masterKeyURI,
		MaxPayload:    o.maxPayload,
		Logger:        logger,
	}
}

func newRootCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	o := &options{getenv: getenv}
	root := &cobra.Command{
		Use:   "credvault",
		Short: "A self-hosted credential vault (SGP v5 and Fortanix DSM APIs)",
		Long: `credvault stores credentials (LLM provider API keys, service-account JSON,
cloud signing keys) encrypted at rest, and serves them through two APIs:
the Scale GenAI Platform v5 credentials API (/v5/credentials, x-api-key) and
the Fortanix DSM integration-credentials API (/sys/v1, /crypto/v1).

Start a vault on the embedded SQLite store:   credvault serve
Only serve, restore and load (which bootstraps a vault as serve does) create a
database: run the other commands where serve ran (they find the vault in
./credvault-data) or give them the same --data-dir or --database-url.
The client commands (credential, run, export, import, login, trust) talk to a
running vault over HTTP instead: start with ` + "`credvault login --url URL`" + `.
A flag whose help names an environment variable ($CREDVAULT_...) can also be
set through it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&o.dataDir, "data-dir", o.env("CREDVAULT_DATA_DIR", "./credvault-data"), "data directory: SQLite database and development master key ($CREDVAULT_DATA_DIR)")
	pf.StringVar(&o.databaseURL, "database-url", o.env("CREDVAULT_DATABASE_URL", ""), "postgres://… to use PostgreSQL, or a SQLite file path; default <data-dir>/credvault.db ($CREDVAULT_DATABASE_URL)")
	pf.StringVar(&o.masterKeyFile, "master-key-file", o.env("CREDVAULT_MASTER_KEY_FILE", ""), "file holding the master key as a Tink JSON keyset ($CREDVAULT_MASTER_KEY_FILE); $CREDVAULT_MASTER_KEY (the keyset itself, JSON or base64) takes precedence; with neither, <data-dir>/master-key.json is generated for development")
	pf.StringVar(&o.masterKeyURI, "master-key-uri", o.env("CREDVAULT_MASTER_KEY_URI", ""), "root key in an HSM, e.g. pkcs11:token=T;object=K?module-path=LIB&pin-source=file:PIN; the data keyset is then stored in the database encrypted under it and no key file is used ($CREDVAULT_MASTER_KEY_URI)")
	pf.IntVar(&o.maxPayload, "max-payload-bytes", o.envInt("CREDVAULT_MAX_PAYLOAD_BYTES", 64<<10), "largest credential payload accepted ($CREDVAULT_MAX_PAYLOAD_BYTES)")
	pf.StringVar(&o.logLevel, "log-level", o.env("CREDVAULT_LOG_LEVEL", "info"), "log level: debug, info, warn, error ($CREDVAULT_LOG_LEVEL)")

	root.AddCommand(newServeCmd(o, stdout, stderr))
	root.AddCommand(newAccountCmd(o, stdout, stderr))
	root.AddCommand(newPrincipalCmd(o, stdout, stderr))
	root.AddCommand(newAPIKeyCmd(o, stdout, stderr))
	root.AddCommand(newLoadCmd(o, stdout, stderr))
	root.AddCommand(newBackupCmd(o, stdout))
	root.AddCommand(newKeygenCmd(o, stdout, stderr))
	root.AddCommand(newAuditCmd(o, stdout))
	root.AddCommand(newRekeyCmd(o, stdout))
	root.AddCommand(newRestoreCmd(o, stdout))
	addClientCommands(root, o, stdout, stderr) // credential, run, export, import, login (remote.go)
	return root
}

func (o *options) logger(w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
