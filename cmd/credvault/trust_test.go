package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/credvault/credvault/internal/app"
	"github.com/credvault/credvault/internal/netguard"
	"github.com/credvault/credvault/internal/oidc"
	"github.com/credvault/credvault/internal/testutil/oidctest"
	"github.com/credvault/credvault/internal/testutil/vaulttest"
)

// TestTrustCommands: trust create/list/get/delete against a real server,
// then a workload with no stored key logs in with its token file and reads
// a credential (credential reveal, run) — both engines.
func TestTrustCommands(t *testing.T) {
	is := oidctest.New(t)
	is.AddKey(t, "k1", jose.ES256, true)
	allow, _ := netguard.ParseAllow("127.0.0.1")
	sign := func(t *testing.T, subject string) string {
		return is.Sign(t, "k1", oidctest.Claims(is.URL, subject, "credvault", time.Now()))
	}

	vaulttest.EachEngine(t, func(t *testing.T, engine string) {
		v := vaulttest.New(t, engine, func(c *app.Config) { c.OIDC = oidc.Options{Allow: allow, RootCAs: is.Roots()} })
		admin := clientEnv(t, v, v.AdminKey)
		if _, _, err := cliIn(t, admin, "s3cret-canary", "credential", "create", "db"); err != nil {
			t.Fatal(err)
		}

		out, _, err := cliIn(t, admin, "", "trust", "create", "payments", "--account", v.AccountID, "--issuer", is.URL, "--discovery",
			"--audience", "credvault", "--claim", "sub=system:serviceaccount:payments:*", "--role", "secret_reader", "--ttl", "15m", "-o", "json")
		if err != nil {
			t.Fatalf("trust create: %v", err)
		}
		var created struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" {
			t.Fatalf("trust create -o json: %q (%v)", out, err)
		}
		out, _, err = cliIn(t, admin, "", "trust", "list", "-o", "json")
		if err != nil || !strings.Contains(out, created.ID) || !strings.Contains(out, `"system:serviceaccount:payments:*"`) {
			t.Fatalf("trust list: %v %s", err, out)
		}
		out, _, err = cliIn(t, admin, "", "trust", "get", created.ID)
		if err != nil || !strings.Contains(out, "secret_reader") || !strings.Contains(out, "15m0s") {
			t.Fatalf("trust get: %v %s", err, out)
		}

		// A pasted JWKS document (an issuer the server cannot reach).
		jwksFile := filepath.Join(t.TempDir(), "jwks.json")
		b, _ := json.Marshal(is.JWKS())
		os.WriteFile(jwksFile, b, 0o600)
		out, _, err = cliIn(t, admin, "", "trust", "create", "cluster", "--account", v.AccountID, "--issuer", "https://kubernetes.default.svc",
			"--jwks-file", jwksFile, "--audience", "credvault", "--claim", "sub=system:serviceaccount:batch:job", "--role", "reader")
		if err != nil || len(strings.TrimSpace(out)) != 36 {
			t.Fatalf("trust create --jwks-file: %v %q", err, out)
		}

		// Usage errors.
		_, _, err = cliIn(t, admin, "", "trust", "create", "x", "--account", v.AccountID, "--issuer", is.URL, "--discovery", "--jwks-url", "https://a/b",
			"--audience", "a", "--claim", "sub=x", "--role", "reader")
		wantErr(t, err, exitUsage, "exactly one of")
		_, _, err = cliIn(t, admin, "", "trust", "create", "x", "--account", v.AccountID, "--issuer", is.URL, "--discovery",
			"--audience", "a", "--claim", "repository=x", "--role", "reader")
		wantErr(t, err, exitError, "sub claim")

		// The workload: no API key anywhere, only its token file.
		tokenFile := filepath.Join(t.TempDir(), "token")
		os.WriteFile(tokenFile, []byte(sign(t, "system:serviceaccount:payments:api")+"\n"), 0o600)
		wl := map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_CONFIG_DIR": t.TempDir()}
		if _, _, err := cliIn(t, wl, "", "login", "--oidc-token-file", tokenFile); err != nil {
			t.Fatalf("login --oidc-token-file: %v", err)
		}
		pf, _ := os.ReadFile(filepath.Join(wl["CREDVAULT_CONFIG_DIR"], "profiles.json"))
		if !strings.Contains(string(pf), `"api_key": ""`) || !strings.Contains(string(pf), tokenFile) {
			t.Errorf("profile: %s", pf)
		}
		delete(wl, "CREDVAULT_URL") // from the profile from now on
		out, _, err = cliIn(t, wl, "", "credential", "reveal", "db")
		if err != nil || out != "s3cret-canary" {
			t.Fatalf("reveal with the workload token: %v %q", err, out)
		}
		out, _, err = cliIn(t, map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_OIDC_TOKEN_FILE": tokenFile, "CREDVAULT_CONFIG_DIR": t.TempDir()},
			"", "run", "--env", "DB=db", "--", "sh", "-c", `printf '%s' "$DB"`)
		if err != nil || out != "s3cret-canary" {
			t.Fatalf("run with the workload token: %v %q", err, out)
		}
		// The role allows reading, nothing more.
		_, _, err = cliIn(t, wl, "x", "credential", "create", "other")
		wantErr(t, err, exitError, "permission denied")

		// A token the policy does not cover is refused, saying why.
		other := filepath.Join(t.TempDir(), "token")
		os.WriteFile(other, []byte(sign(t, "system:serviceaccount:billing:api")), 0o600)
		_, _, err = cliIn(t, map[string]string{"CREDVAULT_URL": v.URL, "CREDVAULT_CONFIG_DIR": t.TempDir()}, "", "credential", "reveal", "db", "--oidc-token-file", other)
		wantErr(t, err, exitError, "invalid_grant", `"sub" claim does not match`)

		if _, _, err := cliIn(t, admin, "", "trust", "delete", created.ID); err != nil {
			t.Fatalf("trust delete: %v", err)
		}
		_, _, err = cliIn(t, admin, "", "trust", "get", created.ID)
		wantErr(t, err, exitError, "not found")
		_, _, err = cliIn(t, wl, "", "credential", "reveal", "db")
		wantErr(t, err, exitError, "no trust policy")
	})
}

func TestOIDCOptions(t *testing.T) {
	if _, err := oidcOptions("10.0.0.0/33", ""); err == nil || !strings.Contains(err.Error(), "--oidc-allow-hosts") {
		t.Errorf("bad CIDR: %v", err)
	}
	o, err := oidcOptions("127.0.0.1, 10.0.0.0/8, issuer.internal", "")
	if err != nil || len(o.Allow.Prefixes) != 2 || len(o.Allow.Hosts) != 1 || o.RootCAs != nil {
		t.Errorf("allow list: %+v %v", o.Allow, err)
	}
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(notPEM, []byte("not a certificate"), 0o600)
	if _, err := oidcOptions("", notPEM); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("CA file without certificates: %v", err)
	}
}
