package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/credvault/credvault/internal/console"
	"github.com/credvault/credvault/internal/store/sqlstore"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// findChromium looks Chromium up and says whether the browser tests are
// required: under CI=true or CREDVAULT_REQUIRE_CHROMIUM=1 (set by
// scripts/test.sh) a missing browser is a failure, else a skip.
func findChromium(lookPath func(string) (string, error), getenv func(string) string) (path string, required bool) {
	required = getenv("CI") == "true" || getenv("CREDVAULT_REQUIRE_CHROMIUM") == "1"
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := lookPath(name); err == nil {
			return p, required
		}
	}
	return "", required
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	path, required := findChromium(exec.LookPath, os.Getenv)
	switch {
	case path != "":
		return path
	case required:
		t.Fatal("chromium not found, and CI=true or CREDVAULT_REQUIRE_CHROMIUM=1 requires the browser tests: apt-get install -y chromium")
	}
	t.Skip("chromium not found (apt-get install -y chromium); set CREDVAULT_REQUIRE_CHROMIUM=1 to make this a failure")
	return ""
}

func TestFindChromium(t *testing.T) {
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name     string
		getenv   func(string) string
		required bool
	}{
		{"ci", env("CI", "true"), true},
		{"test.sh", env("CREDVAULT_REQUIRE_CHROMIUM", "1"), true},
		{"local", env(), false},
	} {
		if p, req := findChromium(missing, tc.getenv); p != "" || req != tc.required {
			t.Errorf("%s: path %q required %v, want required %v", tc.name, p, req, tc.required)
		}
	}
	found := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	if p, _ := findChromium(found, env()); p != "/usr/bin/chromium" {
		t.Errorf("found %q", p)
	}
}

// startBrowser starts headless Chromium with a fresh profile and returns a
// tab context bounded by timeout, and a function that returns the console
// messages so far (including CSP violation reports).
func startBrowser(t *testing.T, timeout time.Duration) (context.Context, func() []chromedp.ConsoleMessage) {
	t.Helper()
	path := chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	actx, acancel := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	var (
		mu   sync.Mutex
		msgs []chromedp.ConsoleMessage
	)
	stream := chromedp.Console(bctx)
	go func() {
		for m, err := range stream {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()
	return bctx, func() []chromedp.ConsoleMessage {
		mu.Lock()
		defer mu.Unlock()
		return append([]chromedp.ConsoleMessage(nil), msgs...)
	}
}

// cspViolations returns the messages that report a Content-Security-Policy
// violation.
func cspViolations(msgs []chromedp.ConsoleMessage) []string {
	var out []string
	for _, m := range msgs {
		if strings.Contains(m.Text, "Content Security Policy") || strings.Contains(m.Text, "Refused to") {
			out = append(out, m.String())
		}
	}
	return out
}

// artifactDir is where screenshots go: $CREDVAULT_ARTIFACTS/console if set,
// else a temporary directory. CREDVAULT_UPDATE_SCREENSHOTS=1 also writes
// them to docs/console/.
func artifactDir(t *testing.T) string {
	dir := t.TempDir()
	if a := os.Getenv("CREDVAULT_ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "console")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CREDVAULT_UPDATE_SCREENSHOTS") == "1" {
		if err := os.WriteFile(filepath.Join("..", "..", "docs", "console", name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// waitText polls until the element matching the CSS selector sel contains
// want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		expr := fmt.Sprintf(`(() => { const e = document.querySelector(%q); return !!e && e.textContent.includes(%q); })()`, sel, want)
		// Polls in the page; a navigation in between ends a poll with an
		// error, so poll again until the deadline.
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(2*time.Second)))
			if err == nil {
				return nil
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("waiting for %q in %s: %w", want, sel, err)
			}
		}
	})
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, steps...); err != nil {
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
		t.Fatalf("%s: %v\nat %s:\n%.1500s", what, err, loc, body)
	}
}

func present(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q) !== null`, sel)))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// TestBrowser_CSPViolationsAreSeen proves the detector the console test
// relies on: a page with inline script under the console's CSP produces a
// violation report that cspViolations finds.
func TestBrowser_CSPViolationsAreSeen(t *testing.T) {
	ctx, messages := startBrowser(t, 40*time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", console.CSP)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<!DOCTYPE html><title>x</title><p id="p">x</p><script>document.title = "ran"</script>`)
	}))
	defer srv.Close()
	do(t, ctx, "open", chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.ID("p")))
	deadline := time.Now().Add(10 * time.Second)
	for len(cspViolations(messages())) == 0 && time.Now().Before(deadline) {
		_, _ = chromedp.Run(ctx, chromedp.Evaluate[bool](`true`)) // a round trip, not a sleep
	}
	if len(cspViolations(messages())) == 0 {
		t.Fatalf("no CSP violation reported for an inline script; messages: %v", messages())
	}
	if title, _ := chromedp.Run(ctx, chromedp.Title()); title == "ran" {
		t.Fatal("the inline script ran despite the CSP")
	}
}

