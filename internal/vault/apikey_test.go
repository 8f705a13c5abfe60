package vault_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/credvault/credvault/internal/vault"
)

func TestNewAPIKeySecret(t *testing.T) {
	id := vault.NewID()
	key := vault.NewAPIKeySecret(id)

	t.Run("ok/dsm-app-key-form", func(t *testing.T) {
		// base64(id ":" secret): what DSM clients send as "Basic <key>".
		raw, err := base64.StdEncoding.DecodeString(key)
		if err != nil {
			t.Fatalf("key is not standard base64: %v", err)
		}
		gotID, secret, ok := strings.Cut(string(raw), ":")
		if !ok || gotID != id {
			t.Fatalf("decoded key = %q, want %q:<secret>", raw, id)
		}
		// 256 bits of entropy, URL-safe base64 without padding.
		sb, err := base64.RawURLEncoding.DecodeString(secret)
		if err != nil || len(sb) != 32 {
			t.Errorf("secret %q: %d bytes, %v; want 32 bytes of raw URL base64", secret, len(sb), err)
		}
		if len(key) < vault.MinAPIKeyLength {
			t.Errorf("key length %d < MinAPIKeyLength %d", len(key), vault.MinAPIKeyLength)
		}
	})

	t.Run("ok/unique", func(t *testing.T) {
		seen := map[string]bool{}
		for range 100 {
			k := vault.NewAPIKeySecret(id)
			if seen[k] {
				t.Fatal("NewAPIKeySecret repeated a key")
			}
			seen[k] = true
		}
	})

	t.Run("ok/id-round-trip", func(t *testing.T) {
		got, ok := vault.APIKeyID(key)
		if !ok || got != id {
			t.Errorf("APIKeyID = %q, %v; want %q, true", got, ok, id)
		}
	})

	t.Run("ok/hash", func(t *testing.T) {
		h := vault.HashAPIKey(key)
		if len(h) != 32 {
			t.Errorf("hash length %d, want 32", len(h))
		}
		if !bytes.Equal(h, vault.HashAPIKey(key)) {
			t.Error("hash is not deterministic")
		}
		if bytes.Equal(h, vault.HashAPIKey(key+"x")) || bytes.Equal(h, vault.HashAPIKey(vault.NewAPIKeySecret(id))) {
			t.Error("different keys hash alike")
		}
		if bytes.Contains(h, []byte(key)) {
			t.Error("hash contains the key")
		}
	})
}

func TestAPIKeyID(t *testing.T) {
	id := vault.NewID()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		name string
		key  string
	}{
		{"err/empty", ""},
		{"err/not-base64", "not base64!"},
		{"err/no-colon", b64(id)},
		{"err/id-not-uuid", b64("app:secret")},
		{"err/empty-id", b64(":secret")},
		{"err/url-base64", base64.URLEncoding.EncodeToString([]byte(id + ":~~~~~~??>>>"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, ok := vault.APIKeyID(tc.key); ok {
				t.Errorf("APIKeyID(%q) = %q, true; want false", tc.key, got)
			}
		})
	}
	t.Run("ok/foreign-secret", func(t *testing.T) {
		// Any secret after a uuid and a colon parses (e.g. a supplied
		// bootstrap key of the same form).
		if got, ok := vault.APIKeyID(b64(id + ":anything:with:colons")); !ok || got != id {
			t.Errorf("APIKeyID = %q, %v", got, ok)
		}
	})
}

func TestNewID(t *testing.T) {
	a, b := vault.NewID(), vault.NewID()
	if a == b {
		t.Fatal("NewID repeated")
	}
	if len(a) != 36 || a[14] != '7' {
		t.Errorf("NewID = %q, want a UUIDv7", a)
	}
	if !(a < b) {
		// UUIDv7 ids are time-ordered (with a monotonic counter within a
		// millisecond in google/uuid).
		t.Errorf("ids not increasing: %s then %s", a, b)
	}
}
