package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestRemoteAdminCLI drives the admin commands against a real server
// through its admin API (--url, --api-key), with the exact -o json shapes
// the README's scripts rely on.
func TestRemoteAdminCLI(t *testing.T) {
	vaulttest.Each(t, func(t *testing.T, v *vaulttest.Vault) {
		env := map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_API_KEY": v.AdminKey}
		// The remote mode never touches a database: point the break-glass
		// flags nowhere to prove it.
		run := func(args ...string) string {
			t.Helper()
			out, errOut, err := cli(t, env, append(args, "--data-dir", t.TempDir())...)
			if err != nil {
				t.Fatalf("credvault %s: %v\n%s", strings.Join(args, " "), err, errOut)
			}
			return out
		}
		obj := func(out string, keys ...string) map[string]string {
			t.Helper()
			var m map[string]string
			if err := json.Unmarshal([]byte(out), &m); err != nil || len(m) != len(keys) {
				t.Fatalf("output %q: %v; want exactly %v", out, err, keys)
			}
			for _, k := range keys {
				if m[k] == "" {
					t.Fatalf("output %q lacks %s", out, k)
				}
			}
			return m
		}
		acct := obj(run("account", "create", "team", "-o", "json"), "id", "name")
		if acct["name"] != "team" {
			t.Fatalf("account: %v", acct)
		}
		stdin = strings.NewReader("Remote-CLI-Passw0rd-canary\n")
		t.Cleanup(func() { stdin = os.Stdin })
		p := obj(run("principal", "create", "jane", "--account", acct["id"], "--role", "writer", "--kind", "user", "--email", "jane@example.com", "--password-stdin", "-o", "json"), "id")
		k := obj(run("apikey", "create", p["id"], "--ttl", "720h", "-o", "json"), "key_id", "api_key")

		me := v.Do(t, "GET", "/admin/v1/me", nil, "x-api-key", k["api_key"])
		if me.Status != 200 || !strings.Contains(string(me.Body), acct["id"]) {
			t.Fatalf("new key: %d %s", me.Status, me.Body)
		}
		login := v.Do(t, "POST", "/admin/v1/login", map[string]string{"email": "jane@example.com", "password": "Remote-CLI-Passw0rd-canary"})
		if login.Status != 200 {
			t.Fatalf("login with the password given on stdin: %d %s", login.Status, login.Body)
		}
		// Default output: ids alone on stdout.
		if out := strings.TrimSpace(run("account", "create", "team2")); len(out) != 36 {
			t.Fatalf("account create printed %q", out)
		}
		run("principal", "grant", p["id"], v.AccountID, "--role", "reader")
		run("principal", "revoke-membership", p["id"], "--account", v.AccountID)
		if out := run("principal", "list", "--account", acct["id"], "-o", "json"); !strings.Contains(out, `"jane"`) {
			t.Fatalf("principal list: %s", out)
		}
		if out := run("apikey", "list", p["id"], "-o", "json"); strings.Contains(out, k["api_key"]) || !strings.Contains(out, k["key_id"]) {
			t.Fatalf("apikey list: %s", out)
		}
		run("apikey", "revoke", k["key_id"])
		if r := v.Do(t, "GET", "/admin/v1/me", nil, "x-api-key", k["api_key"]); r.Status != 401 {
			t.Fatalf("revoked key: %d", r.Status)
		}
		run("principal", "delete", p["id"])
		if _, _, err := cli(t, env, "principal", "get", p["id"]); err == nil || !strings.Contains(err.Error(), "404") {
			t.Fatalf("deleted principal: %v", err)
		}
		// A wrong key is refused with the server's message.
		_, _, err := cli(t, map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_API_KEY": "wrong"}, "account", "list")
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("wrong key: %v", err)
		}
		if strings.Contains(v.Logs(), "Remote-CLI-Passw0rd-canary") {
			t.Fatal("the password is in the server's logs")
		}
	})
}
