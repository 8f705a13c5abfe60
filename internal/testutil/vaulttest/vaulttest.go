// Package vaulttest runs a real credvault for tests: the same composition
// as the binary (internal/app) on a real database (a SQLite file in a temp
// dir, or a fresh PostgreSQL database), served over real loopback HTTP.
//
// Every response that passes through Vault.Do is validated against the API
// contract documents (SGP for /v5, DSM for /sys and /crypto), so a suite that
// uses Do proves its responses match the contract as a side effect.
//
// Each runs a test once per engine:
//
//	func TestX(t *testing.T) {
//		vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) { … })
//	}
//
// and EachEngine once per engine for a test that starts its vault itself
// (with a configuration of its own, or several vaults).
//
// A package whose tests use PostgreSQL must stop the shared cluster at the
// end: func TestMain(m *testing.M) { pgtest.Main(m) }.
package vaulttest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/clock"
	"github.com/credvault/credvault/internal/testutil/dbtest"
	"github.com/credvault/credvault/internal/testutil/oapi"
	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/vault"
)

// Engines lists the engines Each runs. CREDVAULT_TEST_ENGINES (comma
// separated, e.g. "sqlite") narrows it for quick local runs; the test
// command runs both.
func Engines() []string {
	if e := os.Getenv("CREDVAULT_TEST_ENGINES"); e != "" {
		return strings.Split(e, ",")
	}
	return []string{sqlstore.SQLite, sqlstore.Postgres}
}

// Each runs fn as a subtest per engine, each with a fresh vault built with
// opts.
func Each(t *testing.T, fn func(t *testing.T, v *Vault), opts ...Option) {
	t.Helper()
	EachEngine(t, func(t *testing.T, engine string) { fn(t, New(t, engine, opts...)) })
}

// EachEngine runs fn as a subtest per engine (Engines), for tests that
// build their vault, or something else on the engine, themselves.
func EachEngine(t *testing.T, fn func(t *testing.T, engine string)) {
	t.Helper()
	for _, engine := range Engines() {
		t.Run(engine, func(t *testing.T) { fn(t, engine) })
	}
}

// Vault is a running credvault under test.
type Vault struct {
	URL         string
	Engine      string
	DatabaseURL string // the SQLite path or the postgres URL
	DataDir     string
	App         *app.App
	Config      app.Config
	// Clock is the vault's clock (app.Config.Clock): the real time until a
	// test moves it, which it does instead of sleeping.
	Clock *clock.Clock

	// AdminKey is the bootstrap admin's API key in the default account.
	AdminKey    string
	AccountID   string
	PrincipalID string

	logs      *SyncBuffer
	server    *httptest.Server
	client    *http.Client
	closeOnce *sync.Once
	// NoValidate disables contract validation in Do (for tests that send
	// deliberately broken requests to paths outside the contract).
	NoValidate bool
}

// Option adjusts the vault's configuration before it starts.
type Option func(*app.Config)

// New starts a vault on engine ("sqlite" or "postgres") and bootstraps it.
func New(t testing.TB, engine string, opts ...Option) *Vault {
	t.Helper()
	dir := t.TempDir()
	var dbURL string
	switch engine {
	case sqlstore.SQLite:
		dbURL = filepath.Join(dir, "credvault.db")
	case sqlstore.Postgres:
		dbURL = pgtest.URL(t)
	default:
		t.Fatalf("vaulttest: unknown engine %q", engine)
	}
	logs := &SyncBuffer{}
	clk := &clock.Clock{}
	cfg := app.Config{
		DataDir:     dir,
		DatabaseURL: dbURL,
		Logger:      slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Clock:       clk.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("vaulttest: open: %v", err)
	}
	boot, err := a.Service.Bootstrap(ctx, "")
	if err != nil || boot == nil {
		a.Close()
		t.Fatalf("vaulttest: bootstrap: %v (result %v)", err, boot)
	}
	srv := httptest.NewServer(a.Handler)
	v := &Vault{
		URL: srv.URL, Engine: engine, DatabaseURL: dbURL, DataDir: dir, App: a, Config: cfg, Clock: clk,
		AdminKey: boot.APIKey, AccountID: boot.Account.ID, PrincipalID: boot.Principal.ID,
		logs: logs, server: srv, client: srv.Client(), closeOnce: new(sync.Once),
	}
	t.Cleanup(v.Close)
	return v
}

// Replica starts a second server on v's database and master key file, as
// another replica of the same vault would run (on SQLite: a second
// process on the same file), with opts applied to v's configuration.
// Close stops it; the test's end does too.
func (v *Vault) Replica(t testing.TB, opts ...Option) *Vault {
	t.Helper()
	logs := &SyncBuffer{}
	cfg := v.Config
	for _, o := range opts {
		o(&cfg)
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a, err := app.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("vaulttest: open replica: %v", err)
	}
	srv := httptest.NewServer(a.Handler)
	r := *v
	r.URL, r.App, r.Config, r.logs, r.server, r.client = srv.URL, a, cfg, logs, srv, srv.Client()
	r.closeOnce = new(sync.Once)
	t.Cleanup(r.Close)
	return &r
}

