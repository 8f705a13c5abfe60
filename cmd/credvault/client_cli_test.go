package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
	"github.com/credvault/credvault/internal/vault"
)

// clientEnv is the environment of a client command talking to v with key,
// with a config directory of its own.
func clientEnv(t *testing.T, v *vaulttest.Vault, key string) map[string]string {
	return map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_API_KEY": key, "CREDVAULT_CONFIG_DIR": t.TempDir()}
}

// cliIn runs one command in-process with stdin, as main does.
func cliIn(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	root := newRootCmd(func(k string) string { return env[k] }, &out, &errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	err = root.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// wantErr fails unless err has exit status code and a message containing
// every part.
func wantErr(t *testing.T, err error, code int, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want exit status %d", code)
	}
	if got := exitCode(err); got != code {
		t.Errorf("exit status %d for %q; want %d", got, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}
}

// awkward are payloads that must survive every path byte for byte.
var awkward = map[string]string{
	"quotes":     `it's "quoted" and 'single'`,
	"dollar":     `$HOME ${PATH} $(id) ` + "`id`",
	"backslash":  `C:\path\to\n\x00 \\ \"`,
	"equals":     `a=b==c=`,
	"newlines":   "line one\nline two\r\nline three\n",
	"blank-ends": "  padded\t ",
	"hash":       "value # not a comment",
	"unicode":    "pässwörd 🔑 \u200d",
	"json.sa":    `{"type":"service_account","key":"-----BEGIN\nKEY-----\n"}`,
}

// TestCredentialCommands: create, list, get, reveal, update and delete
// against a real server on both engines; payloads come from stdin or a file
// and are printed byte for byte; errors are one line with what to do.
func TestCredentialCommands(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		env := clientEnv(t, v, v.AdminKey)
		payload := awkward["newlines"] + awkward["dollar"]
		id, errOut, err := cliIn(t, env, payload, "credential", "create", "openai-prod", "--description", "OpenAI", "--metadata", "team=ml", "--metadata", "tier=1")
		if err != nil {
			t.Fatal(err)
		}
		id = strings.TrimSuffix(id, "\n")
		if len(id) != 36 || !strings.Contains(errOut, "created credential openai-prod") {
			t.Fatalf("stdout %q stderr %q; want the id alone and a summary", id, errOut)
		}
		file := filepath.Join(t.TempDir(), "sa.json")
		os.WriteFile(file, []byte(awkward["json.sa"]), 0o600)
		if _, _, err := cliIn(t, env, "", "credential", "create", "gcp/sa", "--type", "json", "--payload-file", file); err != nil {
			t.Fatal(err)
		}

		// Refusals.
		_, _, err = cliIn(t, env, "x", "credential", "create", "openai-prod")
		wantErr(t, err, 1, `"openai-prod" already exists`, "credential update")
		_, _, err = cliIn(t, env, "", "credential", "create", "empty")
		wantErr(t, err, 2, "empty payload")
		_, _, err = cliIn(t, env, "", "credential", "create", "argv", "--payload", "sk-on-the-command-line")
		wantErr(t, err, 2, "unknown flag: --payload")
		_, _, err = cliIn(t, env, "x", "credential", "create", "bad-json", "--type", "json")
		wantErr(t, err, 1, "422")
		_, _, err = cliIn(t, env, "x", "credential", "create", "t", "--type", "yaml")
		wantErr(t, err, 2, "--type must be key or json")

		// list
		out, _, err := cliIn(t, env, "", "credential", "list")
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.HasPrefix(lines[1], "gcp/sa") || !strings.Contains(lines[2], id) {
			t.Fatalf("list table:\n%s", out)
		}
		out, _, err = cliIn(t, env, "", "credential", "list", "--name", "gcp/sa", "-o", "json")
		var listed []map[string]any
		if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 1 || listed[0]["type"] != "json" {
			t.Fatalf("list -o json: %v\n%s", err, out)
		}

		// get by name and by id
		out, _, err = cliIn(t, env, "", "credential", "get", "openai-prod")
		if err != nil || !strings.Contains(out, id) || !strings.Contains(out, `{"team":"ml","tier":"1"}`) || !strings.Contains(out, "OpenAI") {
			t.Fatalf("get: %v\n%s", err, out)
		}
		out, _, err = cliIn(t, env, "", "credential", "get", id, "-o", "json")
		var got map[string]any
		if err != nil || json.Unmarshal([]byte(out), &got) != nil || got["name"] != "openai-prod" {
			t.Fatalf("get -o json: %v\n%s", err, out)
		}
		if strings.Contains(out, "line one") {
			t.Fatal("get shows the payload")
		}

		// reveal: byte for byte, no newline added off a terminal
		for _, ref := range []string{"openai-prod", id} {
			out, _, err = cliIn(t, env, "", "credential", "reveal", ref)
			if err != nil || out != payload {
				t.Fatalf("reveal %s = %q, %v; want %q", ref, out, err, payload)
			}
		}

		// update
		if _, _, err := cliIn(t, env, "rotated\n", "credential", "update", "openai-prod", "--payload-stdin", "--description", "rotated"); err != nil {
			t.Fatal(err)
		}
		if out, _, _ = cliIn(t, env, "", "credential", "reveal", "openai-prod"); out != "rotated\n" {
			t.Fatalf("after update reveal = %q", out)
		}
		os.WriteFile(file, []byte(`{"v":2}`), 0o600)
		if _, _, err := cliIn(t, env, "", "credential", "update", "gcp/sa", "--payload-file", file); err != nil {
			t.Fatal(err)
		}
		if out, _, _ = cliIn(t, env, "", "credential", "reveal", "gcp/sa"); out != `{"v":2}` {
			t.Fatalf("after update reveal = %q", out)
		}
		_, _, err = cliIn(t, env, "", "credential", "update", "gcp/sa")
		wantErr(t, err, 2, "nothing to change")
		_, _, err = cliIn(t, env, "", "credential", "update", "gcp/sa", "--payload-stdin", "--payload-file", file)
		wantErr(t, err, 2, "exclude each other")

		// delete
		if out, _, err := cliIn(t, env, "", "credential", "delete", "gcp/sa"); err != nil || len(strings.TrimSpace(out)) != 36 {
			t.Fatalf("delete: %q, %v", out, err)
		}
		_, _, err = cliIn(t, env, "", "credential", "get", "gcp/sa")
		wantErr(t, err, 1, `credential "gcp/sa" not found`, "credential list")
		_, _, err = cliIn(t, env, "", "credential", "reveal", "no-such")
		wantErr(t, err, 1, `"no-such" not found`)
		_, _, err = cliIn(t, env, "", "credential", "delete", "0190c0de-0000-7000-8000-000000000000")
		wantErr(t, err, 1, "not found")

		// Errors for people: wrong key, missing permission, unreachable server, no settings.
		_, _, err = cliIn(t, clientEnv(t, v, "d3Jvbmc6a2V5"), "", "credential", "list")
		wantErr(t, err, 1, "refused the API key", "credvault login")
		reader := v.NewMember(t, v.AccountID, "reader", vault.RoleReader)
		_, _, err = cliIn(t, clientEnv(t, v, reader.Key), "", "credential", "reveal", "openai-prod")
		wantErr(t, err, 1, "permission denied", "ask an admin")
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		dead := "http://" + ln.Addr().String()
		ln.Close()
		_, _, err = cliIn(t, map[string]string{"CREDVAULT_URL": dead, "CREDVAULT_API_KEY": "k", "CREDVAULT_CONFIG_DIR": t.TempDir()}, "", "credential", "list")
		wantErr(t, err, 1, "cannot reach the credvault server at "+dead, "--url")
		_, _, err = cliIn(t, map[string]string{"CREDVAULT_CONFIG_DIR": t.TempDir()}, "", "credential", "list")
		wantErr(t, err, 2, "no server URL", "credvault login")
		_, _, err = cliIn(t, env, "", "credential", "get")
		wantErr(t, err, 2, "accepts 1 arg")
		_, _, err = cliIn(t, env, "", "credential", "frobnicate")
		wantErr(t, err, 2)

		for _, secret := range []string{"line one", "rotated", "service_account"} {
			if strings.Contains(v.Logs(), secret) {
				t.Errorf("the server log holds the payload fragment %q", secret)
			}
		}
	})
}

