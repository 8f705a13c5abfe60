package e2e

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWrongDatabaseURL: serve refuses to start on a wrong or unreachable
// --database-url, quickly, with one line on stderr that names the problem
// and does not print the password.
func TestWrongDatabaseURL(t *testing.T) {
	const password = "s3cretpw"
	// A port nothing listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	cases := []struct {
		name string
		url  string
		want []string // the message must contain one of these (lower case)
	}{
		{"closed port", "postgres://user:" + password + "@127.0.0.1:" + strconv.Itoa(closed) + "/x", []string{"connection refused"}},
		{"unresolvable host", "postgres://user:" + password + "@no-such-host.invalid:5432/x", []string{"no such host", "resolv", "lookup"}},
		{"malformed URL", "postgres://user:" + password + "@127.0.0.1:notaport/x", []string{"invalid port", "parse", "url"}},
		{"unbalanced bracket", "postgres://user:" + password + "@[::1/x", []string{"parse", "url"}},
		{"bad option", "postgres://user:" + password + "@127.0.0.1:" + strconv.Itoa(closed) + "/x?sslmode=bogus", []string{"sslmode"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t0 := time.Now()
			stdout, stderr, code := runCLI(t, 30*time.Second, []string{"CREDVAULT_BOOTSTRAP_API_KEY=" + newBootstrapKey()},
				"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--database-url", tc.url)
			took := time.Since(t0)
			msg := strings.TrimRight(stderr, "\n")
			t.Logf("exit %d after %s: %s", code, took.Round(time.Millisecond), msg)
			if code == 0 {
				t.Fatalf("serve exited 0 with a wrong database URL")
			}
			if took > 15*time.Second {
				t.Errorf("took %s to give up; want a few seconds", took)
			}
			if n := strings.Count(msg, "\n") + 1; msg == "" || n != 1 {
				t.Errorf("stderr has %d lines, want exactly one:\n%s", n, stderr)
			}
			for _, out := range []string{stdout, stderr} {
				if strings.Contains(out, password) {
					t.Errorf("the password is printed:\n%s", out)
				}
			}
			low := strings.ToLower(msg)
			found := false
			for _, w := range tc.want {
				found = found || strings.Contains(low, w)
			}
			if !found {
				t.Errorf("message does not name the problem (want one of %q): %s", tc.want, msg)
			}
			if !strings.Contains(low, "database") && !strings.Contains(low, "postgres") {
				t.Errorf("message does not say it is about the database: %s", msg)
			}
		})
	}
}