// Close stops the vault as a shutdown does: the HTTP server first, then
// the vault (App.Close). The test's end calls it too.
func (v *Vault) Close() {
	v.closeOnce.Do(func() {
		v.server.Close()
		v.App.Close()
	})
}

// Logs returns everything the server logged so far.
func (v *Vault) Logs() string { return v.logs.String() }

// Client returns an HTTP client for the vault.
func (v *Vault) Client() *http.Client { return v.client }

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r *Response) JSON(t testing.TB) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		t.Fatalf("response is not JSON (%v): %s", err, r.Body)
	}
	return v
}

// Object decodes the body as a JSON object.
func (r *Response) Object(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.JSON(t).(map[string]any)
	if !ok {
		t.Fatalf("response is not a JSON object: %s", r.Body)
	}
	return m
}

// Decode decodes the body into out.
func (r *Response) Decode(t testing.TB, out any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, out); err != nil {
		t.Fatalf("decode response (%v): %s", err, r.Body)
	}
}

// Do sends a request. body may be nil, a string or []byte (sent as is), or
// any other value (sent as JSON). headers are name/value pairs. The
// response is validated against the contract document of its API.
func (v *Vault) Do(t testing.TB, method, path string, body any, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, v.URL+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if !v.NoValidate {
		p := req.URL.Path
		switch {
		case strings.HasPrefix(p, "/v5/"):
			oapi.SGP(t).Response(t, method, req.URL.EscapedPath(), r.Status, r.Header, r.Body)
		case strings.HasPrefix(p, "/sys/") || strings.HasPrefix(p, "/crypto/"):
			oapi.DSM(t).Response(t, method, req.URL.EscapedPath(), r.Status, r.Header, r.Body)
		case strings.HasPrefix(p, "/admin/v1/trust-policies"): // issue 17's own contract
			oapi.Trust(t).Response(t, method, req.URL.EscapedPath(), r.Status, r.Header, r.Body)
		case strings.HasPrefix(p, "/admin/"):
			oapi.Admin(t).Response(t, method, req.URL.EscapedPath(), r.Status, r.Header, r.Body)
		}
	}
	return r
}

// SGP sends an SGP request authenticated with key (and, if account is not
// empty, x-selected-account-id).
func (v *Vault) SGP(t testing.TB, key, account, method, path string, body any) *Response {
	t.Helper()
	h := []string{"x-api-key", key}
	if account != "" {
		h = append(h, "x-selected-account-id", account)
	}
	return v.Do(t, method, path, body, h...)
}

// Tenant is an account with a principal and an API key in it.
type Tenant struct {
	AccountID   string
	PrincipalID string
	Key         string
}

// NewTenant creates a new account with a principal of the given role and an
// API key for it, directly through the core (as the CLI does).
func (v *Vault) NewTenant(t testing.TB, name string, role vault.Role) Tenant {
	t.Helper()
	ctx := context.Background()
	a, err := v.App.Service.CreateAccount(ctx, name, "")
	if err != nil {
		t.Fatalf("create account: %v", err)
	}
	return v.NewMember(t, a.ID, name+"-"+string(role), role)
}

// NewMember creates a principal with role in an existing account and an API
// key for it.
func (v *Vault) NewMember(t testing.TB, accountID, name string, role vault.Role) Tenant {
	t.Helper()
	ctx := context.Background()
	p, err := v.App.Service.CreatePrincipal(ctx, vault.PrincipalServiceAccount, name, accountID, role)
	if err != nil {
		t.Fatalf("create principal: %v", err)
	}
	_, key, err := v.App.Service.CreateAPIKey(ctx, p.ID, name, 0)
	if err != nil {
		t.Fatalf("create key: %v", err)
	}
	return Tenant{AccountID: accountID, PrincipalID: p.ID, Key: key}
}

// SyncBuffer is a goroutine-safe buffer: the vault's log sink, and a sink
// for whatever else a test collects while something writes to it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NewDSMApp creates a DSM app of role whose groups are groups (each with
// SIGN, VERIFY, EXPORT and MANAGE), as the caller whose Authorization
// header is auth, and returns the app's API key (as DSM clients build it:
// base64(app_id:secret)) and id.
func (v *Vault) NewDSMApp(t testing.TB, auth, name, role string, groups ...string) (key, id string) {
	t.Helper()
	gs := map[string][]string{}
	for _, g := range groups {
		gs[g] = []string{"SIGN", "VERIFY", "EXPORT", "MANAGE"}
	}
	r := v.Do(t, "POST", "/sys/v1/apps", map[string]any{"name": name, "role": role, "add_groups": gs}, "Authorization", auth)
	if r.Status != http.StatusOK {
		t.Fatalf("vaulttest: create app %s: %d %s", name, r.Status, r.Body)
	}
	id, _ = r.Object(t)["app_id"].(string)
	r = v.Do(t, "GET", "/sys/v1/apps/"+id+"/credential", nil, "Authorization", auth)
	if r.Status != http.StatusOK {
		t.Fatalf("vaulttest: app credential %s: %d %s", name, r.Status, r.Body)
	}
	secret, _ := r.Object(t)["credential"].(map[string]any)["secret"].(string)
	return vault.AppAPIKey(id, secret), id
}