// TestLogin: login checks the key and saves a 0600 profile that the other
// commands use; the environment overrides it; a refused key saves nothing.
func TestLogin(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		dir := filepath.Join(t.TempDir(), "cfg")
		env := map[string]string{"CREDVAULT_CONFIG_DIR": dir}
		_, _, err := cliIn(t, env, "d3Jvbmc6a2V5\n", "login", "--url", v.URL)
		wantErr(t, err, 1, "not saved", "refused the API key")
		if _, err := os.Stat(filepath.Join(dir, "profiles.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused key was saved: %v", err)
		}
		_, errOut, err := cliIn(t, env, v.AdminKey+"\n", "login", "--url", v.URL)
		if err != nil || !strings.Contains(errOut, "logged in to "+v.URL) {
			t.Fatalf("login: %v %s", err, errOut)
		}
		fi, err := os.Stat(filepath.Join(dir, "profiles.json"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("profile file: %v, mode %v; want 0600", err, fi.Mode())
		}
		if di, _ := os.Stat(dir); di.Mode().Perm() != 0o700 {
			t.Errorf("config dir mode %v; want 0700", di.Mode().Perm())
		}
		if _, _, err := cliIn(t, env, "p", "credential", "create", "via-profile"); err != nil {
			t.Fatalf("create with the saved profile: %v", err)
		}
		// The environment wins over the profile.
		env["CREDVAULT_API_KEY"] = "d3Jvbmc6a2V5"
		_, _, err = cliIn(t, env, "", "credential", "list")
		wantErr(t, err, 1, "refused the API key")
		delete(env, "CREDVAULT_API_KEY")
		// The saved key is never sent to another server.
		elsewhere := newRecorderURL(t)
		_, _, err = cliIn(t, env, "", "credential", "list", "--url", elsewhere.url)
		wantErr(t, err, 2, "no API key for "+elsewhere.url)
		if elsewhere.hits() != 0 {
			t.Error("a request went to the other server")
		}
		_, _, err = cliIn(t, env, "", "credential", "list", "--profile", "staging")
		wantErr(t, err, 2, `no profile "staging"`)
		// Another profile next to the first.
		other := v.NewTenant(t, "other", vault.RoleWriter)
		if _, _, err := cliIn(t, env, other.Key, "login", "--url", v.URL, "--profile", "other", "--account", other.AccountID); err != nil {
			t.Fatal(err)
		}
		out, _, err := cliIn(t, env, "", "credential", "list", "--profile", "other")
		if err != nil || strings.Contains(out, "via-profile") {
			t.Fatalf("list in the other profile's account: %v\n%s", err, out)
		}
		if out, _, _ := cliIn(t, env, "", "credential", "list"); !strings.Contains(out, "via-profile") {
			t.Fatalf("the default profile was lost:\n%s", out)
		}
	})
}

