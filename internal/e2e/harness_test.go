package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/pgtest"
	"github.com/credvault/credvault/internal/vault"
)

// Deadlines. Every wait in this package is bounded by one of these.
const (
	startTimeout   = 30 * time.Second // process start → /readyz 200
	exitTimeout    = 30 * time.Second // signal → process gone
	requestTimeout = 15 * time.Second // one HTTP request
)

// ---------------------------------------------------------------- processes

// server describes how to run one credvault serve process.
type server struct {
	DatabaseURL  string   // postgres://… or a SQLite file path
	DataDir      string   // --data-dir (a temp dir if empty)
	BootstrapKey string   // CREDVAULT_BOOTSTRAP_API_KEY
	Env          []string // extra NAME=value
	Args         []string // extra serve flags
}

// proc is a running (or finished) credvault serve process.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd

	URL string // http://127.0.0.1:port, set once it listens

	stdout, stderr *tailBuffer
	listening      chan string // receives the listen address once

	done    chan struct{} // closed when the process has exited
	waitErr error
}

// newEnv returns the environment for a credvault process: ours minus any
// CREDVAULT_* variable, plus the master key and extra.
func newEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CREDVAULT_") {
			env = append(env, kv)
		}
	}
	env = append(env, "CREDVAULT_MASTER_KEY="+masterKey)
	return append(env, extra...)
}

// launch starts `credvault serve` on 127.0.0.1 with a kernel-chosen port and
// returns without waiting for it; see waitReady. The process is SIGKILLed
// (if still running) when the test ends.
func launch(t testing.TB, name string, s server) *proc {
	t.Helper()
	if s.DataDir == "" {
		s.DataDir = t.TempDir()
	}
	args := []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", s.DataDir, "--database-url", s.DatabaseURL, "--shutdown-timeout", "20s"}
	args = append(args, s.Args...)
	env := newEnv(s.Env...)
	if s.BootstrapKey != "" {
		env = append(env, "CREDVAULT_BOOTSTRAP_API_KEY="+s.BootstrapKey)
	}
	p := &proc{
		t: t, name: name,
		stdout: &tailBuffer{max: 256 << 10}, stderr: &tailBuffer{max: 64 << 10},
		listening: make(chan string, 1),
		done:      make(chan struct{}),
	}
	p.stdout.onLine = func(line []byte) {
		var l struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal(line, &l) == nil && l.Msg == "credvault listening" && l.Addr != "" {
			select {
			case p.listening <- l.Addr:
			default:
			}
		}
	}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Env = env
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s: stderr:\n%s\n%s: stdout (tail):\n%s", name, p.stderr.String(), name, tail(p.stdout.String(), 4000))
		}
	})
	return p
}

// start launches a server and waits until it is ready.
func start(t testing.TB, name string, s server) *proc {
	t.Helper()
	p := launch(t, name, s)
	if err := p.waitReady(startTimeout); err != nil {
		t.Fatalf("%s: %v\nstderr:\n%s\nstdout:\n%s", name, err, p.stderr.String(), tail(p.stdout.String(), 4000))
	}
	return p
}

// waitReady waits until the process listens and /readyz answers 200.
func (p *proc) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	if p.URL == "" {
		select {
		case addr := <-p.listening:
			p.URL = "http://" + addr
		case <-p.done:
			return fmt.Errorf("exited before listening: %v", p.waitErr)
		case <-timer.C:
			return fmt.Errorf("not listening after %s", timeout)
		}
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("/readyz not 200 after %s (last: %v)", timeout, err)
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.waitErr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// kill SIGKILLs the process and waits until it is gone.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(exitTimeout):
		p.t.Errorf("%s: still running %s after SIGKILL", p.name, exitTimeout)
	}
}

// wait waits up to timeout for the process to exit and returns its exit
// code (-1 if it was killed by a signal).
func (p *proc) wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return 0, fmt.Errorf("%s: still running after %s", p.name, timeout)
	}
	return p.cmd.ProcessState.ExitCode(), nil
}

