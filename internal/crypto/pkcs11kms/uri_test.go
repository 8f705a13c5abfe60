package pkcs11kms

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseURI(t *testing.T) {
	pinFile := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(pinFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("ok/pin-source", func(t *testing.T) {
		u, err := ParseURI("pkcs11:token=my%20token;object=credvault-root?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:" + pinFile)
		if err != nil {
			t.Fatal(err)
		}
		if u.Token != "my token" || u.Object != "credvault-root" || u.ModulePath != "/usr/lib/softhsm/libsofthsm2.so" {
			t.Fatalf("parsed %+v", u)
		}
		pin, err := u.PIN()
		if err != nil || pin != "s3cret" {
			t.Fatalf("PIN() = %q, %v", pin, err)
		}
		if s := u.String(); s != "pkcs11:token=my%20token;object=credvault-root" || strings.Contains(s, "s3cret") {
			t.Fatalf("String() = %q", s)
		}
	})
	t.Run("ok/pin-value-not-in-string", func(t *testing.T) {
		u, err := ParseURI("pkcs11:token=t;object=k;type=secret-key?module-path=/x.so&pin-value=canary-pin")
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "uri", u)
		for _, s := range []string{u.String(), fmt.Sprintf("%v %+v %#v %s", u, u, u, u), logs.String()} {
			if strings.Contains(s, "canary") {
				t.Fatalf("the PIN leaks: %s", s)
			}
		}
	})
	for name, uri := range map[string]string{
		"err/scheme":       "pkcs12:token=t;object=k?module-path=/x.so&pin-value=1",
		"err/no-token":     "pkcs11:object=k?module-path=/x.so&pin-value=1",
		"err/no-object":    "pkcs11:token=t?module-path=/x.so&pin-value=1",
		"err/no-module":    "pkcs11:token=t;object=k?pin-value=1",
		"err/no-pin":       "pkcs11:token=t;object=k?module-path=/x.so",
		"err/two-pins":     "pkcs11:token=t;object=k?module-path=/x.so&pin-value=1&pin-source=file:/p",
		"err/unknown-attr": "pkcs11:token=t;object=k;id=%01?module-path=/x.so&pin-value=1",
		"err/public-key":   "pkcs11:token=t;object=k;type=public?module-path=/x.so&pin-value=1",
		"err/pin-source":   "pkcs11:token=t;object=k?module-path=/x.so&pin-source=https://x",
		"err/percent":      "pkcs11:token=%zz;object=k?module-path=/x.so&pin-value=1",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseURI(uri); err == nil {
				t.Fatalf("ParseURI(%q) succeeded", uri)
			} else if strings.Contains(err.Error(), "pin-value=1") {
				t.Fatalf("error leaks the PIN: %v", err)
			}
		})
	}
}
