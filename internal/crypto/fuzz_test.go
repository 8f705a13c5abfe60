package crypto_test

import (
	"bytes"
	"testing"

	"github.com/credvault/credvault/internal/crypto"
	"github.com/credvault/credvault/internal/testutil/cryptotest"
)

// FuzzEnvelope feeds arbitrary bytes to the envelope parser (Open, Rewrap,
// WrappingKeyID). Nothing may panic, and nothing but a genuine ciphertext
// with the right associated data may open.
func FuzzEnvelope(f *testing.F) {
	kr, _ := cryptotest.NewKeyring(f)
	ad := []byte("account\x00id\x001")
	good, err := kr.Seal([]byte("payload"), ad)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:4])
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Add(append([]byte{0, 0, 0, 5, 1, 0, 0, 0, 0}, good...))
	f.Fuzz(func(t *testing.T, ct []byte) {
		pt, err := kr.Open(ct, ad)
		if err == nil && !bytes.Equal(ct, good) {
			t.Fatalf("a forged ciphertext opened to %q", pt)
		}
		_, _ = crypto.WrappingKeyID(ct)
		if re, err := kr.Rewrap(ct); err == nil {
			if _, err := kr.Open(re, ad); err != nil && bytes.Equal(ct, good) {
				t.Fatalf("rewrapped genuine ciphertext does not open: %v", err)
			}
		}
	})
}