// tailBuffer keeps the last max bytes written to it and calls onLine for
// every complete line.
type tailBuffer struct {
	mu     sync.Mutex
	max    int
	buf    []byte
	line   []byte
	onLine func([]byte)
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > b.max {
		b.buf = append([]byte(nil), b.buf[len(b.buf)-b.max:]...)
	}
	if b.onLine != nil {
		rest := p
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				b.line = append(b.line, rest...)
				break
			}
			b.line = append(b.line, rest[:i]...)
			b.onLine(b.line)
			b.line = b.line[:0]
			rest = rest[i+1:]
		}
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// runCLI runs a one-shot credvault subcommand and returns stdout, stderr
// and the exit code.
func runCLI(t testing.TB, timeout time.Duration, env []string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = newEnv(env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("credvault %s: did not finish within %s\nstderr: %s", strings.Join(args, " "), timeout, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("credvault %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// ---------------------------------------------------------------- databases

// engines lists the engines to run (CREDVAULT_TEST_ENGINES narrows it, as
// for vaulttest).
func engines() []string {
	if e := os.Getenv("CREDVAULT_TEST_ENGINES"); e != "" {
		return strings.Split(e, ",")
	}
	return []string{"sqlite", "postgres"}
}

func wantEngine(t *testing.T, engine string) {
	t.Helper()
	for _, e := range engines() {
		if e == engine {
			return
		}
	}
	t.Skipf("engine %s not selected by CREDVAULT_TEST_ENGINES", engine)
}

// newDatabase returns the URL of a fresh, empty database on engine.
func newDatabase(t *testing.T, engine string) string {
	t.Helper()
	switch engine {
	case "sqlite":
		return filepath.Join(t.TempDir(), "credvault.db")
	case "postgres":
		return pgtest.URL(t)
	}
	t.Fatalf("unknown engine %q", engine)
	return ""
}

// newBootstrapKey returns an admin API key in credvault's format, to hand
// to servers through CREDVAULT_BOOTSTRAP_API_KEY.
func newBootstrapKey() string { return vault.NewAPIKeySecret(vault.NewID()) }

// ---------------------------------------------------------------- client

// client speaks the SGP API to one server.
type client struct {
	base string
	key  string // sent as x-api-key
	auth string // if set, sent as Authorization instead (DSM: "Basic <api key>", "Bearer <token>")
	hc   *http.Client
}

// with returns a copy of c that authenticates with the Authorization
// header value auth.
func (c *client) with(auth string) *client {
	d := *c
	d.auth = auth
	return &d
}

func newClient(base, key string) *client {
	return &client{base: base, key: key, hc: &http.Client{
		Timeout:   requestTimeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true},
	}}
}

// resp is a finished exchange.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	Took   time.Duration
}

func (r *resp) obj() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(r.Body, &m)
	return m
}

func (r *resp) str(field string) string {
	s, _ := r.obj()[field].(string)
	return s
}

// do sends one request. err is set only when no response arrived.
func (c *client) do(ctx context.Context, method, path string, body any) (*resp, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	} else {
		req.Header.Set("x-api-key", c.key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	hr, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	b, err := io.ReadAll(hr.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the response: %w", err)
	}
	return &resp{Status: hr.StatusCode, Header: hr.Header, Body: b, Took: time.Since(t0)}, nil
}

// must sends a request that must get a response with status want.
func (c *client) must(t testing.TB, want int, method, path string, body any) *resp {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	r, err := c.do(ctx, method, path, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if r.Status != want {
		t.Fatalf("%s %s on %s: status %d, want %d: %s", method, path, c.base, r.Status, want, r.Body)
	}
	return r
}

// stopAndWait closes stop, unless it is closed already, and waits for the
// workers in wg to return.
func stopAndWait(stop chan struct{}, wg *sync.WaitGroup) {
	select {
	case <-stop:
	default:
		close(stop)
	}
	wg.Wait()
}

// createBefore creates n credentials named before-00, before-01, … with
// random payloads, and returns the payloads by id and the ids in order.
func (c *client) createBefore(t testing.TB, n int) (payloads map[string]string, ids []string) {
	t.Helper()
	payloads = map[string]string{}
	for i := range n {
		payload := randomText("before-")
		id := c.create(t, fmt.Sprintf("before-%02d", i), payload)
		payloads[id] = payload
		ids = append(ids, id)
	}
	return payloads, ids
}

func (c *client) create(t testing.TB, name, payload string) string {
	t.Helper()
	r := c.must(t, 200, "POST", "/v5/credentials", map[string]any{"type": "key", "name": name, "payload": payload})
	return r.str("id")
}

// secret decrypts credential id and returns its payload.
func (c *client) secret(t testing.TB, id string) string {
	t.Helper()
	return c.must(t, 200, "POST", "/v5/credentials/"+url.PathEscape(id)+"/secret", nil).str("result")
}

// listAll pages through every credential (name → id).
func (c *client) listAll(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	after := ""
	for {
		q := url.Values{"limit": {"1000"}, "sort_by": {"id"}}
		if after != "" {
			q.Set("starting_after", after)
		}
		r := c.must(t, 200, "GET", "/v5/credentials?"+q.Encode(), nil)
		var page struct {
			Items []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"items"`
			HasMore bool `json:"has_more"`
		}
		if err := json.Unmarshal(r.Body, &page); err != nil {
			t.Fatalf("list: %v: %s", err, r.Body)
		}
		for _, it := range page.Items {
			if _, dup := out[it.Name]; dup {
				t.Fatalf("list: name %q appears twice", it.Name)
			}
			out[it.Name] = it.ID
		}
		if !page.HasMore || len(page.Items) == 0 {
			return out
		}
		after = page.Items[len(page.Items)-1].ID
	}
}

// randomText returns a unique, recognisable payload.
func randomText(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}