// TestExportImportRoundTrip: payloads with quotes, $, backslashes, =,
// newlines and more survive export → import into a second account exactly,
// in both formats; --on-conflict and --dry-run behave as documented.
func TestExportImportRoundTrip(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		src := clientEnv(t, v, v.AdminKey)
		for name, payload := range awkward {
			typ := "key"
			if name == "json.sa" {
				typ = "json"
			}
			if _, _, err := cliIn(t, src, payload, "credential", "create", name, "--type", typ); err != nil {
				t.Fatalf("create %s: %v", name, err)
			}
		}
		for _, format := range []string{"dotenv", "json"} {
			t.Run(format, func(t *testing.T) {
				exported, _, err := cliIn(t, src, "", "export", "--format", format)
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(t.TempDir(), "export."+format)
				os.WriteFile(file, []byte(exported), 0o600)
				dst := v.NewTenant(t, "dst-"+format, vault.RoleWriter)
				denv := clientEnv(t, v, dst.Key)

				out, errOut, err := cliIn(t, denv, "", "import", file, "--format", format, "--dry-run")
				if err != nil || strings.Count(out, "create ") != len(awkward) || !strings.Contains(errOut, "nothing changed") {
					t.Fatalf("dry run: %v\n%s%s", err, out, errOut)
				}
				if out, _, _ := cliIn(t, denv, "", "credential", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
					t.Fatalf("the dry run wrote: %s", out)
				}
				_, errOut, err = cliIn(t, denv, "", "import", file, "--format", format)
				if err != nil || !strings.Contains(errOut, "9 created, 0 updated, 0 skipped") {
					t.Fatalf("import: %v %s", err, errOut)
				}
				for name, want := range awkward {
					got, _, err := cliIn(t, denv, "", "credential", "reveal", name)
					if err != nil || got != want {
						t.Errorf("%s after %s round trip = %q, %v; want %q", name, format, got, err, want)
					}
				}
				// Conflicts: fail writes nothing, skip skips, overwrite replaces.
				cliIn(t, denv, "old", "credential", "update", "equals", "--payload-stdin")
				_, _, err = cliIn(t, denv, "", "import", file, "--format", format)
				wantErr(t, err, 1, "already exist", "nothing was imported", "--on-conflict")
				if got, _, _ := cliIn(t, denv, "", "credential", "reveal", "equals"); got != "old" {
					t.Fatalf("a failed import changed equals to %q", got)
				}
				_, errOut, _ = cliIn(t, denv, "", "import", file, "--format", format, "--on-conflict", "skip")
				if got, _, _ := cliIn(t, denv, "", "credential", "reveal", "equals"); got != "old" || !strings.Contains(errOut, "9 skipped") {
					t.Fatalf("skip: equals = %q; %s", got, errOut)
				}
				_, errOut, _ = cliIn(t, denv, "", "import", file, "--format", format, "--on-conflict", "overwrite")
				if got, _, _ := cliIn(t, denv, "", "credential", "reveal", "equals"); got != awkward["equals"] || !strings.Contains(errOut, "9 updated") {
					t.Fatalf("overwrite: equals = %q; %s", got, errOut)
				}
			})
		}
		// Named export, and a name that does not exist.
		out, _, err := cliIn(t, src, "", "export", "equals", "dollar")
		if err != nil || !strings.Contains(out, "EQUALS='a=b==c='") || !strings.Contains(out, "# credvault-name: dollar") || strings.Contains(out, "QUOTES") {
			t.Fatalf("named export: %v\n%s", err, out)
		}
		_, _, err = cliIn(t, src, "", "export", "equals", "nope")
		wantErr(t, err, 1, `"nope" not found`)
		for _, p := range awkward {
			if len(p) > 8 && strings.Contains(v.Logs(), p) {
				t.Errorf("the server log holds the payload %q", p)
			}
		}
	})
}

