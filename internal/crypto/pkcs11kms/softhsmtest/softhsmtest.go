// Package softhsmtest gives tests a fresh SoftHSM2 token in a temporary
// directory (its own SOFTHSM2_CONF), so that PKCS#11 code is tested
// against a real PKCS#11 library. Without Debian's softhsm2 package a test
// is skipped — except in CI (CI=true) or when scripts/test.sh has installed
// it (CREDVAULT_REQUIRE_SOFTHSM=1), where that is a failure: the HSM tests
// must never silently not run there.
package softhsmtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Modules are the places Debian (and others) install the SoftHSM2 library.
var Modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// Token is an initialised SoftHSM2 token.
type Token struct {
	Label  string
	PIN    string
	SOPIN  string
	Module string
	Dir    string // the token directory
	Conf   string // the SOFTHSM2_CONF file
}

// URI returns the RFC 7512 URI of the key labelled object in the token,
// with the PIN inline.
func (tk *Token) URI(object string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", tk.Label, object, tk.Module, tk.PIN)
}

// URIWithPIN is URI with another PIN.
func (tk *Token) URIWithPIN(object, pin string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s&pin-value=%s", tk.Label, object, tk.Module, pin)
}

// Required reports whether a missing SoftHSM2 must fail the test.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("CREDVAULT_REQUIRE_SOFTHSM") == "1"
}

// Module returns the SoftHSM2 library and softhsm2-util, or skips (fails
// where Required) when they are not installed.
func Module(tb testing.TB) (module, util string) {
	tb.Helper()
	for _, m := range Modules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	util, err := exec.LookPath("softhsm2-util")
	if module == "" || err != nil {
		msg := "SoftHSM2 is not installed (apt-get install softhsm2); the PKCS#11 tests need it"
		if Required() {
			tb.Fatal(msg + " — and this run requires it (CI=true or CREDVAULT_REQUIRE_SOFTHSM=1)")
		}
		tb.Skip(msg)
	}
	return module, util
}

// New makes a token labelled label in a new temporary SoftHSM2
// configuration and points SOFTHSM2_CONF at it for the rest of the test
// (so the test must not be parallel). Every PKCS#11 handle on it must be
// closed by the end of the test, so that the next test's library
// initialisation reads its own configuration.
func New(tb testing.TB, label string) *Token {
	tb.Helper()
	module, util := Module(tb)
	dir := tb.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		tb.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		tb.Fatal(err)
	}
	if s, ok := tb.(interface{ Setenv(string, string) }); ok {
		s.Setenv("SOFTHSM2_CONF", conf)
	} else {
		tb.Fatal("softhsmtest: needs a *testing.T or *testing.B")
	}
	tk := &Token{Label: label, PIN: "1234", SOPIN: "5678", Module: module, Dir: tokens, Conf: conf}
	out, err := exec.Command(util, "--init-token", "--free", "--label", label, "--pin", tk.PIN, "--so-pin", tk.SOPIN).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util --init-token: %v: %s", err, out)
	}
	return tk
}

// Delete removes the token (as if it were unplugged for good).
func (tk *Token) Delete(tb testing.TB) {
	tb.Helper()
	_, util := Module(tb)
	out, err := exec.Command(util, "--delete-token", "--token", tk.Label).CombinedOutput()
	if err != nil {
		tb.Fatalf("softhsm2-util --delete-token: %v: %s", err, out)
	}
}