// OpenRaw opens a raw database/sql handle on the database at dbURL (of
// engine), closed when the test ends: for tests that inspect or break the
// database behind a running vault's back.
func OpenRaw(t testing.TB, engine, dbURL string) *sql.DB {
	t.Helper()
	// The vault's own background work (checkpoints, the sweeper) may hold
	// SQLite's write lock for a moment: wait for it rather than fail.
	driver, dsn := "sqlite", "file:"+dbURL+"?_pragma=busy_timeout(10000)"
	if engine == sqlstore.Postgres {
		driver, dsn = "pgx", dbURL
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return raw
}

// RawDB is OpenRaw on the vault's own database.
func (v *Vault) RawDB(t testing.TB) *sql.DB { return OpenRaw(t, v.Engine, v.DatabaseURL) }

// FailInserts installs on raw (a database of engine) a trigger that makes
// every insert into table fail inside the database, and returns the
// function that removes it.
func FailInserts(t testing.TB, raw *sql.DB, engine, table string) (restore func()) {
	t.Helper()
	name := "refuse_" + table
	install := []string{`CREATE TRIGGER ` + name + ` BEFORE INSERT ON ` + table + ` BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`}
	remove := []string{`DROP TRIGGER ` + name}
	if engine == sqlstore.Postgres {
		install = []string{
			`CREATE FUNCTION ` + name + `() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$`,
			`CREATE TRIGGER ` + name + ` BEFORE INSERT ON ` + table + ` FOR EACH ROW EXECUTE FUNCTION ` + name + `()`,
		}
		remove = []string{`DROP TRIGGER ` + name + ` ON ` + table, `DROP FUNCTION ` + name + `()`}
	}
	for _, q := range install {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("vaulttest: install the failing trigger on %s: %v", table, err)
		}
	}
	return func() {
		t.Helper()
		for _, q := range remove {
			if _, err := raw.Exec(q); err != nil {
				t.Fatalf("vaulttest: remove the failing trigger on %s: %v", table, err)
			}
		}
	}
}

// DatabaseBytes returns everything the vault stored: for SQLite the database file,
// its -wal and -shm; for PostgreSQL every row of every table of the schema
// as text (bytea as hex) plus the raw bytea columns.
func (v *Vault) DatabaseBytes(t testing.TB) []byte {
	t.Helper()
	var out bytes.Buffer
	switch v.Engine {
	case sqlstore.SQLite:
		for _, suffix := range []string{"", "-wal", "-shm"} {
			b, err := os.ReadFile(v.DatabaseURL + suffix)
			if errors.Is(err, fs.ErrNotExist) && suffix != "" {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			out.Write(b)
		}
	case sqlstore.Postgres:
		db, err := sql.Open("pgx", v.DatabaseURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		ctx := context.Background()
		tables := dbtest.Column[string](ctx, t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
		if len(tables) < 10 {
			t.Fatalf("only tables %v", tables)
		}
		for _, table := range tables {
			for _, row := range dbtest.Column[string](ctx, t, db, fmt.Sprintf(`SELECT t::text FROM %q t`, table)) {
				out.WriteString(row + "\n")
			}
		}
		// bytea columns raw as well.
		rows, err := db.QueryContext(ctx, `SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() AND data_type = 'bytea'`)
		if err != nil {
			t.Fatal(err)
		}
		var cols [][2]string
		for rows.Next() {
			var tn, cn string
			if err := rows.Scan(&tn, &cn); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, [2]string{tn, cn})
		}
		rows.Close()
		for _, c := range cols {
			rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT %q FROM %q WHERE %q IS NOT NULL`, c[1], c[0], c[1]))
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var b []byte
				if err := rows.Scan(&b); err != nil {
					t.Fatal(err)
				}
				out.Write(b)
				out.WriteByte('\n')
			}
			rows.Close()
		}
	default:
		t.Fatalf("unknown engine %q", v.Engine)
	}
	return out.Bytes()
}

// OCIDetails is the credential_details of a DSM Oci credential (an API key
// of a fixed test user and tenancy) signing with signingKey (a kid).
func OCIDetails(signingKey any) map[string]any {
	return map[string]any{"$type": "Oci", "body": map[string]any{"$type": "ApiKey", "user_ocid": "ocid1.user.oc1..u", "tenant_ocid": "ocid1.tenancy.oc1..t", "signing_key": signingKey}}
}

// B64 is standard base64, as DSM sends binary fields.
func B64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// UnB64 decodes a DSM binary field (a JSON string in standard base64) and
// fails the test if it is not one.
func UnB64(t testing.TB, v any) []byte {
	t.Helper()
	s, _ := v.(string)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("not base64: %q", s)
	}
	return b
}
