package crypto_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/testutil/cryptotest"
)

func newKeyring(t *testing.T) (*crypto.Keyring, *keyset.Handle) {
	t.Helper()
	return cryptotest.NewKeyring(t)
}

func seal(t *testing.T, kr *crypto.Keyring, pt, ad string) []byte {
	t.Helper()
	ct, err := kr.Seal([]byte(pt), []byte(ad))
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func wantOpen(t *testing.T, kr *crypto.Keyring, ct []byte, ad, want string) {
	t.Helper()
	pt, err := kr.Open(ct, []byte(ad))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if string(pt) != want {
		t.Fatalf("Open = %q, want %q", pt, want)
	}
}

func wantNoOpen(t *testing.T, kr *crypto.Keyring, ct []byte, ad string) {
	t.Helper()
	pt, err := kr.Open(ct, []byte(ad))
	if !errors.Is(err, crypto.ErrOpen) {
		t.Fatalf("Open = %q, %v; want ErrOpen", pt, err)
	}
	if pt != nil {
		t.Fatalf("Open returned plaintext %q with an error", pt)
	}
}

func TestKeyring_SealOpen(t *testing.T) {
	kr, _ := newKeyring(t)
	const ad = "credvault/credential/v1\x00acct\x00id\x001"

	t.Run("ok/round-trip", func(t *testing.T) {
		for _, pt := range []string{"s", "sk-live-123", strings.Repeat("x", 64<<10), "ünïcødé \x00 bytes"} {
			ct := seal(t, kr, pt, ad)
			if len(pt) >= 8 && bytes.Contains(ct, []byte(pt)) {
				t.Errorf("ciphertext contains the plaintext")
			}
			wantOpen(t, kr, ct, ad, pt)
		}
	})

	t.Run("ok/empty-associated-data", func(t *testing.T) {
		ct := seal(t, kr, "p", "")
		wantOpen(t, kr, ct, "", "p")
		wantNoOpen(t, kr, ct, "x")
	})

	t.Run("ok/fresh-data-key-each-time", func(t *testing.T) {
		a, b := seal(t, kr, "same", ad), seal(t, kr, "same", ad)
		if bytes.Equal(a, b) {
			t.Error("two seals of the same plaintext are equal")
		}
	})

	t.Run("err/wrong-associated-data", func(t *testing.T) {
		ct := seal(t, kr, "secret", ad)
		for _, other := range []string{
			"credvault/credential/v1\x00acct\x00id\x002",    // another version
			"credvault/credential/v1\x00acct\x00other\x001", // another credential
			"credvault/credential/v1\x00other\x00id\x001",   // another account
			"", ad + "\x00", ad[:len(ad)-1], strings.ToUpper(ad), // near misses
		} {
			wantNoOpen(t, kr, ct, other)
		}
	})

	t.Run("err/flipped-byte-anywhere", func(t *testing.T) {
		ct := seal(t, kr, "secret payload", ad)
		for i := range ct {
			for _, bit := range []byte{0x01, 0x80} {
				c := bytes.Clone(ct)
				c[i] ^= bit
				if pt, err := kr.Open(c, []byte(ad)); err == nil {
					t.Fatalf("byte %d ^ %#x: opened to %q", i, bit, pt)
				}
			}
		}
	})

	t.Run("err/truncated-or-extended", func(t *testing.T) {
		ct := seal(t, kr, "secret payload", ad)
		for _, c := range [][]byte{nil, {}, ct[:4], ct[:5], ct[:len(ct)-1], append(bytes.Clone(ct), 0), {0xff, 0xff, 0xff, 0xff, 1}} {
			wantNoOpen(t, kr, c, ad)
		}
	})

	t.Run("err/other-master-key", func(t *testing.T) {
		other, _ := newKeyring(t)
		wantNoOpen(t, other, seal(t, kr, "secret", ad), ad)
	})

	t.Run("err/spliced-envelopes", func(t *testing.T) {
		// The wrapped data key of one ciphertext with the payload of another.
		a, b := seal(t, kr, "aaaaaaaa", ad), seal(t, kr, "bbbbbbbb", ad)
		n := 4 + int(a[0])<<24 | int(a[1])<<16 | int(a[2])<<8 | int(a[3])
		spliced := append(bytes.Clone(a[:n]), b[n:]...)
		wantNoOpen(t, kr, spliced, ad)
	})
}

func TestNewKeyring(t *testing.T) {
	t.Run("err/not-an-aead-keyset", func(t *testing.T) {
		h, err := keyset.NewHandle(mac.HMACSHA256Tag256KeyTemplate())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := crypto.NewKeyring(h); err == nil {
			t.Error("a MAC keyset was accepted as a master key")
		}
	})
}

// rotated returns h with a new AES-256-GCM key added and made primary.
func rotated(t *testing.T, h *keyset.Handle) (*keyset.Handle, uint32) {
	t.Helper()
	m := keyset.NewManagerFromHandle(h)
	id, err := m.Add(aead.AES256GCMKeyTemplate())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetPrimary(id); err != nil {
		t.Fatal(err)
	}
	h2, err := m.Handle()
	if err != nil {
		t.Fatal(err)
	}
	return h2, id
}

func TestKeyring_Rewrap(t *testing.T) {
	const ad = "ad"
	kr1, h1 := newKeyring(t)
	oldID := kr1.PrimaryKeyID()
	ct := seal(t, kr1, "secret", ad)
	if id, err := crypto.WrappingKeyID(ct); err != nil || id != oldID {
		t.Fatalf("WrappingKeyID = %d, %v; want the primary %d", id, err, oldID)
	}

	h2, newID := rotated(t, h1)
	kr2 := cryptotest.KeyringOf(t, h2)
	if kr2.PrimaryKeyID() != newID || newID == oldID {
		t.Fatalf("primary after rotation = %d, want the new key %d (old %d)", kr2.PrimaryKeyID(), newID, oldID)
	}

	t.Run("ok/old-ciphertext-opens-after-rotation", func(t *testing.T) {
		wantOpen(t, kr2, ct, ad, "secret")
	})

	t.Run("ok/new-seals-use-new-primary", func(t *testing.T) {
		if id, _ := crypto.WrappingKeyID(seal(t, kr2, "x", ad)); id != newID {
			t.Errorf("WrappingKeyID of a new seal = %d, want %d", id, newID)
		}
	})

	rewrapped, err := kr2.Rewrap(ct)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("ok/rewrap-changes-wrapping-key", func(t *testing.T) {
		if id, err := crypto.WrappingKeyID(rewrapped); err != nil || id != newID {
			t.Errorf("WrappingKeyID after Rewrap = %d, %v; want %d", id, err, newID)
		}
		wantOpen(t, kr2, rewrapped, ad, "secret")
		// Associated data is still bound: the payload part is unchanged.
		wantNoOpen(t, kr2, rewrapped, "other")
	})

	t.Run("ok/rewrapped-opens-without-old-key", func(t *testing.T) {
		m := keyset.NewManagerFromHandle(h2)
		if err := m.Disable(oldID); err != nil {
			t.Fatal(err)
		}
		h3, err := m.Handle()
		if err != nil {
			t.Fatal(err)
		}
		kr3 := cryptotest.KeyringOf(t, h3)
		wantOpen(t, kr3, rewrapped, ad, "secret")
		wantNoOpen(t, kr3, ct, ad)
		if _, err := kr3.Rewrap(ct); !errors.Is(err, crypto.ErrOpen) {
			t.Errorf("Rewrap without the wrapping key: %v, want ErrOpen", err)
		}
	})

	t.Run("ok/rewrap-is-idempotent-in-effect", func(t *testing.T) {
		again, err := kr2.Rewrap(rewrapped)
		if err != nil {
			t.Fatal(err)
		}
		wantOpen(t, kr2, again, ad, "secret")
	})

	t.Run("err/garbage", func(t *testing.T) {
		for _, c := range [][]byte{nil, {1, 2, 3}, {0, 0, 0, 0, 1}, {0, 0, 0xff, 0xff, 1, 2}} {
			if _, err := kr2.Rewrap(c); err == nil {
				t.Errorf("Rewrap(%x) succeeded", c)
			}
			if _, err := crypto.WrappingKeyID(c); err == nil {
				t.Errorf("WrappingKeyID(%x) succeeded", c)
			}
		}
		flipped := bytes.Clone(ct)
		flipped[10] ^= 1
		if _, err := kr2.Rewrap(flipped); err == nil {
			t.Error("Rewrap of a tampered wrapped key succeeded")
		}
	})
}

func TestParseKEK(t *testing.T) {
	kr, h := newKeyring(t)
	js, err := crypto.MarshalKEK(h)
	if err != nil {
		t.Fatal(err)
	}
	ct := seal(t, kr, "secret", "ad")
	b64 := base64.StdEncoding.EncodeToString(js)

	for _, tc := range []struct{ name, in string }{
		{"ok/json", string(js)},
		{"ok/json-with-whitespace", "\n  " + string(js) + "\n"},
		{"ok/base64", b64},
		{"ok/base64-with-newline", b64 + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h2, err := crypto.ParseKEK([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			kr2 := cryptotest.KeyringOf(t, h2)
			if diff := cmp.Diff(kr.PrimaryKeyID(), kr2.PrimaryKeyID()); diff != "" {
				t.Errorf("primary key id (-want +got):\n%s", diff)
			}
			wantOpen(t, kr2, ct, "ad", "secret")
		})
	}

	const secret = "SUPERSECRETGARBAGE"
	for _, tc := range []struct{ name, in string }{
		{"err/empty", ""},
		{"err/text", "not a key " + secret},
		{"err/bad-base64", secret + "!!!"},
		{"err/json-not-a-keyset", `{"key": "` + secret + `"}`},
		{"err/base64-of-garbage", base64.StdEncoding.EncodeToString([]byte(secret))},
		{"err/base64-of-json-not-a-keyset", base64.StdEncoding.EncodeToString([]byte(`{"primaryKeyId": 1, "key": [{"keyData": {"value": "` + secret + `"}}]}`))},
		{"err/truncated-json", string(js[:len(js)/2])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := crypto.ParseKEK([]byte(tc.in))
			if err == nil {
				t.Fatalf("accepted: %v", h)
			}
			for _, s := range []string{secret, string(js[len(js)/4 : len(js)/2])} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error echoes its input: %v", err)
				}
			}
		})
	}
}