// TestBrowser_Console drives the console in headless Chromium: sign in,
// create a credential, find it by search, reveal it and see the reveal in
// its audit records, replace its payload, delete it, sign out; a reader has
// no reveal button; no page causes a CSP violation. It saves a screenshot
// of each main page. One engine (SQLite): the HTTP tests cover both.
func TestBrowser_Console(t *testing.T) {
	ctx, messages := startBrowser(t, 100*time.Second)
	v := vaulttest.New(t, sqlstore.SQLite)
	dir := artifactDir(t)
	u := v.URL

	// Some DSM objects so that the DSM page has content.
	admin := &vault.Identity{Principal: vault.Principal{ID: v.PrincipalID, Kind: vault.PrincipalUser, Name: "admin"}, AccountID: v.AccountID, Role: vault.RoleAdmin}
	if _, err := v.App.Service.CreateGroup(context.Background(), admin, vault.GroupInput{Name: ptr("payments")}); err != nil {
		t.Fatal(err)
	}
	reader := v.NewMember(t, v.AccountID, "auditor", vault.RoleReader)

	do(t, ctx, "open login", chromedp.Navigate(u+"/ui/"), chromedp.WaitVisible(chromedp.ID("api_key")))
	screenshot(t, ctx, dir, "login")
	do(t, ctx, "sign in",
		chromedp.SendKeys(chromedp.ID("api_key"), v.AdminKey),
		chromedp.Click(chromedp.ID("key-sign-in")),
		waitText("#empty", "No credentials in this account yet"),
	)
	if !present(t, ctx, "#new-credential") {
		t.Fatal("an admin has no create button")
	}
	do(t, ctx, "create form",
		chromedp.Navigate(u+"/ui/credentials/new"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "prod/db-password"),
		chromedp.SetValue(chromedp.ID("type"), "password"),
		chromedp.SendKeys(chromedp.ID("description"), "Primary database, read-write"),
		chromedp.SendKeys(chromedp.ID("metadata"), `{"team": "payments", "rotate": "quarterly"}`),
		chromedp.SendKeys(chromedp.ID("payload"), "hunter2-canary"),
	)
	screenshot(t, ctx, dir, "create")
	do(t, ctx, "create", chromedp.Click(chromedp.ID("create")), waitText("#cred-title", "prod/db-password"))
	for _, name := range []string{"staging/db-password", "ci/deploy-token", "slack/webhook"} {
		if r := v.SGP(t, v.AdminKey, "", "POST", "/v5/credentials", map[string]any{"name": name, "type": "secret", "payload": "x", "description": "seeded"}); r.Status != http.StatusOK {
			t.Fatalf("seed %s: %d", name, r.Status)
		}
	}

	do(t, ctx, "search",
		chromedp.Navigate(u+"/ui/credentials"),
		chromedp.WaitVisible(chromedp.ID("q")),
		chromedp.SendKeys(chromedp.ID("q"), "prod/db\n"),
		waitText("main", "matching"),
	)
	found, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("a.cred-name")))
	if err != nil || found != "prod/db-password" {
		t.Fatalf("search found %q (%v)", found, err)
	}
	do(t, ctx, "list", chromedp.Navigate(u+"/ui/credentials"), waitText("main", "staging/db-password"))
	screenshot(t, ctx, dir, "credentials")

	do(t, ctx, "open detail",
		chromedp.Navigate(u+"/ui/credentials?q=prod%2Fdb-password"),
		chromedp.Click(chromedp.CSS("a.cred-name")),
		waitText("#cred-title", "prod/db-password"),
	)
	detailURL, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, dir, "credential")
	do(t, ctx, "reveal", chromedp.Click(chromedp.ID("reveal")), waitText("#secret-value", "hunter2-canary"))
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); strings.Contains(loc, "hunter2") || loc != detailURL {
		t.Fatalf("the reveal changed the URL: %s", loc)
	}
	screenshot(t, ctx, dir, "reveal")
	do(t, ctx, "hide", chromedp.Click(chromedp.ID("hide")), chromedp.WaitNotVisible(chromedp.ID("secret")))
	if txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("secret-value").textContent`)); txt != "" {
		t.Fatalf("hidden payload still in the page: %q", txt)
	}
	do(t, ctx, "audit shows the reveal", chromedp.Reload(), waitText("#cred-audit", "credential.decrypt"))

	do(t, ctx, "replace payload",
		chromedp.SendKeys(chromedp.ID("new-payload"), "hunter3-rotated"),
		chromedp.Click(chromedp.ID("replace")),
		waitText(".notice", "payload was replaced"),
		waitText("#cred-version", "2"),
		chromedp.Click(chromedp.ID("reveal")),
		waitText("#secret-value", "hunter3-rotated"),
	)

	// The payload hides itself after the delay the page sets (30 s); the
	// test shortens the attribute to 1 s rather than wait 30 s.
	if v, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("reveal"), "data-hide-after")); err != nil || v.Value != "30" {
		t.Fatalf("data-hide-after = %+v (%v), want 30", v, err)
	}
	do(t, ctx, "auto-hide",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("reveal")),
		chromedp.SetAttributeValue(chromedp.ID("reveal"), "data-hide-after", "1"),
		chromedp.Click(chromedp.ID("reveal")),
		waitText("#secret-value", "hunter3-rotated"),
		chromedp.WaitNotVisible(chromedp.ID("secret")),
	)
	if txt, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("secret-value").textContent`)); txt != "" {
		t.Fatalf("auto-hidden payload still in the page: %q", txt)
	}

	do(t, ctx, "audit page", chromedp.Navigate(u+"/ui/audit"), waitText("#verify", "Verified"), waitText("#audit-table", "credential.decrypt"))
	screenshot(t, ctx, dir, "audit")
	do(t, ctx, "audit filter", chromedp.Navigate(u+"/ui/audit?action=credential.update"), waitText("#audit-table", "credential.update"))
	if txt, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("audit-table"))); strings.Contains(txt, "credential.decrypt") {
		t.Fatal("the action filter let other actions through")
	}
	do(t, ctx, "access page", chromedp.Navigate(u+"/ui/access"), waitText("main", "auditor"))
	screenshot(t, ctx, dir, "access")
	do(t, ctx, "dsm page", chromedp.Navigate(u+"/ui/dsm"), waitText("main", "payments"))
	screenshot(t, ctx, dir, "dsm")

	do(t, ctx, "delete",
		chromedp.Navigate(detailURL),
		chromedp.WaitVisible(chromedp.ID("delete")),
		chromedp.Click(chromedp.ID("delete")),
		waitText("main", "Type the name"),
		chromedp.SendKeys(chromedp.ID("confirm_name"), "prod/db-password"),
		chromedp.Click(chromedp.ID("confirm-delete")),
		waitText(".notice", "deleted"),
	)
	if r := v.SGP(t, v.AdminKey, "", "GET", "/v5/credentials/name/prod%2Fdb-password", nil); r.Status != http.StatusNotFound {
		t.Fatalf("credential still there: %d", r.Status)
	}

	// Phone width.
	do(t, ctx, "phone", chromedp.EmulateViewport(390, 844), chromedp.Navigate(u+"/ui/credentials"), waitText("main", "staging/db-password"))
	screenshot(t, ctx, dir, "credentials-phone")
	do(t, ctx, "laptop", chromedp.EmulateViewport(1280, 900))

	do(t, ctx, "sign out", chromedp.Click(chromedp.ID("sign-out")), waitText("main", "Sign in to credvault"))
	do(t, ctx, "signed out", chromedp.Navigate(u+"/ui/credentials"), chromedp.WaitVisible(chromedp.ID("api_key")))

	// A reader sees the credential but has no reveal button.
	do(t, ctx, "reader sign in",
		chromedp.SendKeys(chromedp.ID("api_key"), reader.Key),
		chromedp.Click(chromedp.ID("key-sign-in")),
		waitText("main", "staging/db-password"),
	)
	if present(t, ctx, "#new-credential") {
		t.Fatal("a reader has a create button")
	}
	do(t, ctx, "reader detail", chromedp.Click(chromedp.CSS("a.cred-name")), waitText("#no-reveal", "metadata only"))
	if present(t, ctx, "#reveal") || present(t, ctx, "#replace") || present(t, ctx, "#delete") {
		t.Fatal("a reader has reveal, replace or delete controls")
	}
	screenshot(t, ctx, dir, "reader")

	if bad := cspViolations(messages()); len(bad) > 0 {
		t.Fatalf("CSP violations: %v", bad)
	}
	for _, m := range messages() {
		if m.IsException() || m.Type == chromedp.ConsoleError {
			t.Errorf("browser console error: %s", m)
		}
	}
	t.Logf("screenshots in %s", dir)
}

func ptr(s string) *string { return &s }