// TestDotenv: the dotenv writer and reader agree on every byte, and the
// reader takes the common hand-written forms.
func TestDotenv(t *testing.T) {
	for name, v := range awkward {
		line := envName(name) + "=" + quoteDotenv(v) + "\n"
		es, err := parseDotenv(line)
		if err != nil || len(es) != 1 || es[0].Value != v {
			t.Errorf("%s: %q parsed to %+v, %v", name, line, es, err)
		}
	}
	es, err := parseDotenv("# c\nexport A=bare value # comment\nB = 'x'  # c\n\nC=\"multi\nline\"\nD=\n")
	want := []string{"A=bare value", "B=x", "C=multi\nline", "D="}
	if err != nil || len(es) != len(want) {
		t.Fatalf("%+v, %v", es, err)
	}
	for i, e := range es {
		if e.Var+"="+e.Value != want[i] {
			t.Errorf("entry %d = %s=%q; want %q", i, e.Var, e.Value, want[i])
		}
	}
	for _, bad := range []string{"A='open\n", "A=\"open\n", "1A=x\n", "A='x' trailing\n", "no equals\n"} {
		if _, err := parseDotenv(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if got := envName("9lives.db-prod/x"); got != "_9LIVES_DB_PROD_X" {
		t.Errorf("envName = %s", got)
	}
}

// otherServer counts the requests it gets.
type otherServer struct {
	url string
	n   atomic.Int32
}

func (o *otherServer) hits() int { return int(o.n.Load()) }

func newRecorderURL(t *testing.T) *otherServer {
	o := &otherServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.n.Add(1)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	o.url = srv.URL
	return o
}

// TestUsageExitStatus: usage errors of every command, client or admin,
// exit with status 2; other errors with 1.
func TestUsageExitStatus(t *testing.T) {
	for _, args := range [][]string{{"no-such-command"}, {"account", "create"}, {"serve", "--no-such-flag"}, {"credential", "reveal"}, {"export", "--format", "yaml"}, {"keygen", "--out"}} {
		_, _, err := cliIn(t, map[string]string{"CREDVAULT_CONFIG_DIR": t.TempDir()}, "", args...)
		if code := exitCode(err); code != 2 {
			t.Errorf("%v: exit %d (%v); want 2", args, code, err)
		}
	}
	_, _, err := cliIn(t, map[string]string{"CREDVAULT_CONFIG_DIR": t.TempDir()}, "", "account", "list", "--data-dir", t.TempDir())
	if code := exitCode(err); code != 1 {
		t.Errorf("account list on a missing database: exit %d (%v); want 1", code, err)
	}
}
